package boot

import (
	"strings"

	"github.com/nbdboot/nbdboot/bootcfg"
)

// The client id picks the client's copy-on-write overlay on the server:
// nbdboot asks for export NAME/CLIENT-ID, which nbdserve serves from
// CLIENT-ID's overlay over the cow export NAME. Servers that do not know
// the name (nbd-server, a plain export) answer "unknown export" and the
// boot falls back to NAME (connect.go).

// exportNamer chooses the export name asked of each target during one
// boot.
type exportNamer struct {
	id    string                   // "" sends plain names
	plain map[bootcfg.Address]bool // targets that did not know NAME/CLIENT-ID
}

// newNamer picks the client id: nbdboot.clientid=, else the MAC address
// of the boot interface; nbdboot.clientid=none sends none.
func (b *booter) newNamer() *exportNamer {
	id := b.cfg.ClientID
	switch {
	case id == ClientIDNone:
		id = ""
	case id == "" && b.net.MAC == "":
		b.log.Printf("connect: %s has no MAC address; asking for plain export names (set nbdboot.clientid= for a per-client overlay)", b.net.Interface)
	case id == "":
		id = strings.ToLower(b.net.MAC)
	}
	return &exportNamer{id: id, plain: map[bootcfg.Address]bool{}}
}

// request is what to ask t for: NAME with the client id, or the plain
// NAME when there is no client id, t did not know NAME/CLIENT-ID, or NAME
// already holds a '/' (an explicit NAME/CLIENT-ID, or a name of another
// server's making).
func (n *exportNamer) request(t bootcfg.Address) NegotiateRequest {
	if n.id == "" || n.plain[t] || strings.Contains(t.Export, "/") {
		return NegotiateRequest{Export: t.Export}
	}
	return NegotiateRequest{Export: t.Export, ClientID: n.id}
}

// fallBack makes later names for t plain.
func (n *exportNamer) fallBack(t bootcfg.Address) { n.plain[t] = true }
