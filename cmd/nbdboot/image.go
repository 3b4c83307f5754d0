//go:build !nbdboot_init

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/nbdboot/nbdboot/labimage"
)

// runImage turns a root directory into a lab image (labimage.Build) and
// says what it changed.
func runImage(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("o", "", "output image `file` (required); replaced by rename when complete")
	format := fs.String("format", labimage.Ext4, "image format: ext4 or squashfs")
	size := fs.String("size", "", "ext4 image `size` (e.g. 4G, 512M); default: from the tree")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nbdboot image -o FILE [-format ext4|squashfs] [-size S] DIR\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("image: want -o FILE and one root directory")
	}
	o := labimage.Options{Dir: fs.Arg(0), Out: *out, Format: *format, Stderr: os.Stderr}
	if *size != "" {
		n, err := labimage.ParseSize(*size)
		if err != nil {
			return fmt.Errorf("image: -size: %w", err)
		}
		o.Size = n
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	changes, err := labimage.Build(ctx, o)
	for _, c := range changes {
		fmt.Printf("changed %s\n", c)
	}
	if err != nil {
		return err
	}
	if fi, err := os.Stat(*out); err == nil {
		fmt.Printf("wrote %s: %s image of %s, %d MiB (%s itself unchanged)\n", *out, o.Format, fs.Arg(0), fi.Size()>>20, fs.Arg(0))
	}
	return nil
}
