package initramfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// buildTags are the Go build tags of every command in the image.
// nbdboot_init leaves the image builder (mkuimage, x/tools) out of the
// nbdboot that runs as /init: it is not needed there, and it is most of the
// binary's size.
var buildTags = []string{"goshsmall", "nbdboot_init"}

// inputsKey digests what an image is built from: the configuration, the Go
// toolchain version, the source files of every non-standard package the
// commands import, and the staged module tree. Equal keys give equal bytes.
func inputsKey(ctx context.Context, c Config, stage string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "nbdboot-initramfs 1\ninit %s\ntools %q\nshell %s\ncompress %s\ntags %q\n",
		c.Init, c.Tools, c.Shell, c.Compression, buildTags)
	gover, err := goCmd(ctx, c.Dir, "env", "GOVERSION")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "go %s\n", bytes.TrimSpace(gover))
	if err := hashPackages(ctx, h, c.Dir, append([]string{c.Init}, c.Tools...)); err != nil {
		return "", err
	}
	if stage != "" {
		if err := hashTree(h, stage); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// goCmd runs the go command in dir the way the image's commands are built.
func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// listedPackage is the part of `go list -json` output the key needs.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	EmbedFiles []string
}

// hashPackages hashes the files of pkgs and their non-standard
// dependencies; the standard library is covered by the Go version.
func hashPackages(ctx context.Context, h io.Writer, dir string, pkgs []string) error {
	args := append([]string{"list", "-deps", "-tags", strings.Join(buildTags, ","),
		"-json=ImportPath,Dir,Standard,GoFiles,EmbedFiles"}, pkgs...)
	out, err := goCmd(ctx, dir, args...)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("go list output: %w", err)
		}
		if p.Standard {
			continue
		}
		fmt.Fprintf(h, "package %s\n", p.ImportPath)
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			if err := hashFile(h, filepath.Join(p.Dir, f), f); err != nil {
				return err
			}
		}
	}
}

// hashTree hashes every file under root with its relative path and mode.
func hashTree(h io.Writer, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return hashFile(h, p, rel)
	})
}

func hashFile(h io.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fh := sha256.New()
	if _, err := io.Copy(fh, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	fmt.Fprintf(h, "file %s %x\n", name, fh.Sum(nil))
	return nil
}

// inputsFile is the record next to the output: the inputs key and the
// output's sha256.
func inputsFile(output string) string { return output + ".inputs" }

// reusable reports whether output exists, is unchanged since it was built
// and was built from inputs key.
func reusable(output, key string) (size int64, digest string, ok bool) {
	rec, err := os.ReadFile(inputsFile(output))
	if err != nil {
		return 0, "", false
	}
	wantKey, wantSum, _ := strings.Cut(strings.TrimSpace(string(rec)), " ")
	if wantKey != key {
		return 0, "", false
	}
	f, err := os.Open(output)
	if err != nil {
		return 0, "", false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil || hex.EncodeToString(h.Sum(nil)) != wantSum {
		return 0, "", false
	}
	return n, wantSum, true
}
