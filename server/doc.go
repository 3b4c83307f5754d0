// Package server is nbdboot's NBD export server: a table of named exports
// backed by regular files or block devices, served to many clients at once
// over the fixed newstyle protocol with structured replies.
//
// The pieces, one concern per file:
//
//   - spec.go and config.go turn `NAME=PATH[,ro][,desc=TEXT]` arguments and
//     a TOML file into a Config;
//   - backend.go defines the Backend interface and its optional abilities
//     (non-blocking reads, FUA writes), found once per connection along
//     a chain of wrappers (Unwrap), so the fence, an overlay or a metrics
//     layer keeps them; backend_file.go implements it for files and block
//     devices (pread/pwrite, fdatasync, fallocate, SEEK_DATA/SEEK_HOLE,
//     posix_fadvise; mapped.go maps the file so that large cached READs
//     are sent without a copy), allocmap.go keeps in memory which of a file's
//     blocks hold data, so a READ of a sparse file is split into data and
//     holes on the read loop, without lseeks;
//   - export.go holds the export table (Exports), which resolves the names
//     clients ask for and can be updated while serving (SIGHUP): an
//     export is immutable once published, a reload publishes new ones
//     (sharing the open file when it is unchanged, image.go identifies
//     it), and exports removed or replaced are closed when their last
//     connection ends;
//   - listener.go accepts connections (Server.Serve), bounds the number
//     still negotiating (negotiation.go shares those slots fairly among
//     source keys: a machine's MAC address from the neighbour table, else
//     its IP address, neighbors.go) and the handshake time, and drains on
//     shutdown;
//     openexport.go answers one connection's handshake and acquires the
//     export while answering GO or EXPORT_NAME (a copy-on-write overlay is
//     opened then), so that a failure is an NBD error reply to GO, never
//     an acknowledged GO followed by a dropped connection;
//     internal/ratelog rate-limits each source key's log lines;
//   - conn.go, reader.go and writer.go run one connection's transmission
//     phase: a reader goroutine parses requests, serves the cheap ones
//     itself (inline.go) and hands the rest to a goroutine each, and
//     replies leave, possibly out of order, through one serialising
//     writer, header and payload in one writev; reply.go builds every
//     reply with package protocol's encoders (cmd_read.go follows one
//     READ from the socket to pread and back);
//   - overlay.go serves NAME/CLIENT-ID of a copy-on-write export as that
//     client's overlay from package cow, and plain NAME as the overlay of
//     the client's IP address; owner.go decides who may use an export
//     and an overlay (allow-lists, pins, leases, one address at a time),
//     answering the handshake with the client's address in hand;
//     caps.go caps an export's overlays (kept, per address, per minute); control.go is the unix-socket control
//     interface that lists and resets overlays;
//   - fence.go orders a client's old and new connections (below);
//   - cmd_*.go implement the commands, limits.go the buffer pool and the
//     server-wide budget of payload bytes in flight, shared fairly among
//     the clients' source keys (payload.go takes a large WRITE's share in
//     slices as its payload arrives); stall.go the deadlines that end a
//     connection whose WRITE payload or reply stalls, cut short at
//     shutdown; filecheck.go fails READ and BLOCK_STATUS of a read-only
//     file that was truncated or rewritten while served.
//
// # Fencing a client's old connections
//
// A client's identity is its overlay (EXPORT/CLIENT-ID) on a copy-on-write
// export, else the export's name and the client's IP address. When a new
// connection of a writable export has finished its handshake, before its
// first request is read, it waits until every WRITE, TRIM, WRITE_ZEROES
// and FLUSH that the same identity's other connections had begun on the
// backend has completed (at most the reply timeout, capped at 10 s). So
// the kernel's resend of a timed-out write on its new socket is applied
// after the old copy. An old connection with such a change outstanding
// longer than the reply timeout, or still busy when the wait ends, is
// closed, and any change it begins afterwards fails with EIO.
//
// What the fence cannot stop or see: a change stuck in the backend itself
// (a hung disk) still lands whenever it completes; a request the old
// connection has received but not yet handed to the backend (its
// goroutine not yet scheduled, or a WRITE whose payload is still
// arriving); and requests still in the network or in the socket buffers
// of a connection the server does not know is dead. Those can land after
// the new connection's writes. The Linux client shuts its old socket
// down when it reconnects, so such bytes mostly meet a closed
// connection; TCP keepalive (Go's 15 s default) reaps peers that
// vanished. Closing the received-but-not-begun window needs the request
// reader to count requests as they arrive, a hook the fence can take
// (fenceMember.begin/end around the whole request).
package server
