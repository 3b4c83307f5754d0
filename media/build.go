package media

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Build makes the medium c asks for. The image is written next to
// c.Output and renamed over it only once complete, so a failed build
// leaves an existing file as it was.
func Build(ctx context.Context, c Config) (*Result, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", c.Kind, err)
	}
	tmp, err := os.MkdirTemp("", "nbdboot-media-")
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", c.Kind, err)
	}
	defer os.RemoveAll(tmp)
	part, err := os.CreateTemp(filepath.Dir(c.Output), "."+filepath.Base(c.Output)+".part-")
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", c.Kind, err)
	}
	part.Close()
	defer os.Remove(part.Name()) // gone after the rename; there after a failure
	var res *Result
	if c.Kind.Hybrid() {
		res, err = buildHybrid(ctx, c, tmp, part.Name())
	} else {
		res, err = buildFloppy(ctx, c, tmp, part.Name())
	}
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", c.Kind, err)
	}
	out, err := hashFile("image", part.Name())
	if err != nil {
		return nil, fmt.Errorf("media %s: %w", c.Kind, err)
	}
	if err := os.Chmod(part.Name(), 0o644); err != nil {
		return nil, fmt.Errorf("media %s: %w", c.Kind, err)
	}
	if err := os.Rename(part.Name(), c.Output); err != nil {
		return nil, fmt.Errorf("media %s: %w", c.Kind, err)
	}
	res.Kind, res.Path, res.Size, res.SHA256, res.Cmdline = c.Kind, c.Output, out.Size, out.SHA256, c.Cmdline
	return res, nil
}

// hashInputs digests the named files, in order.
func hashInputs(files [][2]string) ([]Input, error) {
	var ins []Input
	for _, f := range files {
		in, err := hashFile(f[0], f[1])
		if err != nil {
			return nil, err
		}
		ins = append(ins, in)
	}
	return ins, nil
}
