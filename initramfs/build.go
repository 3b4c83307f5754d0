package initramfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/u-root/gobusybox/src/pkg/golang"
	"github.com/u-root/mkuimage/cpio"
	"github.com/u-root/mkuimage/uimage"
	uinitramfs "github.com/u-root/mkuimage/uimage/initramfs"
	"github.com/u-root/uio/llog"
)

// InitPackage is the Go package built as /init by default.
const InitPackage = "github.com/nbdboot/nbdboot/cmd/nbdboot"

// DefaultTools are u-root commands for the rescue shell, built together as
// one busybox-style binary /bbin/bb with a symlink per command. (insmod,
// cmp, dd, wget and netcat need modules this repository does not pin.)
var DefaultTools = []string{
	"github.com/u-root/u-root/cmds/core/gosh",
	"github.com/u-root/u-root/cmds/core/cat",
	"github.com/u-root/u-root/cmds/core/cp",
	"github.com/u-root/u-root/cmds/core/dmesg",
	"github.com/u-root/u-root/cmds/core/echo",
	"github.com/u-root/u-root/cmds/core/free",
	"github.com/u-root/u-root/cmds/core/grep",
	"github.com/u-root/u-root/cmds/core/hexdump",
	"github.com/u-root/u-root/cmds/core/ip",
	"github.com/u-root/u-root/cmds/core/ln",
	"github.com/u-root/u-root/cmds/core/ls",
	"github.com/u-root/u-root/cmds/core/mkdir",
	"github.com/u-root/u-root/cmds/core/mount",
	"github.com/u-root/u-root/cmds/core/mv",
	"github.com/u-root/u-root/cmds/core/ping",
	"github.com/u-root/u-root/cmds/core/poweroff",
	"github.com/u-root/u-root/cmds/core/ps",
	"github.com/u-root/u-root/cmds/core/rm",
	"github.com/u-root/u-root/cmds/core/shutdown",
	"github.com/u-root/u-root/cmds/core/sleep",
	"github.com/u-root/u-root/cmds/core/sync",
	"github.com/u-root/u-root/cmds/core/tail",
	"github.com/u-root/u-root/cmds/core/umount",
	"github.com/u-root/u-root/cmds/core/uname",
}

// DefaultShell is the tool linked as /bin/sh.
const DefaultShell = "gosh"

// Config describes an initramfs. Build uses the fields as given; start
// from DefaultConfig for the image nbdboot boots from.
type Config struct {
	// Output is the file written (atomically).
	Output string
	// KernelRoot is a directory holding lib/modules/VERSION (an unpacked
	// kernel package) or a modules directory itself (/lib/modules/VERSION);
	// empty for an image without modules. See LoadModules.
	KernelRoot string
	// KernelVersion picks VERSION; empty means the only one.
	KernelVersion string
	// Modules are module names to include with their dependencies.
	Modules []string
	// Init is the Go package built as a static binary /bin/NAME and
	// linked as /init, so that it runs as PID 1 itself.
	Init string
	// Tools are Go command packages built in busybox mode under /bbin.
	Tools []string
	// Shell is the tool linked as /bin/sh; empty for none.
	Shell string
	// Compression of the cpio archive; empty means gzip.
	Compression Compression
	// Dir is the Go module directory the packages resolve in (a checkout
	// of this repository); empty means the current directory.
	Dir string
	// Reuse keeps Output when Output.inputs shows it was built from the
	// same inputs (see inputsKey) and it is unchanged since.
	Reuse bool
	// CacheDir keeps the tools archive between builds; empty for none.
	CacheDir string
	// Log receives mkuimage's progress messages; nil discards them
	// (failures come back as Build's error).
	Log *slog.Logger
}

// DefaultConfig is the nbdboot initramfs: nbdboot as /init, the rescue
// tools, DefaultModules from kernelRoot, gzip.
func DefaultConfig(output, kernelRoot string) Config {
	return Config{
		Output:      output,
		KernelRoot:  kernelRoot,
		Modules:     DefaultModules,
		Init:        InitPackage,
		Tools:       DefaultTools,
		Shell:       DefaultShell,
		Compression: Gzip,
	}
}

// Result describes a built image.
type Result struct {
	Path    string
	Size    int64
	SHA256  string
	Modules []string // module names included, sorted
	Kernel  string   // kernel version of the modules
	// ModulesDir is where the modules came from, and ModulesLayout which
	// form KernelRoot had (LayoutPackage or LayoutModulesDir).
	ModulesDir, ModulesLayout string
	Reused                    bool // Output was up to date and kept
}

// baseRecords are the archive's fixed entries: the console must exist
// before the init mounts devtmpfs, or the init starts without stdio.
func baseRecords() []cpio.Record {
	return []cpio.Record{
		cpio.Directory("bin", 0o755),
		cpio.Directory("dev", 0o755),
		cpio.Directory("etc", 0o755),
		cpio.Directory("proc", 0o755),
		cpio.Directory("run", 0o755),
		cpio.Directory("sys", 0o755),
		cpio.Directory("tmp", 0o1777),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
	}
}

// Build compiles the commands and writes the initramfs c describes.
//
// The init is built with `go build` (the Go build cache makes rebuilds
// quick); the tools archive, whose busybox build recompiles everything, is
// kept in CacheDir under a key of its inputs.
func Build(ctx context.Context, c Config) (*Result, error) {
	if c.Output == "" {
		return nil, fmt.Errorf("initramfs: no output file given")
	}
	if c.Init == "" {
		return nil, fmt.Errorf("initramfs: no init package given")
	}
	if len(c.Tools) == 0 && c.Shell != "" {
		return nil, fmt.Errorf("initramfs: shell %q given without tools", c.Shell)
	}
	tmp, err := os.MkdirTemp("", "nbdboot-initramfs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	res := &Result{Path: c.Output}
	var stage string
	if c.KernelRoot != "" {
		m, err := LoadModules(c.KernelRoot, c.KernelVersion)
		if err != nil {
			return nil, err
		}
		set, err := m.Resolve(c.Modules)
		if err != nil {
			return nil, err
		}
		stage = filepath.Join(tmp, "stage")
		if err := m.Stage(stage, set); err != nil {
			return nil, err
		}
		res.Modules, res.Kernel = set, m.Version
		res.ModulesDir, res.ModulesLayout = m.Dir(), m.Layout
	}
	key, err := inputsKey(ctx, c, stage)
	if err != nil {
		return nil, fmt.Errorf("initramfs %s: %w", c.Output, err)
	}
	if c.Reuse {
		if size, sum, ok := reusable(c.Output, key); ok {
			res.Size, res.SHA256, res.Reused = size, sum, true
			return res, nil
		}
	}
	os.Remove(inputsFile(c.Output))

	files := uinitramfs.NewFiles()
	for _, r := range baseRecords() {
		if err := files.AddRecord(r); err != nil {
			return nil, err
		}
	}
	initName := path.Base(c.Init)
	initBin := filepath.Join(tmp, initName)
	if err := buildInit(ctx, c.Dir, c.Init, initBin); err != nil {
		return nil, fmt.Errorf("initramfs %s: %w", c.Output, err)
	}
	if err := files.AddFile(initBin, "bin/"+initName); err != nil {
		return nil, err
	}
	if err := files.AddRecord(cpio.Symlink("init", "bin/"+initName)); err != nil {
		return nil, err
	}
	if stage != "" {
		if err := files.AddFile(filepath.Join(stage, "lib"), "lib"); err != nil {
			return nil, err
		}
	}
	opts := &uinitramfs.Opts{Files: files, OutputFile: &uinitramfs.CPIOFile{Path: filepath.Join(tmp, "initramfs.cpio")}}
	if len(c.Tools) > 0 {
		tools, err := toolsArchive(ctx, c, tmp)
		if err != nil {
			return nil, fmt.Errorf("initramfs %s: %w", c.Output, err)
		}
		opts.BaseArchive = &uinitramfs.CPIOFile{Path: tools}
	}
	if err := uinitramfs.Write(opts); err != nil {
		return nil, fmt.Errorf("initramfs %s: write cpio: %w", c.Output, err)
	}
	if err := writeCompressed(ctx, c.Output, filepath.Join(tmp, "initramfs.cpio"), c.Compression, res); err != nil {
		return nil, fmt.Errorf("initramfs %s: %w", c.Output, err)
	}
	if err := os.WriteFile(inputsFile(c.Output), []byte(key+" "+res.SHA256+"\n"), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// buildInit builds pkg as a static, reproducible binary at out.
func buildInit(ctx context.Context, dir, pkg, out string) error {
	_, err := goCmd(ctx, dir, "build", "-trimpath", "-ldflags=-s -w -buildid=",
		"-tags="+strings.Join(buildTags, ","), "-o", out, pkg)
	return err
}

// toolsArchive returns the cpio of the busybox-mode tools and the shell
// link, building it with mkuimage unless CacheDir holds it for the same
// inputs.
func toolsArchive(ctx context.Context, c Config, tmp string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "nbdboot-initramfs-tools 1\ntools %q\nshell %s\ntags %q\n", c.Tools, c.Shell, buildTags)
	gover, err := goCmd(ctx, c.Dir, "env", "GOVERSION")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "go %s\n", bytes.TrimSpace(gover))
	if err := hashPackages(ctx, h, c.Dir, c.Tools); err != nil {
		return "", err
	}
	cache := c.CacheDir
	if cache == "" {
		cache = filepath.Join(tmp, "cache")
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(cache, "tools-"+hex.EncodeToString(h.Sum(nil))[:24]+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	btmp := filepath.Join(tmp, "tools")
	if err := os.Mkdir(btmp, 0o755); err != nil {
		return "", err
	}
	part := out + ".part"
	err = uimage.Create(logger(c.Log),
		uimage.WithReplaceEnv(golang.Default(golang.DisableCGO(), golang.WithWorkingDir(c.Dir),
			// gosh without its line editor, whose modules this repository does not pin.
			golang.WithBuildTag(buildTags...))),
		uimage.WithTempDir(btmp),
		uimage.WithSkipLDD(),
		uimage.WithBusyboxCommands(c.Tools...),
		uimage.WithShell(c.Shell),
		uimage.WithCPIOOutput(part),
	)
	if err != nil {
		os.Remove(part)
		return "", fmt.Errorf("build tools: %w", err)
	}
	return out, os.Rename(part, out)
}

// writeCompressed compresses the cpio at src into dst through a temporary
// file and fills in res's size and digest.
func writeCompressed(ctx context.Context, dst, src string, comp Compression, res *Result) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	h := sha256.New()
	if err := compress(ctx, io.MultiWriter(out, h), in, comp); err != nil {
		out.Close()
		return err
	}
	st, err := out.Stat()
	if err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	res.Size, res.SHA256 = st.Size(), hex.EncodeToString(h.Sum(nil))
	return os.Rename(tmp, dst)
}

// logger adapts a slog.Logger to mkuimage's leveled logger.
func logger(l *slog.Logger) *llog.Logger {
	if l == nil {
		return llog.New(slog.LevelError, func(string, ...any) {})
	}
	return llog.New(slog.LevelInfo, func(format string, args ...any) {
		l.Info(fmt.Sprintf(format, args...))
	})
}
