package media

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// fatImage describes a FAT filesystem image to make.
type fatImage struct {
	path   string
	size   int64  // bytes; 1474560 makes a 1.44 MB floppy
	label  string // volume label, up to 11 characters
	serial uint32 // volume serial number
	epoch  time.Time
}

// FloppySize is a 3.5" high-density floppy: 80 tracks, 2 heads, 18
// sectors of 512 bytes.
const FloppySize = 1474560

// make formats the image (mkfs.fat picks FAT12 for small sizes and the
// floppy geometry for FloppySize) and copies the stage's top-level entries
// into its root, keeping their (fixed) times.
func (f fatImage) make(ctx context.Context, st stage) error {
	if err := os.WriteFile(f.path, nil, 0o644); err != nil {
		return fmt.Errorf("create FAT image %s: %w", f.path, err)
	}
	if err := os.Truncate(f.path, f.size); err != nil {
		return fmt.Errorf("size FAT image %s: %w", f.path, err)
	}
	if err := tool(ctx, f.epoch, "mkfs.fat", "--invariant", "-i", fmt.Sprintf("%08X", f.serial), "-n", f.label, f.path); err != nil {
		return err
	}
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return fmt.Errorf("read stage %s: %w", st.dir, err)
	}
	args := []string{"-s", "-m", "-i", f.path}
	for _, e := range entries {
		args = append(args, filepath.Join(st.dir, e.Name()))
	}
	if err := tool(ctx, f.epoch, "mcopy", append(args, "::")...); err != nil {
		return err
	}
	return f.stamp()
}

// stamp sets every root directory entry's times to the epoch.
func (f fatImage) stamp() error {
	file, err := os.OpenFile(f.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open FAT image: %w", err)
	}
	if err := stampRootTimes(file, file, f.epoch); err != nil {
		file.Close()
		return fmt.Errorf("FAT image %s: %w", f.path, err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("FAT image %s: %w", f.path, err)
	}
	return nil
}
