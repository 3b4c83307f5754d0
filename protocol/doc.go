// Package protocol implements the NBD wire protocol (fixed newstyle
// handshake and transmission phase) for both the server and the client side.
//
// Every length read from the wire is checked against a bound in consts.go
// before anything is allocated. Wire formats are decoded by offset after a
// length check; encoders append to a caller-owned buffer so that a header
// and its payload can leave in one write.
//
// Files, one concern each:
//
//   - consts.go: magics, option, reply, command and flag values, limits.
//   - option.go: option request and reply headers, OptionError and the
//     sentinel errors it matches.
//   - payload.go: data of INFO/GO, NBD_INFO_*, REP_SERVER and the
//     META_CONTEXT options and replies.
//   - client_handshake.go: ClientHandshake, ClientInfo, ClientList.
//   - server_handshake.go: ServerHandshake and the ExportProvider seam
//     (an ExportOpener opens the export while GO is answered).
//   - request.go, reply.go: transmission request, simple reply and chunk
//     headers.
//   - chunk.go: structured reply chunk payloads.
//   - client.go, errno.go: a synchronous transmission client for tests and
//     the admin tool, and the Errno error type.
//
// Neither handshake sets deadlines: callers bound the handshake time with
// net.Conn.SetDeadline.
package protocol
