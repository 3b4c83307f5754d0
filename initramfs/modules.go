package initramfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultModules are the modules a diskless virtio or e1000 guest with an
// ext4, squashfs or overlay root on NBD needs. Their dependencies and
// softdeps (ext4 needs crc32c through modules.softdep) are added by Resolve.
var DefaultModules = []string{
	"nbd",
	"virtio_pci", "virtio_net", "virtio_blk",
	"e1000", "e1000e",
	"ext4", "squashfs", "overlay",
}

// Modules is a kernel's module tree, ROOT/lib/modules/VERSION or a
// modules directory given itself, with its database files parsed.
type Modules struct {
	Version string // kernel release, e.g. 6.1.0-56-amd64
	// Layout says which form the path given to LoadModules had
	// (LayoutPackage or LayoutModulesDir).
	Layout string

	dir string // the VERSION directory

	dep      map[string]depEntry
	depOrder []string // module names in modules.dep order
	soft     map[string]softdep
	alias    []aliasLine
	builtin  map[string]bool
}

// The two forms of a path given to LoadModules.
const (
	LayoutPackage    = "an unpacked kernel package (DIR/lib/modules/VERSION)"
	LayoutModulesDir = "a modules directory (like /lib/modules/VERSION)"
)

// LoadModules reads the module database of a kernel. root is either an
// unpacked kernel package, holding lib/modules/VERSION (an empty version
// picks the only one there), or a modules directory itself, holding
// modules.dep, as dracut's --kmoddir takes it (/lib/modules/$(uname -r)):
// its name is the version.
func LoadModules(root, version string) (*Modules, error) {
	if _, err := os.Stat(filepath.Join(root, "lib", "modules")); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(root, "modules.dep")); err == nil {
			return loadModulesDir(root, version)
		}
		return nil, fmt.Errorf("kernel modules under %s: neither lib/modules/VERSION (an unpacked kernel package) nor modules.dep (a modules directory like /lib/modules/VERSION) is there", root)
	}
	if version == "" {
		ents, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
		if err != nil {
			return nil, fmt.Errorf("kernel modules under %s: %w", root, err)
		}
		var versions []string
		for _, e := range ents {
			if e.IsDir() {
				versions = append(versions, e.Name())
			}
		}
		if len(versions) != 1 {
			return nil, fmt.Errorf("kernel modules under %s: want one version in lib/modules, found %q", root, versions)
		}
		version = versions[0]
	}
	return readModules(&Modules{Version: version, Layout: LayoutPackage, dir: filepath.Join(root, "lib", "modules", version)})
}

// loadModulesDir loads a modules directory given itself.
func loadModulesDir(dir, version string) (*Modules, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("kernel modules in %s: %w", dir, err)
	}
	name := filepath.Base(abs)
	if version != "" && version != name {
		return nil, fmt.Errorf("kernel modules in %s: a modules directory of version %s, not %s", dir, name, version)
	}
	return readModules(&Modules{Version: name, Layout: LayoutModulesDir, dir: abs})
}

// readModules parses the database files of m.Dir().
func readModules(m *Modules) (*Modules, error) {
	version := m.Version
	read := func(name string, required bool) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(m.Dir(), name))
		if err != nil && (required || !errors.Is(err, os.ErrNotExist)) {
			return nil, fmt.Errorf("kernel %s: %w (run depmod)", version, err)
		}
		return b, nil
	}
	b, err := read("modules.dep", true)
	if err != nil {
		return nil, err
	}
	if m.dep, err = parseDep(b); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Dir(), err)
	}
	m.depOrder = depOrder(b)
	if b, err = read("modules.softdep", false); err != nil {
		return nil, err
	}
	if m.soft, err = parseSoftdep(b); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Dir(), err)
	}
	if b, err = read("modules.alias", false); err != nil {
		return nil, err
	}
	if m.alias, err = parseAlias(b); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Dir(), err)
	}
	if b, err = read("modules.builtin", false); err != nil {
		return nil, err
	}
	m.builtin = parseBuiltin(b)
	return m, nil
}

// depOrder lists the module names of modules.dep in file order.
func depOrder(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if p, _, ok := strings.Cut(sc.Text(), ":"); ok && p != "" {
			out = append(out, modName(p))
		}
	}
	return out
}

// Dir is the VERSION directory: ROOT/lib/modules/VERSION, or the modules
// directory given.
func (m *Modules) Dir() string { return m.dir }

// aliasTargets returns the modules an exact (wildcard-free) alias names.
func (m *Modules) aliasTargets(name string) []string {
	var out []string
	for _, a := range m.alias {
		if a.pattern == name {
			out = append(out, a.module)
		}
	}
	return out
}

// Resolve returns, sorted, the loadable modules that names need: each
// module, its modules.dep dependencies and its softdeps, recursively.
// Built-in modules are dropped; a name may also be an exact alias
// ("crc32c"). A name found nowhere is an error.
func (m *Modules) Resolve(names []string) ([]string, error) {
	set := make(map[string]bool)
	for _, n := range names {
		if err := m.add(set, n, true); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// add puts name and what it needs into set. Softdeps that resolve to
// nothing are skipped, as modprobe does; a missing requested or modules.dep
// module is an error.
func (m *Modules) add(set map[string]bool, raw string, required bool) error {
	name := modName(raw)
	if set[name] || m.builtin[name] {
		return nil
	}
	e, ok := m.dep[name]
	if !ok {
		targets := m.aliasTargets(raw) // aliases keep their dashes
		if len(targets) == 0 && raw != name {
			targets = m.aliasTargets(name)
		}
		if len(targets) == 0 {
			if !required {
				return nil
			}
			return fmt.Errorf("kernel module %q: not in modules.dep, modules.builtin or modules.alias of %s", raw, m.Version)
		}
		for _, t := range targets {
			if err := m.add(set, t, required); err != nil {
				return err
			}
		}
		return nil
	}
	set[name] = true
	for _, d := range e.deps {
		if err := m.add(set, d, true); err != nil {
			return fmt.Errorf("dependency of %s: %w", name, err)
		}
	}
	sd := m.soft[name]
	for _, d := range append(slices.Clone(sd.pre), sd.post...) {
		if err := m.add(set, d, false); err != nil {
			return err
		}
	}
	return nil
}

// Database returns the module database files for the modules in set,
// filtered so that they name only those modules.
func (m *Modules) Database(set []string) (map[string][]byte, error) {
	in := make(map[string]bool, len(set))
	for _, n := range set {
		in[n] = true
	}
	var dep, soft, alias, order bytes.Buffer
	for _, n := range m.depOrder {
		if in[n] {
			e := m.dep[n]
			fmt.Fprintf(&dep, "%s:%s\n", e.path, prefixSpace(e.deps))
		}
	}
	for _, a := range m.alias {
		if in[a.module] {
			fmt.Fprintln(&alias, a.line)
		}
	}
	softNames := make([]string, 0, len(m.soft))
	for n := range m.soft {
		softNames = append(softNames, n)
	}
	slices.Sort(softNames)
	for _, n := range softNames {
		sd := m.soft[n]
		if !in[n] || len(sd.pre)+len(sd.post) == 0 {
			continue
		}
		fmt.Fprintf(&soft, "softdep %s", n)
		if len(sd.pre) > 0 {
			fmt.Fprintf(&soft, " pre:%s", prefixSpace(sd.pre))
		}
		if len(sd.post) > 0 {
			fmt.Fprintf(&soft, " post:%s", prefixSpace(sd.post))
		}
		soft.WriteByte('\n')
	}
	files := map[string][]byte{
		"modules.dep":     dep.Bytes(),
		"modules.softdep": soft.Bytes(),
		"modules.alias":   alias.Bytes(),
	}
	if b, err := os.ReadFile(filepath.Join(m.Dir(), "modules.order")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			if in[modName(l)] {
				fmt.Fprintln(&order, l)
			}
		}
		files["modules.order"] = order.Bytes()
	}
	for _, name := range []string{"modules.builtin", "modules.builtin.modinfo"} {
		b, err := os.ReadFile(filepath.Join(m.Dir(), name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kernel %s: %w", m.Version, err)
		}
		files[name] = b
	}
	return files, nil
}

func prefixSpace(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return " " + strings.Join(s, " ")
}

// Stage copies the modules in set and their database files into
// dir/lib/modules/VERSION, with fixed permissions.
func (m *Modules) Stage(dir string, set []string) error {
	dst := filepath.Join(dir, "lib", "modules", m.Version)
	for _, n := range set {
		e, ok := m.dep[n]
		if !ok {
			return fmt.Errorf("stage kernel module %q: not in modules.dep", n)
		}
		if err := copyFile(filepath.Join(m.Dir(), e.path), filepath.Join(dst, e.path)); err != nil {
			return fmt.Errorf("stage kernel module %s: %w", n, err)
		}
	}
	db, err := m.Database(set)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for name, b := range db {
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o644); err != nil {
			return fmt.Errorf("stage %s: %w", name, err)
		}
	}
	return fixModes(filepath.Join(dir, "lib"))
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// fixModes sets 0755 on directories and 0644 on files under dir, so the
// archive does not depend on the umask.
func fixModes(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
}
