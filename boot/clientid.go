package boot

import "strings"

// The client id picks the client's copy-on-write overlay on the server:
// nbdboot asks for export NAME/CLIENT-ID, which nbdserve serves from
// CLIENT-ID's overlay over the cow export NAME. Servers that do not know
// the name (nbd-server, a plain export) answer "unknown export" and the
// boot falls back to NAME (connect.go).

// exportNamer chooses the export name asked of each target during one
// boot.
type exportNamer struct {
	id    string          // "" sends plain names
	plain map[Target]bool // targets that did not know NAME/CLIENT-ID
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
	return &exportNamer{id: id, plain: map[Target]bool{}}
}

// name is the export name to ask t for: NAME/CLIENT-ID, or the plain NAME
// when there is no client id, t did not know NAME/CLIENT-ID, or NAME
// already holds a '/' (an explicit NAME/CLIENT-ID, or a name of another
// server's making).
func (n *exportNamer) name(t Target) string {
	if n.id == "" || n.plain[t] || strings.Contains(t.Export, "/") {
		return t.Export
	}
	return t.Export + "/" + n.id
}

// fallBack makes later names for t plain.
func (n *exportNamer) fallBack(t Target) { n.plain[t] = true }

// clientIDOf is the client id that name carries on top of base, or "".
func clientIDOf(name, base string) string {
	id, ok := strings.CutPrefix(name, base+"/")
	if !ok {
		return ""
	}
	return id
}
