package boot

import (
	"fmt"
	"os"
	"strings"
)

// Action is one step of a mount table: a directory or a mount, applied in
// order (u-root's libinit style: the table is a list of values).
type Action interface {
	Apply(fs FS) error
	String() string
}

// Dir creates a directory (and its parents).
type Dir struct {
	Path string
	Mode os.FileMode
}

// Apply creates the directory.
func (d Dir) Apply(fs FS) error {
	if err := fs.MkdirAll(d.Path, d.Mode); err != nil {
		return fmt.Errorf("mkdir %s: %w", d.Path, err)
	}
	return nil
}

func (d Dir) String() string { return fmt.Sprintf("mkdir -m %#o %s", d.Mode, d.Path) }

// Mount mounts one filesystem.
type Mount struct {
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
}

// Apply mounts; FS.Mount treats an already mounted target as success.
func (m Mount) Apply(fs FS) error {
	if err := fs.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	return nil
}

func (m Mount) String() string {
	opts := []string{}
	if m.Flags&msRdonly != 0 {
		opts = append(opts, "ro")
	}
	if m.Data != "" {
		opts = append(opts, m.Data)
	}
	o := ""
	if len(opts) > 0 {
		o = " -o " + strings.Join(opts, ",")
	}
	return fmt.Sprintf("-t %s%s %s on %s", m.FSType, o, m.Source, m.Target)
}

// Apply runs a table of actions in order, stopping at the first error.
func Apply(fs FS, table []Action) error {
	for _, a := range table {
		if err := a.Apply(fs); err != nil {
			return err
		}
	}
	return nil
}
