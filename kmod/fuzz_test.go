package kmod

import (
	"path"
	"strings"
	"testing"
)

// FuzzMatch compares match with path.Match where both define the result:
// ASCII only (path.Match works on runes, fnmatch in the C locale on bytes),
// no '/', no "[!" (path.Match has only "[^") and a well-formed pattern.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", virtioPCIAlias},
		{"a*b?c[0-9]", "axxbyc5"},
		{"x[^a-c]*", "xd"},
		{`a\*b`, "a*b"},
		{"*a*a*a*", "aaaa"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := match(pattern, name)
		if strings.Contains(pattern+name, "/") || strings.Contains(pattern, "[!") || !isASCII(pattern+name) {
			return
		}
		want, err := path.Match(pattern, name)
		if err != nil {
			return
		}
		if got != want {
			t.Fatalf("match(%q, %q) = %t, path.Match says %t", pattern, name, got, want)
		}
	})
}

// FuzzIndexLine feeds arbitrary lines to the index parsers: no panic, and
// an alias line that parses matches its own pattern's literal text.
func FuzzIndexLine(f *testing.F) {
	for _, s := range []string{
		"kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko",
		"softdep ext4 pre: crc32c post: x",
		"alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci",
		"alias fs-ext4 ext4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ix := &Index{mods: map[string]modEntry{}, softPre: map[string][]string{}, softPost: map[string][]string{}, builtin: map[string]bool{}}
		_ = ix.parseDepLine(line)
		_ = ix.parseSoftdepLine(line)
		_ = ix.parseBuiltinLine(line)
		if err := ix.aliases.parseLine(line); err == nil {
			pat := strings.Fields(line)[1]
			if !strings.ContainsAny(pat, `*?[\`) {
				if got := ix.MatchAlias(pat); len(got) != 1 || got[0] != Normalize(strings.Fields(line)[2]) {
					t.Fatalf("alias line %q: MatchAlias(%q) = %v", line, pat, got)
				}
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
