// Package server is nbdboot's NBD export server: a table of named exports
// backed by regular files or block devices, served to many clients at once
// over the fixed newstyle protocol with structured replies.
//
// The pieces, one concern per file:
//
//   - spec.go and config.go turn `NAME=PATH[,ro][,desc=TEXT]` arguments and
//     a TOML file into a Config;
//   - backend.go defines the Backend interface, backend_file.go implements
//     it for files and block devices (pread/pwrite, fdatasync, fallocate,
//     SEEK_DATA/SEEK_HOLE, posix_fadvise);
//   - export.go holds the export table (Exports), which resolves the names
//     clients ask for and can be updated while serving (SIGHUP): exports
//     removed or replaced are closed when their last connection ends;
//   - listener.go accepts connections (Server.Serve), bounds the number
//     still negotiating and the handshake time, and drains on shutdown;
//   - conn.go, reader.go and writer.go run one connection's transmission
//     phase: a reader goroutine parses requests, a goroutine per request
//     serves it, and replies leave, possibly out of order, through one
//     serialising writer, header and payload in one writev;
//   - overlay.go serves NAME/CLIENT-ID of a copy-on-write export as that
//     client's overlay from package cow;
//   - cmd_*.go implement the commands, limits.go the buffer pool and the
//     server-wide cap on payload bytes in flight.
package server
