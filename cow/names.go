package cow

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

const (
	// MaxClientLen bounds a client ID in bytes.
	MaxClientLen = 255
	// MaxExportLen bounds an export name in bytes (NBD's string limit).
	MaxExportLen = 4096
	// maxComponent is the longest escaped name kept readable; longer
	// ones are hashed, well inside NAME_MAX (255).
	maxComponent = 200
)

// fileName turns an export name or client ID into one file name
// component, the same one every time. Letters, digits, '-', '_', ':' and
// '.' (except a leading one) stay as they are, so MAC and IP addresses
// read as themselves; every other byte becomes %XX. An escaped name
// longer than 200 bytes becomes "%h" and the SHA-256 of the name in hex,
// which no escaped name can be ('%' is always followed by two upper-case
// hex digits). Empty names, names over max bytes, "." and "..", and
// names holding '/' or NUL are refused.
func fileName(kind, name string, max int) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%s name is empty", kind)
	case len(name) > max:
		return "", fmt.Errorf("%s name %.32q...: longer than %d bytes", kind, name, max)
	case name == "." || name == "..":
		return "", fmt.Errorf("%s name %q: not allowed", kind, name)
	case strings.ContainsRune(name, '/'):
		return "", fmt.Errorf("%s name %q: holds a path separator '/'", kind, name)
	case strings.ContainsRune(name, 0):
		return "", fmt.Errorf("%s name %q: holds a NUL byte", kind, name)
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == ':' || c == '.' && i > 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > maxComponent {
		sum := sha256.Sum256([]byte(name))
		return "%h" + hex.EncodeToString(sum[:]), nil
	}
	return b.String(), nil
}
