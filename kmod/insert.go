package kmod

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Inserter is the kernel's module-loading interface, injected so that the
// Loader can be tested without root.
type Inserter interface {
	// FinitModule loads the module in f (finit_module(2)). flags may hold
	// unix.MODULE_INIT_COMPRESSED_FILE.
	FinitModule(f *os.File, params string, flags int) error
	// InitModule loads a module image from memory (init_module(2)).
	InitModule(image []byte, params string) error
}

// Syscalls is the real Inserter.
type Syscalls struct{}

// FinitModule calls finit_module(2).
func (Syscalls) FinitModule(f *os.File, params string, flags int) error {
	return unix.FinitModule(int(f.Fd()), params, flags)
}

// InitModule calls init_module(2).
func (Syscalls) InitModule(image []byte, params string) error {
	return unix.InitModule(image, params)
}

// maxModuleImage caps a decompressed module (the largest Debian modules
// are tens of MB).
const maxModuleImage = 256 << 20

// insertFile loads one module file: plain .ko through finit_module, .ko.gz
// decompressed here, .ko.xz/.ko.zst handed to the kernel's own decompressor
// (CONFIG_MODULE_DECOMPRESS).
func insertFile(ins Inserter, path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	switch {
	case strings.HasSuffix(path, ".ko.gz"):
		img, err := gunzip(f)
		if err != nil {
			return fmt.Errorf("decompress: %w", err)
		}
		return ins.InitModule(img, params)
	case strings.HasSuffix(path, ".ko.xz"), strings.HasSuffix(path, ".ko.zst"):
		err := ins.FinitModule(f, params, unix.MODULE_INIT_COMPRESSED_FILE)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w (the kernel cannot decompress %s modules: it lacks CONFIG_MODULE_DECOMPRESS, "+
				"and nbdboot decompresses only .ko.gz; ship the modules uncompressed)", err, path[strings.LastIndexByte(path, '.')+1:])
		}
		return err
	}
	return ins.FinitModule(f, params, 0)
}

func gunzip(r io.Reader) ([]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	img, err := io.ReadAll(io.LimitReader(zr, maxModuleImage+1))
	if err != nil {
		return nil, err
	}
	if len(img) > maxModuleImage {
		return nil, fmt.Errorf("module larger than %d bytes", maxModuleImage)
	}
	return img, nil
}
