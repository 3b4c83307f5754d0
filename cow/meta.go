package cow

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
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

// writeMeta replaces dir's meta.json (write a temporary file, rename it)
// without syncing: the meta data becomes durable with the overlay's
// first Sync that has changes (makeDirDurable), and at every later
// compaction's directory sync only as far as the file system orders
// renames. A meta.json lost or torn by a crash before then leaves an
// overlay that holds nothing durable; the directory is then ignored by
// the next Manager and reused by its client's next Acquire.
func writeMeta(dir string, m meta) error {
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, metaName+tmpSuffix)
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, metaName)); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, metaName), err)
	}
	return nil
}

// makeDirDurable makes an overlay directory's meta.json (if any) and its
// entries in the two directories above durable: the state directory's
// EXPORT/CLIENT/ layout. Syncing a directory that is not part of it is
// harmless.
func makeDirDurable(dir string) error {
	if f, err := os.Open(filepath.Join(dir, metaName)); err == nil {
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", filepath.Join(dir, metaName), err)
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := syncDir(parent); err != nil {
		return err
	}
	return syncDir(filepath.Dir(parent))
}
