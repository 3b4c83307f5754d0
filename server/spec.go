package server

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nbdboot/nbdboot/internal/tomlx"
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
	// copy-on-write overlay over the (then read-only) file: NAME/CLIENT-ID
	// is CLIENT-ID's, plain NAME the one of the client's IP address.
	COW string `toml:"cow"`
	// Grace is how long an ephemeral overlay outlives its client's last
	// connection (0: the state directory's default, 60 s). cow only.
	Grace Duration `toml:"grace"`
	// Quota caps the bytes each overlay holds (0: no cap); a write past
	// it gets ENOSPC. cow only.
	Quota Size `toml:"quota"`
	// Allow, if set, lists the client addresses or networks (CIDR) that
	// may use the export; others are refused at the handshake and do not
	// see it listed.
	Allow []string `toml:"allow"`
	// Pin ties overlay client IDs to the addresses or networks that may
	// use them, CLIENT-ID = ["10.0.0.21"]. cow only.
	Pin map[string][]string `toml:"pin"`
	// PinnedOnly refuses every client ID that Pin does not name. cow only.
	PinnedOnly bool `toml:"pinned_only"`
	// MaxOverlays caps the overlays the export keeps (0: 1000);
	// MaxOverlaysPerAddress the overlays one address uses at once (0: 4);
	// NewOverlaysPerMinute the overlays made a minute (0: 60). A client
	// past a cap is refused at the handshake. cow only.
	MaxOverlays           int `toml:"max_overlays"`
	MaxOverlaysPerAddress int `toml:"max_overlays_per_address"`
	NewOverlaysPerMinute  int `toml:"new_overlays_per_minute"`
}

// Duration is a time.Duration written as "90s" or "10m" in TOML (the
// type the PXE section shares).
type Duration = tomlx.Duration

// Size is a byte count written with an optional K, M, G or T suffix
// (powers of 1024): "512M", "2G", "4096".
type Size int64

// ParseSize parses a byte count with an optional K, M, G or T suffix.
func ParseSize(s string) (Size, error) {
	num, shift := s, 0
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift != 0 {
			num = s[:n-1]
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q: want a non-negative count of bytes with an optional K, M, G or T suffix", s)
	}
	return Size(v << shift), nil
}

// UnmarshalText parses a size such as "2G".
func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// UnmarshalTOML takes a size as a string ("2G") or a plain integer.
func (z *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("size %d: negative", x)
		}
		*z = Size(x)
		return nil
	case string:
		return z.UnmarshalText([]byte(x))
	}
	return fmt.Errorf("size %v: want a string such as \"2G\" or an integer", v)
}

// MarshalText formats z in bytes.
func (z Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(z), 10)), nil }

// Copy-on-write modes.
const (
	COWEphemeral  = "ephemeral"
	COWPersistent = "persistent"
)

// ParseExportSpec parses a command-line export,
// NAME=PATH[,ro][,cow[=persistent|ephemeral]][,grace=DURATION][,quota=SIZE][,desc=TEXT]. Options are
// comma-separated keys, some with =value; an unknown key is an error.
// TEXT cannot hold a comma (use the config file for that).
func ParseExportSpec(s string) (ExportConfig, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok {
		return ExportConfig{}, fmt.Errorf("export %q: want NAME=PATH[,ro][,cow[=persistent]][,grace=DURATION][,quota=SIZE][,desc=TEXT]", s)
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
		case "grace":
			if err := (&ec.Grace).UnmarshalText([]byte(val)); err != nil || !hasVal {
				return ExportConfig{}, fmt.Errorf("export %q: option grace=%q: want a duration such as 90s or 10m", name, val)
			}
		case "quota":
			if err := (&ec.Quota).UnmarshalText([]byte(val)); err != nil || !hasVal {
				return ExportConfig{}, fmt.Errorf("export %q: option quota=%q: want a size such as 512M or 2G", name, val)
			}
		default:
			return ExportConfig{}, fmt.Errorf("export %q: unknown option %q (known: ro, cow[=persistent], grace=DURATION, quota=SIZE, desc=TEXT)", name, opt)
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
	if ec.COW == "" && (ec.Grace != 0 || ec.Quota != 0) {
		return fmt.Errorf("export %q: grace and quota apply to cow exports only", ec.Name)
	}
	if ec.Grace < 0 || ec.Quota < 0 || (ec.Quota > 0 && ec.Quota < 4096) {
		return fmt.Errorf("export %q: grace must be >= 0, quota 0 or at least 4K", ec.Name)
	}
	if ec.COW != "" && ec.ReadOnly {
		return fmt.Errorf("export %q: cow and ro exclude each other (cow exports are read-only, their overlays writable)", ec.Name)
	}
	if ec.MaxOverlays < 0 || ec.MaxOverlaysPerAddress < 0 || ec.NewOverlaysPerMinute < 0 {
		return fmt.Errorf("export %q: max_overlays, max_overlays_per_address and new_overlays_per_minute must be >= 0", ec.Name)
	}
	if ec.COW == "" && ec.MaxOverlays+ec.MaxOverlaysPerAddress+ec.NewOverlaysPerMinute != 0 {
		return fmt.Errorf("export %q: overlay caps apply to cow exports only", ec.Name)
	}
	if _, err := parseAccess(ec); err != nil {
		return err
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
