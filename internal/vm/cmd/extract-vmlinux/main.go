// Command extract-vmlinux writes the ELF kernel found inside a bzImage, like
// the kernel tree's scripts/extract-vmlinux.
//
//	extract-vmlinux -o vmlinux bzImage
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/nbdboot/nbdboot/internal/vm/bzimage"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "extract-vmlinux: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("o", "", "output `file` (required)")
	flag.Parse()
	if *out == "" || flag.NArg() != 1 {
		return fmt.Errorf("usage: extract-vmlinux -o vmlinux bzImage")
	}
	b, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		return err
	}
	elf, err := bzimage.Vmlinux(context.Background(), b)
	if err != nil {
		return fmt.Errorf("%s: %w", flag.Arg(0), err)
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, elf, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}
