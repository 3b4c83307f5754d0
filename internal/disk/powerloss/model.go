// Package powerloss is a power-loss model of a file system, for tests: a
// disk.FS that passes every call through to the real files under a root
// directory (so reads, which bypass the seam, see what a page cache would
// hold) and remembers, for every file, what is durable and what a power
// cut could still lose, and for every directory, the entry changes since
// its last sync.
//
// Crash then rewrites the root as one of the states a power cut may
// leave, chosen at random from a seed:
//
//   - a file's content is what its last fdatasync or fsync made durable;
//     every 512-byte sector changed since reads as its durable content or
//     as any of the versions it held since (writes are torn at sector
//     granularity and land in any order between syncs); a write with
//     RWF_DSYNC makes its own sectors durable;
//   - a file's size is its durable size or any size it had since;
//   - a directory holds its entries as of its last sync, with any prefix
//     of the creations, renames and removals made in it since (a
//     journalling file system commits name-space changes in order);
//     rename gives no data ordering (no ext4 auto_da_alloc).
//
// Fail lets a test make chosen calls fail (EIO, ENOSPC, EOPNOTSUPP for
// RWF_DSYNC); CutAfter makes every call after the next n fail with
// ErrCut, without effect, as if the power went at that point, so that
// cuts inside Sync, compaction and open are reached.
package powerloss

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/nbdboot/nbdboot/internal/disk"
	"golang.org/x/sys/unix"
)

// SectorSize is the granularity at which unsynced writes tear.
const SectorSize = 512

// ErrCut is returned by every call after the point CutAfter set.
var ErrCut = errors.New("power cut")

// Op names a seam call, for Fail.
type Op string

// The calls Fail sees.
const (
	OpCreate    Op = "create" // OpenFile creating a file
	OpOpen      Op = "open"
	OpWrite     Op = "write" // WriteAt and Write
	OpWriteSync Op = "pwritev2-dsync"
	OpDatasync  Op = "fdatasync"
	OpFsync     Op = "fsync"
	OpTruncate  Op = "truncate"
	OpFallocate Op = "fallocate"
	OpRename    Op = "rename"
	OpRemove    Op = "remove"
	OpMkdir     Op = "mkdir"
	OpSyncDir   Op = "syncdir"
)

// Model is the power-loss model of the files under one root directory.
// It is safe for concurrent use.
type Model struct {
	root string
	r    *rand.Rand

	mu    sync.Mutex
	nodes map[string]*node // current name space: path -> node
	dirs  map[*node]*dirState
	// fail, when set, is asked before every call; an error fails it.
	fail func(op Op, path string) error
	// cutIn counts the calls left before the cut; <0: no cut pending.
	cutIn int
	cut   bool
	// Calls counts the calls made, by op.
	calls map[Op]int
}

type node struct {
	dir bool
	// Files: what the last sync made durable, and what happened since.
	durable  []byte
	sizes    []int64            // sizes since the last sync
	versions map[int64][][]byte // sector -> versions since the last sync
}

// dirState is a directory's durable entries and its changes since.
type dirState struct {
	durable map[string]*node
	pending []dirOp
}

// dirOp is one change of a directory: name now links n (nil: removed),
// and, for a rename within the directory, unlink is removed with it.
type dirOp struct {
	name, unlink string
	n            *node
}

// New models the files under root as they are now, all durable.
func New(root string, seed uint64) (*Model, error) {
	root = filepath.Clean(root)
	m := &Model{root: root, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), cutIn: -1, calls: map[Op]int{}}
	if err := m.snapshot(); err != nil {
		return nil, err
	}
	return m, nil
}

// snapshot takes the real files under root as the durable state.
func (m *Model) snapshot() error {
	m.nodes, m.dirs = map[string]*node{}, map[*node]*dirState{}
	return filepath.WalkDir(m.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := &node{dir: d.IsDir()}
		if n.dir {
			m.dirs[n] = &dirState{durable: map[string]*node{}}
		} else {
			if n.durable, err = os.ReadFile(path); err != nil {
				return err
			}
		}
		m.nodes[path] = n
		if path != m.root {
			m.dirs[m.nodes[filepath.Dir(path)]].durable[filepath.Base(path)] = n
		}
		return nil
	})
}

// Fail installs f, asked before every call with the op and the path; an
// error it returns is the call's, and the call has no effect (a failing
// RWF_DSYNC write with an error other than EOPNOTSUPP still writes to the
// page cache, without making it durable; a failing fdatasync makes
// nothing durable). nil removes it.
func (m *Model) Fail(f func(op Op, path string) error) {
	m.mu.Lock()
	m.fail = f
	m.mu.Unlock()
}

// CutAfter lets n more calls through; every later one fails with ErrCut
// and has no effect, until Crash.
func (m *Model) CutAfter(n int) {
	m.mu.Lock()
	m.cutIn = n
	m.mu.Unlock()
}

// IsCut reports whether the cut CutAfter set has been reached.
func (m *Model) IsCut() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cut
}

// Calls reports how many calls of op were made.
func (m *Model) Calls(op Op) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

// enter is called with mu held at the start of every call.
func (m *Model) enter(op Op, path string) error {
	m.calls[op]++
	if m.cut {
		return fmt.Errorf("%s %s: %w", op, path, ErrCut)
	}
	if m.cutIn == 0 {
		m.cut = true
		return fmt.Errorf("%s %s: %w", op, path, ErrCut)
	}
	if m.cutIn > 0 {
		m.cutIn--
	}
	if m.fail != nil {
		if err := m.fail(op, path); err != nil {
			return &os.PathError{Op: string(op), Path: path, Err: err}
		}
	}
	return nil
}

func (m *Model) inside(path string) bool {
	path = filepath.Clean(path)
	return path == m.root || strings.HasPrefix(path, m.root+"/")
}

// OpenFile implements disk.FS.
func (m *Model) OpenFile(name string, flag int, perm os.FileMode) (disk.File, error) {
	name = filepath.Clean(name)
	if !m.inside(name) {
		return nil, fmt.Errorf("powerloss: %s is outside %s", name, m.root)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[name]
	op := OpOpen
	if n == nil && flag&os.O_CREATE != 0 {
		op = OpCreate
	}
	if err := m.enter(op, name); err != nil {
		return nil, err
	}
	if flag&(os.O_WRONLY|os.O_RDWR) == os.O_WRONLY {
		flag = flag&^os.O_WRONLY | os.O_RDWR // the model reads back what is written
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if n == nil {
		n = &node{}
		m.nodes[name] = n
		m.link(name, n)
	} else if flag&os.O_TRUNC != 0 {
		m.truncated(n, f, 0)
	}
	return &file{m: m, f: f, n: n, append: flag&os.O_APPEND != 0}, nil
}

// link records a new entry for n at path in its directory.
func (m *Model) link(path string, n *node) {
	d := m.dirs[m.nodes[filepath.Dir(path)]]
	d.pending = append(d.pending, dirOp{name: filepath.Base(path), n: n})
}

// Rename implements disk.FS.
func (m *Model) Rename(oldpath, newpath string) error {
	oldpath, newpath = filepath.Clean(oldpath), filepath.Clean(newpath)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter(OpRename, newpath); err != nil {
		return err
	}
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	n := m.nodes[oldpath]
	delete(m.nodes, oldpath)
	m.forgetUnder(newpath)
	m.nodes[newpath] = n
	if n.dir {
		m.moveUnder(oldpath, newpath)
	}
	od, nd := m.dirs[m.nodes[filepath.Dir(oldpath)]], m.dirs[m.nodes[filepath.Dir(newpath)]]
	if od == nd {
		// One change: both names move together in any prefix.
		od.pending = append(od.pending, dirOp{name: filepath.Base(newpath), n: n, unlink: filepath.Base(oldpath)})
		return nil
	}
	nd.pending = append(nd.pending, dirOp{name: filepath.Base(newpath), n: n})
	od.pending = append(od.pending, dirOp{name: filepath.Base(oldpath)})
	return nil
}

// forgetUnder drops path and everything under it from the name space.
func (m *Model) forgetUnder(path string) {
	for p := range m.nodes {
		if p == path || strings.HasPrefix(p, path+"/") {
			delete(m.nodes, p)
		}
	}
}

func (m *Model) moveUnder(oldpath, newpath string) {
	for p, n := range m.nodes {
		if strings.HasPrefix(p, oldpath+"/") {
			delete(m.nodes, p)
			m.nodes[newpath+p[len(oldpath):]] = n
		}
	}
}

// Remove implements disk.FS.
func (m *Model) Remove(name string) error {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter(OpRemove, name); err != nil {
		return err
	}
	if err := os.Remove(name); err != nil {
		return err
	}
	m.forgetUnder(name)
	d := m.dirs[m.nodes[filepath.Dir(name)]]
	d.pending = append(d.pending, dirOp{name: filepath.Base(name)})
	return nil
}

// MkdirAll implements disk.FS.
func (m *Model) MkdirAll(path string, perm os.FileMode) error {
	path = filepath.Clean(path)
	if !m.inside(path) {
		return fmt.Errorf("powerloss: %s is outside %s", path, m.root)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var missing []string
	for p := path; m.nodes[p] == nil; p = filepath.Dir(p) {
		missing = append(missing, p)
	}
	if len(missing) == 0 {
		return nil
	}
	if err := m.enter(OpMkdir, path); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := os.Mkdir(p, perm); err != nil {
			return err
		}
		n := &node{dir: true}
		m.dirs[n] = &dirState{durable: map[string]*node{}}
		m.nodes[p] = n
		m.link(p, n)
	}
	return nil
}

// SyncDir implements disk.FS.
func (m *Model) SyncDir(dir string) error {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.enter(OpSyncDir, dir); err != nil {
		return err
	}
	n := m.nodes[dir]
	if n == nil {
		if m.inside(dir) {
			return &os.PathError{Op: "open", Path: dir, Err: unix.ENOENT}
		}
		return nil // outside the model: durable enough
	}
	d := m.dirs[n]
	for _, op := range d.pending {
		op.apply(d.durable)
	}
	d.pending = nil
	return nil
}

func (o dirOp) apply(entries map[string]*node) {
	if o.unlink != "" {
		delete(entries, o.unlink)
	}
	if o.n == nil {
		delete(entries, o.name)
	} else {
		entries[o.name] = o.n
	}
}

// Crash rewrites the root as a state a power cut could leave and makes
// that state the durable one. Every file opened through the model must
// have been closed.
func (m *Model) Crash() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rootNode := m.nodes[m.root]
	contents := map[*node][]byte{}
	var build func(n *node) map[string]*node
	tree := map[*node]map[string]*node{}
	build = func(n *node) map[string]*node {
		d := m.dirs[n]
		entries := make(map[string]*node, len(d.durable))
		for k, v := range d.durable {
			entries[k] = v
		}
		keep := m.r.IntN(len(d.pending) + 1)
		for _, op := range d.pending[:keep] {
			op.apply(entries)
		}
		tree[n] = entries
		for _, c := range sortedNames(entries) {
			if e := entries[c]; e.dir {
				if _, seen := tree[e]; !seen {
					build(e)
				}
			} else if _, ok := contents[e]; !ok {
				contents[e] = m.crashContent(e)
			}
		}
		return entries
	}
	build(rootNode)
	// Rewrite the real files.
	entries, err := os.ReadDir(m.root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(m.root, e.Name())); err != nil {
			return err
		}
	}
	var write func(path string, n *node) error
	write = func(path string, n *node) error {
		for _, name := range sortedNames(tree[n]) {
			c := tree[n][name]
			p := filepath.Join(path, name)
			if c.dir {
				if err := os.Mkdir(p, 0o700); err != nil {
					return err
				}
				if err := write(p, c); err != nil {
					return err
				}
				continue
			}
			if err := os.WriteFile(p, contents[c], 0o600); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(m.root, rootNode); err != nil {
		return fmt.Errorf("powerloss: rewrite %s: %w", m.root, err)
	}
	m.cut, m.cutIn = false, -1
	return m.snapshot()
}

func sortedNames(entries map[string]*node) []string {
	names := make([]string, 0, len(entries))
	for k := range entries {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// crashContent picks what file n holds after the cut.
func (m *Model) crashContent(n *node) []byte {
	size := int64(len(n.durable))
	if k := m.r.IntN(len(n.sizes) + 1); k > 0 {
		size = n.sizes[k-1]
	}
	out := make([]byte, size)
	copy(out, n.durable)
	secs := make([]int64, 0, len(n.versions))
	for s := range n.versions {
		secs = append(secs, s)
	}
	sort.Slice(secs, func(i, j int) bool { return secs[i] < secs[j] })
	for _, s := range secs {
		vs := n.versions[s]
		k := m.r.IntN(len(vs) + 1)
		off := s * SectorSize
		if off >= size {
			continue
		}
		if k == 0 {
			// The durable sector (zeroes past the durable size).
			clear(out[off:min(off+SectorSize, size)])
			if off < int64(len(n.durable)) {
				copy(out[off:min(off+SectorSize, size)], n.durable[off:])
			}
			continue
		}
		copy(out[off:min(off+SectorSize, size)], vs[k-1])
	}
	return out
}

// file is a file opened through the model.
type file struct {
	m      *Model
	f      *os.File
	n      *node
	append bool
}

func (f *file) OS() *os.File { return f.f }
func (f *file) Name() string { return f.f.Name() }

// changed records the sectors of [off, end) as they are now, and the
// size. The caller holds m.mu.
func (f *file) changed(off, end int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.f.Fd()), &st); err != nil {
		return err
	}
	f.n.sizes = append(f.n.sizes, st.Size)
	if f.n.versions == nil {
		f.n.versions = map[int64][][]byte{}
	}
	for s := off / SectorSize; s*SectorSize < end; s++ {
		buf := make([]byte, SectorSize)
		if _, err := f.f.ReadAt(buf, s*SectorSize); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		f.n.versions[s] = append(f.n.versions[s], buf)
	}
	return nil
}

// truncated records a size change to size: sectors cut off are zeroes
// if the file grows again.
func (m *Model) truncated(n *node, f *os.File, size int64) {
	if n.versions == nil {
		n.versions = map[int64][][]byte{}
	}
	old := int64(len(n.durable))
	for _, s := range n.sizes {
		old = max(old, s)
	}
	for s := size / SectorSize; s*SectorSize < old; s++ {
		buf := make([]byte, SectorSize)
		if s*SectorSize < size {
			f.ReadAt(buf[:size-s*SectorSize], s*SectorSize)
		}
		n.versions[s] = append(n.versions[s], buf)
	}
	n.sizes = append(n.sizes, size)
}

// durableNow makes the file's current content and size durable.
func (f *file) durableNow() error {
	b, err := os.ReadFile(f.f.Name())
	if err != nil {
		return err
	}
	f.n.durable, f.n.sizes, f.n.versions = b, nil, nil
	return nil
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.enter(OpWrite, f.Name()); err != nil {
		return 0, err
	}
	n, err := f.f.WriteAt(p, off)
	if n > 0 {
		if cerr := f.changed(off, off+int64(n)); err == nil {
			err = cerr
		}
	}
	return n, err
}

func (f *file) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.enter(OpWrite, f.Name()); err != nil {
		return 0, err
	}
	off, err := f.f.Seek(0, 1)
	if err != nil {
		return 0, err
	}
	if f.append {
		st, err := f.f.Stat()
		if err != nil {
			return 0, err
		}
		off = st.Size()
	}
	n, err := f.f.Write(p)
	if n > 0 {
		if cerr := f.changed(off, off+int64(n)); err == nil {
			err = cerr
		}
	}
	return n, err
}

func (f *file) WriteAtDSync(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	err := f.m.enter(OpWriteSync, f.Name())
	if err != nil && (errors.Is(err, ErrCut) || disk.NotSupported(err)) {
		return 0, err
	}
	n, werr := f.f.WriteAt(p, off)
	if n > 0 {
		if cerr := f.changed(off, off+int64(n)); werr == nil {
			werr = cerr
		}
	}
	if err != nil {
		return n, err // written to the page cache, not made durable
	}
	if werr != nil {
		return n, werr
	}
	// The written sectors are durable now; older versions of them
	// can no longer reach the disk (the page cache holds the newest).
	end := off + int64(n)
	if int64(len(f.n.durable)) < end {
		f.n.durable = append(f.n.durable, make([]byte, end-int64(len(f.n.durable)))...)
	}
	copy(f.n.durable[off:end], p[:n])
	for s := off / SectorSize; s*SectorSize < end; s++ {
		if s*SectorSize >= off && (s+1)*SectorSize <= end {
			delete(f.n.versions, s)
			continue
		}
		// A partial sector: its newest version is durable.
		if vs := f.n.versions[s]; len(vs) > 0 {
			lo := s * SectorSize
			copy(f.n.durable[lo:min(lo+SectorSize, int64(len(f.n.durable)))], vs[len(vs)-1])
			delete(f.n.versions, s)
		}
	}
	return n, nil
}

func (f *file) Datasync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.enter(OpDatasync, f.Name()); err != nil {
		return err
	}
	return f.durableNow()
}

func (f *file) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.enter(OpFsync, f.Name()); err != nil {
		return err
	}
	return f.durableNow()
}

func (f *file) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.enter(OpTruncate, f.Name()); err != nil {
		return err
	}
	if err := f.f.Truncate(size); err != nil {
		return err
	}
	f.m.truncated(f.n, f.f, size)
	return nil
}

func (f *file) Fallocate(mode uint32, off, length int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.m.enter(OpFallocate, f.Name()); err != nil {
		return err
	}
	if err := disk.Wrap(f.f).Fallocate(mode, off, length); err != nil {
		return err
	}
	return f.changed(off, off+length)
}

func (f *file) Close() error { return f.f.Close() }
