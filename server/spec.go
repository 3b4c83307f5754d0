package server

import (
	"fmt"
	"strings"

	"github.com/nbdboot/nbdboot/protocol"
)

// ExportConfig describes one export, from a NAME=PATH argument or from an
// [[export]] table of the config file.
type ExportConfig struct {
	Name        string `toml:"name"`
	Path        string `toml:"path"`
	ReadOnly    bool   `toml:"readonly"`
	Description string `toml:"description"`
	// COW, "ephemeral" or "persistent", gives every client its own
	// copy-on-write overlay over the (then read-only) file, served as
	// NAME/CLIENT-ID; plain NAME serves the file read-only.
	COW string `toml:"cow"`
}

// Copy-on-write modes.
const (
	COWEphemeral  = "ephemeral"
	COWPersistent = "persistent"
)

// ParseExportSpec parses a command-line export,
// NAME=PATH[,ro][,cow[=persistent|ephemeral]][,desc=TEXT]. Options are
// comma-separated keys, some with =value; an unknown key is an error.
// TEXT cannot hold a comma (use the config file for that).
func ParseExportSpec(s string) (ExportConfig, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok {
		return ExportConfig{}, fmt.Errorf("export %q: want NAME=PATH[,ro][,cow[=persistent]][,desc=TEXT]", s)
	}
	fields := strings.Split(rest, ",")
	ec := ExportConfig{Name: name, Path: fields[0]}
	seen := map[string]bool{}
	for _, opt := range fields[1:] {
		key, val, hasVal := strings.Cut(opt, "=")
		if seen[key] {
			return ExportConfig{}, fmt.Errorf("export %q: option %q given twice", name, key)
		}
		seen[key] = true
		switch key {
		case "ro":
			if hasVal {
				return ExportConfig{}, fmt.Errorf("export %q: option ro takes no value", name)
			}
			ec.ReadOnly = true
		case "desc":
			if !hasVal {
				return ExportConfig{}, fmt.Errorf("export %q: option desc needs a value (desc=TEXT)", name)
			}
			ec.Description = val
		case "cow":
			ec.COW = COWEphemeral
			if hasVal {
				ec.COW = val
				if val == "" {
					return ExportConfig{}, fmt.Errorf("export %q: cow=%q, want %s or %s", name, val, COWEphemeral, COWPersistent)
				}
			}
		default:
			return ExportConfig{}, fmt.Errorf("export %q: unknown option %q (known: ro, cow[=persistent], desc=TEXT)", name, opt)
		}
	}
	if err := ec.Validate(); err != nil {
		return ExportConfig{}, err
	}
	return ec, nil
}

// Validate checks an export's name, path and description.
func (ec ExportConfig) Validate() error {
	if err := ValidateExportName(ec.Name); err != nil {
		return err
	}
	if ec.Path == "" {
		return fmt.Errorf("export %q: empty path", ec.Name)
	}
	switch ec.COW {
	case "", COWEphemeral, COWPersistent:
	default:
		return fmt.Errorf("export %q: cow=%q, want %s or %s", ec.Name, ec.COW, COWEphemeral, COWPersistent)
	}
	if ec.COW != "" && ec.ReadOnly {
		return fmt.Errorf("export %q: cow and ro exclude each other (cow exports are read-only, their overlays writable)", ec.Name)
	}
	if len(ec.Description) > protocol.MaxStringLen || strings.ContainsRune(ec.Description, 0) {
		return fmt.Errorf("export %q: description longer than %d bytes or holding NUL", ec.Name, protocol.MaxStringLen)
	}
	return nil
}

// ValidateExportName checks that name can be served: non-empty, at most
// 4096 bytes, no NUL, and no '/', which is reserved for per-client names
// (NAME/CLIENT-ID).
func ValidateExportName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("export name is empty")
	case len(name) > protocol.MaxStringLen:
		return fmt.Errorf("export name %.32q...: longer than %d bytes", name, protocol.MaxStringLen)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("export name %q: holds a NUL byte", name)
	case strings.Contains(name, "/"):
		return fmt.Errorf("export name %q: holds '/', which is reserved for NAME/CLIENT-ID", name)
	}
	return nil
}
