// Package printable shows text that a client or a server chose (export
// names, client IDs, descriptions) in tables and logs meant for people,
// so that it can neither forge table rows nor drive the terminal.
package printable

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Name shows a name or an ID: as it is when it is printable ASCII without
// spaces, quotes or backslashes, else quoted with escapes ("" when empty).
func Name(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.QuoteToASCII(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// Text shows free text such as a description: as it is when every rune is
// printable (spaces included, tabs and line breaks not), else quoted with
// escapes.
func Text(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
