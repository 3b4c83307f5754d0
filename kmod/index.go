package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Limits on the index files: Debian's modules.alias is about 1.5 MB and its
// longest modules.dep line a few KiB.
const (
	maxIndexFile = 64 << 20
	maxIndexLine = 1 << 20
)

// Index is the parsed depmod output of one module tree.
type Index struct {
	// Dir is the module tree, like /lib/modules/6.1.0-18-amd64.
	Dir string

	mods     map[string]modEntry // by canonical name
	softPre  map[string][]string
	softPost map[string][]string
	aliases  aliasTable
	builtin  map[string]bool
	bAliases aliasTable // modules.builtin.alias
}

// modEntry is one modules.dep line.
type modEntry struct {
	path string   // as written, relative to Dir
	deps []string // canonical names, in modules.dep order
}

// ReadIndex reads modules.dep (required) and modules.softdep,
// modules.alias, modules.builtin and modules.builtin.alias (each optional)
// from dir.
func ReadIndex(dir string) (*Index, error) {
	ix := &Index{
		Dir:      dir,
		mods:     make(map[string]modEntry),
		softPre:  make(map[string][]string),
		softPost: make(map[string][]string),
		builtin:  make(map[string]bool),
	}
	files := []struct {
		name     string
		required bool
		parse    func(line string) error
	}{
		{"modules.dep", true, ix.parseDepLine},
		{"modules.softdep", false, ix.parseSoftdepLine},
		{"modules.alias", false, func(l string) error { return ix.aliases.parseLine(l) }},
		{"modules.builtin", false, ix.parseBuiltinLine},
		{"modules.builtin.alias", false, func(l string) error { return ix.bAliases.parseLine(l) }},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		err := readLines(p, f.parse)
		if errors.Is(err, fs.ErrNotExist) && !f.required {
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// readLines calls parse for each line of the file that is neither blank
// nor a comment, streaming it with bounded memory.
func readLines(path string, parse func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read module index: %w", err)
	}
	defer f.Close()
	lim := &io.LimitedReader{R: f, N: maxIndexFile + 1}
	sc := bufio.NewScanner(lim)
	sc.Buffer(make([]byte, 0, 64<<10), maxIndexLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if err := parse(line); err != nil {
			return fmt.Errorf("%s line %d: %w", path, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s line %d: %w", path, n+1, err)
	}
	if lim.N == 0 {
		return fmt.Errorf("%s: larger than %d bytes", path, maxIndexFile)
	}
	return nil
}

// parseDepLine parses "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko …".
func (ix *Index) parseDepLine(line string) error {
	p, rest, ok := strings.Cut(line, ":")
	if !ok || p == "" {
		return fmt.Errorf("want \"PATH: DEPS…\", got %q", line)
	}
	e := modEntry{path: p}
	for _, d := range strings.Fields(rest) {
		e.deps = append(e.deps, nameFromPath(d))
	}
	ix.mods[nameFromPath(p)] = e
	return nil
}

// parseSoftdepLine parses "softdep MODULE pre: A B post: C". Other
// directives, which modprobe.d files allow, are ignored.
func (ix *Index) parseSoftdepLine(line string) error {
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "softdep" {
		return nil
	}
	if len(f) < 2 {
		return fmt.Errorf("want \"softdep MODULE pre: … post: …\", got %q", line)
	}
	mod := Normalize(f[1])
	var list map[string][]string
	for _, w := range f[2:] {
		switch w {
		case "pre:":
			list = ix.softPre
		case "post:":
			list = ix.softPost
		default:
			if list != nil { // words before pre:/post: are ignored, as kmod does
				list[mod] = append(list[mod], w)
			}
		}
	}
	return nil
}

// parseBuiltinLine parses "kernel/drivers/block/loop.ko".
func (ix *Index) parseBuiltinLine(line string) error {
	ix.builtin[nameFromPath(line)] = true
	return nil
}

// Lookup resolves a module name or alias the way modprobe does: a module
// in modules.dep first, else the modules whose modules.alias patterns
// match, else a builtin module (by name or modules.builtin.alias). It
// returns the loadable modules' canonical names, or builtin true.
func (ix *Index) Lookup(name string) (mods []string, builtin bool) {
	n := Normalize(name)
	if _, ok := ix.mods[n]; ok {
		return []string{n}, false
	}
	if m := ix.aliases.match(normalizeAlias(name)); len(m) > 0 {
		return m, false
	}
	if ix.builtin[n] || len(ix.bAliases.match(normalizeAlias(name))) > 0 {
		return nil, true
	}
	return nil, false
}

// MatchAlias returns the loadable modules whose modules.alias patterns
// match a device modalias, in modules.alias order.
func (ix *Index) MatchAlias(modalias string) []string {
	return ix.aliases.match(normalizeAlias(modalias))
}

// Path returns the file of a module, under Dir.
func (ix *Index) Path(name string) (string, bool) {
	e, ok := ix.mods[Normalize(name)]
	if !ok {
		return "", false
	}
	if filepath.IsAbs(e.path) {
		return e.path, true
	}
	return filepath.Join(ix.Dir, e.path), true
}

// Deps returns a module's hard dependencies in modules.dep order; they load
// last to first.
func (ix *Index) Deps(name string) []string { return ix.mods[Normalize(name)].deps }

// SoftDeps returns the soft pre- and post-dependencies of a module, as
// names or aliases.
func (ix *Index) SoftDeps(name string) (pre, post []string) {
	n := Normalize(name)
	return ix.softPre[n], ix.softPost[n]
}

// Builtin reports whether a module is compiled into the kernel.
func (ix *Index) Builtin(name string) bool { return ix.builtin[Normalize(name)] }
