package server

import (
	"fmt"
	"os"
	"syscall"
)

// ImageID identifies the file an export serves: its device and inode,
// and its size and modification time when it was opened. Two exports with
// equal ImageIDs serve the same content, unless the export is writable
// (its clients change it; then only device and inode say anything). A
// reload that finds another file at the path (replaced by rename), or a
// read-only file whose size or modification time changed, opens it anew,
// so the ImageID of a name changes exactly when what it serves does. The
// zero ImageID is a backend that is not a file (tests).
type ImageID struct {
	Dev, Ino uint64
	Size     int64
	MTime    int64 // nanoseconds since the epoch
}

// String formats the ID for logs and comparisons across processes.
func (id ImageID) String() string {
	return fmt.Sprintf("dev=%d ino=%d size=%d mtime=%d", id.Dev, id.Ino, id.Size, id.MTime)
}

// IsZero reports whether id identifies nothing.
func (id ImageID) IsZero() bool { return id == ImageID{} }

// sameFile reports whether path is still the file id was taken from, with
// the same content as far as size and modification time tell (only device
// and inode for a writable export, whose clients change the rest).
func (id ImageID) sameFile(path string, readOnly bool) bool {
	if id.IsZero() {
		return true
	}
	st, err := os.Stat(path)
	if err != nil {
		return false
	}
	now := imageOf(st)
	if !readOnly || st.Mode()&os.ModeDevice != 0 {
		return now.Dev == id.Dev && now.Ino == id.Ino
	}
	return now == id
}

// imageOf is the ImageID of a file's status.
func imageOf(st os.FileInfo) ImageID {
	id := ImageID{Size: st.Size(), MTime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Ino = uint64(sys.Dev), sys.Ino
	}
	return id
}

// image is the ImageID of the open file (zero if it cannot be stat'ed).
func (b *FileBackend) image() ImageID {
	st, err := b.f.Stat()
	if err != nil {
		return ImageID{}
	}
	return imageOf(st)
}
