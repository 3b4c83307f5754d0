package initramfs

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"
)

// modName turns a module path or name into the kernel's canonical module
// name: the base name without .ko and compression suffixes, '-' as '_'.
func modName(s string) string {
	s = path.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// depEntry is one line of modules.dep.
type depEntry struct {
	path string   // relative to lib/modules/VERSION
	deps []string // paths of the modules it needs, in load order reversed
}

// parseDep parses modules.dep: "path: dep1 dep2 ...".
func parseDep(b []byte) (map[string]depEntry, error) {
	out := make(map[string]depEntry)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, deps, ok := strings.Cut(line, ":")
		if !ok || p == "" {
			return nil, fmt.Errorf("modules.dep line %d: no \"path:\" in %q", n, line)
		}
		out[modName(p)] = depEntry{path: p, deps: strings.Fields(deps)}
	}
	return out, sc.Err()
}

// softdep holds the "softdep MOD pre: ... post: ..." lines of
// modules.softdep for one module.
type softdep struct {
	pre, post []string // module names or aliases
}

// parseSoftdep parses modules.softdep.
func parseSoftdep(b []byte) (map[string]softdep, error) {
	out := make(map[string]softdep)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] != "softdep" || len(f) < 2 {
			return nil, fmt.Errorf("modules.softdep line %d: want \"softdep MODULE pre: ... post: ...\", got %q", n, sc.Text())
		}
		sd := out[modName(f[1])]
		var list *[]string
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				list = &sd.pre
			case "post:":
				list = &sd.post
			default:
				// Words before pre:/post: are ignored, as kmod does
				// (depmod writes "softdep cifs gcm").
				if list != nil {
					*list = append(*list, w)
				}
			}
		}
		out[modName(f[1])] = sd
	}
	return out, sc.Err()
}

// aliasLine is one "alias PATTERN MODULE" line of modules.alias.
type aliasLine struct {
	pattern, module string
	line            string
}

// parseAlias parses modules.alias, keeping the lines for filtering.
func parseAlias(b []byte) ([]aliasLine, error) {
	var out []aliasLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] != "alias" || len(f) != 3 {
			return nil, fmt.Errorf("modules.alias line %d: want \"alias PATTERN MODULE\", got %q", n, sc.Text())
		}
		out = append(out, aliasLine{pattern: f[1], module: modName(f[2]), line: sc.Text()})
	}
	return out, sc.Err()
}

// parseBuiltin parses modules.builtin: one path per line.
func parseBuiltin(b []byte) map[string]bool {
	out := make(map[string]bool)
	for _, l := range strings.Fields(string(b)) {
		out[modName(l)] = true
	}
	return out
}
