// Package disk is the narrow seam through which nbdserve's durability
// code (the copy-on-write overlays of package cow and the file backend's
// write path in package server) changes files and makes them durable:
// opening and creating files, writes, writes with RWF_DSYNC, fdatasync,
// fsync, truncation, fallocate, renames, removals and directory syncs.
// Reads do not go through it: they use the *os.File underneath (File.OS),
// which sees everything written through the seam.
//
// OS is the real file system. Tests substitute a power-loss model
// (package disk/powerloss) that passes every call through to the OS but
// also remembers what a power cut could lose, and can fail calls on
// demand.
package disk

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// FS changes the file system's name space and opens files for writing.
type FS interface {
	// OpenFile is os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename is os.Rename.
	Rename(oldpath, newpath string) error
	// Remove is os.Remove.
	Remove(name string) error
	// MkdirAll is os.MkdirAll.
	MkdirAll(path string, perm os.FileMode) error
	// SyncDir fsyncs the directory dir, making the entries created,
	// renamed and removed in it durable.
	SyncDir(dir string) error
}

// File is an open file whose changes go through the seam.
type File interface {
	// OS is the file underneath, for reads, Stat and seeks; it must not
	// be written through.
	OS() *os.File
	Name() string
	// WriteAt is pwrite.
	WriteAt(p []byte, off int64) (int, error)
	// WriteAtDSync is pwritev2 with RWF_DSYNC: p is durable when it
	// returns. Where the kernel or file system lacks it, it fails with
	// an error for which NotSupported is true and writes nothing.
	WriteAtDSync(p []byte, off int64) (int, error)
	// Write appends (the file is opened with O_APPEND) or writes at the
	// file offset.
	Write(p []byte) (int, error)
	// Datasync is fdatasync.
	Datasync() error
	// Sync is fsync.
	Sync() error
	// Truncate is ftruncate.
	Truncate(size int64) error
	// Fallocate is fallocate(2) with mode (FALLOC_FL_*).
	Fallocate(mode uint32, off, length int64) error
	Close() error
}

// NotSupported reports whether err says an operation is not supported
// by the kernel, the file system or the file.
func NotSupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTTY)
}

// OS is the real file system.
type OS struct{}

// OpenFile implements FS.
func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Rename implements FS.
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// MkdirAll implements FS.
func (OS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Wrap makes an open *os.File a File of the real file system.
func Wrap(f *os.File) File { return osFile{f} }

type osFile struct{ f *os.File }

func (o osFile) OS() *os.File                             { return o.f }
func (o osFile) Name() string                             { return o.f.Name() }
func (o osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o osFile) Write(p []byte) (int, error)              { return o.f.Write(p) }
func (o osFile) Sync() error                              { return o.f.Sync() }
func (o osFile) Truncate(size int64) error                { return o.f.Truncate(size) }
func (o osFile) Close() error                             { return o.f.Close() }

func (o osFile) WriteAtDSync(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pwritev2(int(o.f.Fd()), [][]byte{p[done:]}, off+int64(done), unix.RWF_DSYNC)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return done, &os.PathError{Op: "pwritev2 RWF_DSYNC", Path: o.f.Name(), Err: err}
		case n == 0:
			return done, &os.PathError{Op: "pwritev2 RWF_DSYNC", Path: o.f.Name(), Err: unix.EIO}
		}
		done += n
	}
	return done, nil
}

func (o osFile) Datasync() error {
	err := ignoreEINTR(func() error { return unix.Fdatasync(int(o.f.Fd())) })
	if err != nil {
		return &os.PathError{Op: "fdatasync", Path: o.f.Name(), Err: err}
	}
	return nil
}

func (o osFile) Fallocate(mode uint32, off, length int64) error {
	err := ignoreEINTR(func() error { return unix.Fallocate(int(o.f.Fd()), mode, off, length) })
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: o.f.Name(), Err: err}
	}
	return nil
}

func ignoreEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
