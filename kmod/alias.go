package kmod

import (
	"fmt"
	"strings"
)

// aliasTable holds modules.alias patterns, bucketed by the literal text
// before their first ':' ("pci", "virtio", "usb"…) so that a modalias is
// matched only against the patterns that can match it. Patterns whose
// first ':' comes after a wildcard (or that have none) sit in the "" bucket
// that every lookup scans.
type aliasTable struct {
	buckets map[string][]aliasEntry
	n       int // entries, for ordering matches
}

type aliasEntry struct {
	pattern string // normalized
	module  string // canonical name
	seq     int    // position in the file
}

// parseLine parses "alias PATTERN MODULE".
func (t *aliasTable) parseLine(line string) error {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "alias" {
		return fmt.Errorf("want \"alias PATTERN MODULE\", got %q", line)
	}
	if t.buckets == nil {
		t.buckets = make(map[string][]aliasEntry)
	}
	pat := normalizeAlias(f[1])
	key := bucketOf(pat, true)
	t.buckets[key] = append(t.buckets[key], aliasEntry{pattern: pat, module: Normalize(f[2]), seq: t.n})
	t.n++
	return nil
}

// bucketOf returns the text before the first ':' of s when it is literal
// (for a pattern: no wildcard before it), else "".
func bucketOf(s string, isPattern bool) string {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return ""
	}
	if isPattern && strings.ContainsAny(s[:i], `*?[\`) {
		return ""
	}
	return s[:i]
}

// match returns the modules whose patterns match s, each once, in file
// order.
func (t *aliasTable) match(s string) []string {
	if t.buckets == nil {
		return nil
	}
	var hits []aliasEntry
	scan := func(key string) {
		for _, e := range t.buckets[key] {
			if match(e.pattern, s) {
				hits = append(hits, e)
			}
		}
	}
	scan("")
	if key := bucketOf(s, false); key != "" {
		scan(key)
	}
	// Merge the two buckets back into file order (insertion sort: hits
	// are few).
	for i := 1; i < len(hits); i++ {
		for j := i; j > 0 && hits[j].seq < hits[j-1].seq; j-- {
			hits[j], hits[j-1] = hits[j-1], hits[j]
		}
	}
	var mods []string
	seen := make(map[string]bool)
	for _, h := range hits {
		if !seen[h.module] {
			seen[h.module] = true
			mods = append(mods, h.module)
		}
	}
	return mods
}
