package kmod

import (
	"path"
	"strings"
)

// Normalize returns the kernel's canonical module name: '-' becomes '_'
// (modprobe treats "virtio-net" and "virtio_net" alike).
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// moduleSuffixes are the file endings of modules, compressed or not.
var moduleSuffixes = []string{".ko", ".ko.gz", ".ko.xz", ".ko.zst"}

// nameFromPath returns the canonical module name of a module file path,
// like kernel/fs/ext4/ext4.ko.xz -> ext4.
func nameFromPath(p string) string {
	base := path.Base(p)
	for _, s := range moduleSuffixes {
		if b, ok := strings.CutSuffix(base, s); ok {
			return Normalize(b)
		}
	}
	return Normalize(base)
}

// normalizeAlias replaces '-' by '_' outside [...] classes, as libkmod's
// alias_normalize does for both sides of an alias lookup.
func normalizeAlias(s string) string {
	if !strings.Contains(s, "-") {
		return s
	}
	b := []byte(s)
	inClass := false
	for i, c := range b {
		switch {
		case c == '[':
			inClass = true
		case c == ']':
			inClass = false
		case c == '-' && !inClass:
			b[i] = '_'
		}
	}
	return string(b)
}
