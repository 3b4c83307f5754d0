// Package protocol implements the NBD wire protocol (fixed newstyle
// handshake and transmission phase) for both the server and the client side.
//
// Every length read from the wire is checked against a bound in consts.go
// before anything is allocated. Wire formats are decoded by offset after a
// length check; encoders append to a caller-owned buffer so that a header
// and its payload can leave in one write.
package protocol
