//go:build !nbdboot_init

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/nbdboot/nbdboot/initramfs"
)

// runInitramfs builds an initramfs image: nbdboot as /init, u-root's tools
// for the rescue shell, and kernel modules from an unpacked kernel. It runs
// the Go toolchain, so it is run from a checkout of this repository (-C).
func runInitramfs(args []string) error {
	fs := flag.NewFlagSet("initramfs", flag.ContinueOnError)
	out := fs.String("o", "", "output `file` (required)")
	kmod := fs.String("kmod", "", "`dir`ectory holding lib/modules/VERSION (an unpacked kernel package), or a modules directory itself (/lib/modules/$(uname -r)); empty for no modules")
	kver := fs.String("kver", "", "kernel `version` under DIR/lib/modules (default: the only one)")
	add := fs.String("add-modules", "", "comma-separated `modules` to add to the default set")
	comp := fs.String("compress", string(initramfs.Gzip), "compression: gzip, zstd or none")
	initPkg := fs.String("init", initramfs.InitPackage, "Go `package` built as /init")
	noTools := fs.Bool("no-tools", false, "leave out the rescue shell and u-root tools")
	dir := fs.String("C", ".", "Go module `dir`ectory to build from (a checkout of this repository)")
	cache := fs.String("cache", defaultCache(), "`dir`ectory keeping the tools archive between builds")
	reuse := fs.Bool("reuse", false, "keep FILE if it was built from the same inputs")
	verbose := fs.Bool("v", false, "print the build's progress")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("initramfs: -o FILE is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("initramfs: unexpected argument %q", fs.Arg(0))
	}
	c := initramfs.DefaultConfig(*out, *kmod)
	c.KernelVersion = *kver
	c.Init = *initPkg
	c.Dir = *dir
	c.Reuse = *reuse
	c.CacheDir = *cache
	var err error
	if c.Compression, err = initramfs.ParseCompression(*comp); err != nil {
		return fmt.Errorf("initramfs: -compress: %w", err)
	}
	if *add != "" {
		c.Modules = append(append([]string(nil), c.Modules...), strings.Split(*add, ",")...)
	}
	if *noTools {
		c.Tools, c.Shell = nil, ""
	}
	if *verbose {
		c.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	res, err := initramfs.Build(context.Background(), c)
	if err != nil {
		return err
	}
	if res.ModulesDir != "" {
		fmt.Printf("modules: %s, %s\n", res.ModulesDir, res.ModulesLayout)
	}
	if !res.Reused || *verbose {
		fmt.Printf("%s: %d bytes (%.1f MiB), %d modules for %s, sha256 %s\n",
			res.Path, res.Size, float64(res.Size)/(1<<20), len(res.Modules), res.Kernel, res.SHA256[:16])
	}
	return nil
}

// defaultCache is the user's cache directory for nbdboot, or none.
func defaultCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "nbdboot")
}
