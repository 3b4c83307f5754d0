package media

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// stage is a directory tree laid out as a medium's filesystem, every file
// and directory dated epoch, that xorriso or mcopy copy into the image.
type stage struct {
	dir   string
	epoch time.Time
}

// copyFile copies src to rel in the stage.
func (s stage) copyFile(rel, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	defer in.Close()
	dst, err := s.create(rel)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, in); err != nil {
		dst.Close()
		return fmt.Errorf("stage %s from %s: %w", rel, src, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	return nil
}

// writeFile writes text to rel in the stage.
func (s stage) writeFile(rel, text string) error {
	dst, err := s.create(rel)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(dst, text); err != nil {
		dst.Close()
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("stage %s: %w", rel, err)
	}
	return nil
}

func (s stage) create(rel string) (*os.File, error) {
	p := filepath.Join(s.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("stage %s: %w", rel, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", rel, err)
	}
	return f, nil
}

// path is rel's path on this machine.
func (s stage) path(rel string) string { return filepath.Join(s.dir, filepath.FromSlash(rel)) }

// settle dates everything in the stage epoch (after the last write).
func (s stage) settle() error {
	return filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Chtimes(p, s.epoch, s.epoch); err != nil {
			return fmt.Errorf("stage: date %s: %w", p, err)
		}
		return nil
	})
}
