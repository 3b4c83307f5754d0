package bzimage

import (
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"
)

// MaxKernelSize caps the decompressed size a payload may declare (the
// uncompressed vmlinux plus its relocations; Debian's are about 70 MiB).
const MaxKernelSize = 1 << 30

// sizeWordLen is the length of the little-endian decompressed size that the
// kernel build (scripts/Makefile.lib, size_append) writes after the
// compressed stream of every format. It is part of payload_length. The
// kernel's own decompressors read it; the command-line tools do not expect
// it (zstd and lz4 refuse the payload, lz4 reads it as a block), so it is
// split off before decoding and checked against the output.
const sizeWordLen = 4

// decoders decode a stream in process.
var decoders = map[Format]func(io.Reader) (io.Reader, error){
	Gzip: func(r io.Reader) (io.Reader, error) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		return zr, nil
	},
	Bzip2: func(r io.Reader) (io.Reader, error) { return bzip2.NewReader(r), nil },
	// The kernel's lzma is the legacy .lzma ("lzma alone") format.
	LZMA: func(r io.Reader) (io.Reader, error) { return lzma.NewReader(r) },
	Zstd: func(r io.Reader) (io.Reader, error) {
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxKernelSize))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	},
	// The kernel's lz4 is the legacy frame format (lz4 -l).
	LZ4: func(r io.Reader) (io.Reader, error) { return lz4.NewReader(r), nil },
}

// commands are the external decoders for formats no Go package available
// to this module decodes: the kernel's xz streams use the x86 BCJ filter
// (scripts/xz_wrap.sh), which the Go xz package lacks, and there is no Go
// lzo decoder. They get the stream without the size word.
var commands = map[Format][]string{
	XZ:  {"xz", "-dc", "--single-stream"},
	LZO: {"lzop", "-dcq"},
}

// Decompress expands a kernel payload of format f: the compressed stream
// followed by the kernel build's 4-byte size word. The output must have
// exactly the size the word declares.
func Decompress(ctx context.Context, p []byte, f Format) ([]byte, error) {
	if len(p) <= sizeWordLen {
		return nil, fmt.Errorf("%s kernel payload: %d bytes, too short for a stream and its size word", f, len(p))
	}
	stream := p[:len(p)-sizeWordLen]
	size := binary.LittleEndian.Uint32(p[len(p)-sizeWordLen:])
	if size > MaxKernelSize {
		return nil, fmt.Errorf("%s kernel payload declares %d bytes decompressed, more than %d", f, size, MaxKernelSize)
	}
	var out []byte
	var err error
	if dec, ok := decoders[f]; ok {
		out, err = decode(dec, stream, size)
	} else if argv, ok := commands[f]; ok {
		out, err = run(ctx, argv, stream)
	} else {
		return nil, fmt.Errorf("kernel payload compressed with %s: no decompressor", f)
	}
	if err != nil {
		return nil, fmt.Errorf("decompress %s kernel payload: %w", f, err)
	}
	if uint64(len(out)) != uint64(size) {
		return nil, fmt.Errorf("decompress %s kernel payload: %d bytes, its size word says %d", f, len(out), size)
	}
	return out, nil
}

// errTooLong reports output past the size word's length.
var errTooLong = errors.New("output longer than the size word says")

// decode reads at most size+1 bytes from the decoder, so a lying size word
// costs no more memory than it declares.
func decode(dec func(io.Reader) (io.Reader, error), stream []byte, size uint32) ([]byte, error) {
	r, err := dec(bytes.NewReader(stream))
	if err != nil {
		return nil, err
	}
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(size, 64<<20)))
	n, err := io.Copy(buf, io.LimitReader(r, int64(size)+1))
	if err != nil {
		return nil, err
	}
	if n > int64(size) {
		return nil, errTooLong
	}
	return buf.Bytes(), nil
}

// run pipes stream through an external decoder.
func run(ctx context.Context, argv []string, stream []byte) ([]byte, error) {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(stream)
	cmd.Stdout = &out
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", argv[0], err, bytes.TrimSpace(stderr.Bytes()))
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
