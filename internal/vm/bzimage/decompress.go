package bzimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os/exec"
)

// decompressors are the external programs used for formats the standard
// library lacks. --single-stream (xz) and the zstd frame format stop at the
// end of the stream and ignore the size word the kernel build appends.
var decompressors = map[Format][]string{
	XZ:   {"xz", "-dc", "--single-stream"},
	Zstd: {"zstd", "-dcq"},
	LZ4:  {"lz4", "-dcq"},
}

// Decompress expands a payload of format f. Gzip is done in process; xz,
// zstd and lz4 run the system's decompressor.
func Decompress(ctx context.Context, p []byte, f Format) ([]byte, error) {
	if f == Gzip {
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("gunzip kernel payload: %w", err)
		}
		zr.Multistream(false)
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("gunzip kernel payload: %w", err)
		}
		return out, nil
	}
	argv, ok := decompressors[f]
	if !ok {
		return nil, fmt.Errorf("kernel payload compressed with %s: no decompressor", f)
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(p)
	cmd.Stdout = &out
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s kernel payload: %w: %s", argv[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}

// Vmlinux extracts the ELF kernel from bzImage b.
func Vmlinux(ctx context.Context, b []byte) ([]byte, error) {
	p, f, err := Payload(b)
	if err != nil {
		return nil, err
	}
	elf, err := Decompress(ctx, p, f)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(elf, []byte("\x7fELF")) {
		return nil, fmt.Errorf("decompressed %s payload (%d bytes) is not an ELF file", f, len(elf))
	}
	return elf, nil
}
