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

func writeMeta(dir string, m meta) error {
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir, metaName, append(b, '\n'), nil); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, metaName), err)
	}
	return nil
}
