package media

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// Input is one file that went into a medium.
type Input struct {
	Name   string // its role: kernel, initramfs, isolinux, …
	Path   string // where it was read from
	Size   int64
	SHA256 string
}

// Result says what was built from what.
type Result struct {
	Kind    Kind
	Path    string
	Size    int64
	SHA256  string
	Cmdline string
	// URLs are what the floppy fetches (kernel, initramfs).
	URLs   []string
	Inputs []Input
}

// String is the report nbdboot media prints.
func (r *Result) String() string {
	var b strings.Builder
	what := string(r.Kind) + " image"
	if r.Kind.Hybrid() {
		what = "hybrid USB stick/CD image (BIOS and UEFI)"
	}
	fmt.Fprintf(&b, "%s: %s, %d bytes (%.1f MiB), sha256 %s\n", r.Path, what, r.Size, float64(r.Size)/(1<<20), r.SHA256)
	if r.Cmdline != "" {
		fmt.Fprintf(&b, "  %-14s %s\n", "command line:", r.Cmdline)
	} else {
		fmt.Fprintf(&b, "  %-14s %s\n", "command line:", "(the server's, from its script)")
	}
	for _, u := range r.URLs {
		fmt.Fprintf(&b, "  %-14s %s\n", "fetches:", u)
	}
	for _, in := range r.Inputs {
		fmt.Fprintf(&b, "  %-14s %s (%d bytes, sha256 %s)\n", in.Name+":", in.Path, in.Size, in.SHA256[:16])
	}
	return b.String()
}

// hashFile digests one input.
func hashFile(name, path string) (Input, error) {
	f, err := os.Open(path)
	if err != nil {
		return Input{}, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Input{}, fmt.Errorf("%s: read %s: %w", name, path, err)
	}
	return Input{Name: name, Path: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// serial derives a FAT volume serial number from everything that goes into
// the medium, so equal inputs give equal images and different ones differ.
func serial(c Config, ins []Input, salt string) uint32 {
	h := sha256.New()
	kind := string(c.Kind)
	if c.Kind.Hybrid() {
		kind = "hybrid" // usb and iso are one image
	}
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s\x00%s\x00%s\x00%d\x00%s\x00", kind, c.Cmdline, c.Timeout, c.KernelURL, c.InitramfsURL, c.ScriptURL, c.Epoch.Unix(), salt)
	for _, in := range ins {
		fmt.Fprintf(h, "%s\x00%s\x00", in.Name, in.SHA256)
	}
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
