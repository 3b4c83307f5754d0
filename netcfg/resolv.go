package netcfg

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// ResolvConf renders resolv.conf for the name servers and search domain.
func ResolvConf(dns []netip.Addr, domain string) []byte {
	var b bytes.Buffer
	b.WriteString("# written by nbdboot\n")
	if domain != "" {
		fmt.Fprintf(&b, "search %s\n", domain)
	}
	for _, a := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	return b.Bytes()
}

// writeFileAtomic replaces path with data (write to a temporary file in the
// same directory, then rename), creating the directory if needed.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
