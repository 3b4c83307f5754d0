package cow

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nbdboot/nbdboot/internal/disk"
)

const metaName = "meta.json"

// meta is what an overlay directory records about its overlay, as JSON
// in meta.json. The names are the original ones (the directory names
// are escaped).
type meta struct {
	Export     string        `json:"export"`
	Client     string        `json:"client"`
	Persistent bool          `json:"persistent"`
	Grace      time.Duration `json:"grace_ns,omitempty"`
	LastUse    time.Time     `json:"last_use"`
	Allocated  int64         `json:"allocated"`
	BaseID     string        `json:"base_id,omitempty"`
}

func readMeta(dir string) (meta, error) {
	var m meta
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if err != nil {
		return m, err
	}
	if len(b) > 64<<10 {
		return m, fmt.Errorf("%s: %d bytes, too large", filepath.Join(dir, metaName), len(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, metaName), err)
	}
	return m, nil
}

// writeMeta replaces dir's meta.json: it writes meta.json.tmp, fsyncs it
// and renames it over meta.json. The fsync is needed although the
// rename itself need not be durable at once: a later directory sync (the
// overlay's first Sync with changes, or any compaction) makes the rename
// durable, and without the fsync it could then point at a file whose
// content never reached the disk. An empty or torn meta.json makes the
// next Manager skip the overlay and its client's next Acquire reuse the
// data under fresh meta data, past the base-identity check.
//
// The rename is not followed by a directory sync: last use changes at
// every close, and an older meta.json after a power cut costs only a
// later expiry. A new overlay's meta.json and directory
// entries become durable with its first Sync that has changes
// (makeDirDurable); a crash before then leaves a directory holding
// nothing durable, which the next Manager ignores and the client's next
// Acquire reuses.
func writeMeta(fs disk.FS, dir string, m meta) error {
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, metaName+tmpSuffix)
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, filepath.Join(dir, metaName)); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, metaName), err)
	}
	return nil
}

// makeDirDurable makes a new overlay directory's entries in the two
// directories above it durable: the state directory's EXPORT/CLIENT/
// layout. The overlay directory itself needs no sync here: the map's
// rename that preceded this (writeFileAtomic) synced it, after meta.json
// and data were created in it; meta.json's content was synced by
// writeMeta before its rename. Syncing a directory that is not part of a
// state directory is harmless.
func makeDirDurable(fs disk.FS, dir string) error {
	parent := filepath.Dir(dir)
	if err := fs.SyncDir(parent); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(parent))
}
