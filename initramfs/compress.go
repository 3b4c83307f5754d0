package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os/exec"
)

// Compression is how the cpio archive is compressed. The Debian kernel
// unpacks gzip, xz, lzma, bzip2, lzo, lz4 and zstd (CONFIG_RD_*).
type Compression string

// Supported compressions.
const (
	Gzip Compression = "gzip" // compress/gzip, no name or mtime in the header
	Zstd Compression = "zstd" // the zstd program, --no-check for the kernel
	None Compression = "none" // the plain cpio
)

// ParseCompression checks a -compress flag value.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case Gzip, Zstd, None:
		return c, nil
	}
	return "", fmt.Errorf("compression %q: want gzip, zstd or none", s)
}

// compress writes r to w compressed with c. The output depends only on the
// input bytes.
func compress(ctx context.Context, w io.Writer, r io.Reader, c Compression) error {
	switch c {
	case None:
		_, err := io.Copy(w, r)
		return err
	case Gzip, "":
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := io.Copy(zw, r); err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		return zw.Close()
	case Zstd:
		var stderr bytes.Buffer
		// The kernel's zstd decompressor wants no content checksum and
		// a window it can allocate: level 19 stays at 8 MiB.
		cmd := exec.CommandContext(ctx, "zstd", "-q", "-19", "--no-check", "-c")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = r, w, &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("zstd: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	}
	return fmt.Errorf("compression %q: want gzip, zstd or none", c)
}
