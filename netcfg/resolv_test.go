package netcfg

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestResolvConf(t *testing.T) {
	got := string(ResolvConf([]netip.Addr{addr("10.99.0.53"), addr("fd00::53")}, "lab.test"))
	want := "# written by nbdboot\nsearch lab.test\nnameserver 10.99.0.53\nnameserver fd00::53\n"
	if got != want {
		t.Errorf("ResolvConf = %q, want %q", got, want)
	}
	p := filepath.Join(t.TempDir(), "etc", "resolv.conf")
	for _, data := range []string{"one\n", "two\n"} {
		if err := writeFileAtomic(p, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != data {
			t.Fatalf("read back %q, %v; want %q", b, err, data)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}
