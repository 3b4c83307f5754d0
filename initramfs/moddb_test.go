package initramfs

import (
	"reflect"
	"testing"
)

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/arch/x86/crypto/crc32c-intel.ko": "crc32c_intel",
		"kernel/fs/ext4/ext4.ko.xz":              "ext4",
		"virtio-net":                             "virtio_net",
		"nbd":                                    "nbd",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDep(t *testing.T) {
	in := "" +
		"kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko\n" + // module with two deps
		"\n" + // blank lines are skipped
		"kernel/drivers/block/nbd.ko:\n" // no deps
	got, err := parseDep([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]depEntry{
		"ext4": {path: "kernel/fs/ext4/ext4.ko", deps: []string{"kernel/lib/crc16.ko", "kernel/fs/mbcache.ko"}},
		"nbd":  {path: "kernel/drivers/block/nbd.ko", deps: []string{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseDep = %+v, want %+v", got, want)
	}
	if _, err := parseDep([]byte("no colon here\n")); err == nil {
		t.Error("parseDep accepted a line without ':'")
	}
}

func TestParseSoftdep(t *testing.T) {
	in := "" +
		"# comment\n" +
		"softdep ext4 pre: crypto-crc32c\n" + // pre only
		"softdep cifs gcm\n" + // words before pre:/post: are ignored, as kmod does
		"softdep foo pre: a b post: c\n" // both lists
	got, err := parseSoftdep([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]softdep{
		"ext4": {pre: []string{"crypto-crc32c"}},
		"cifs": {},
		"foo":  {pre: []string{"a", "b"}, post: []string{"c"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSoftdep = %+v, want %+v", got, want)
	}
	if _, err := parseSoftdep([]byte("options nbd nbds_max=4\n")); err == nil {
		t.Error("parseSoftdep accepted a non-softdep line")
	}
}

func TestParseAlias(t *testing.T) {
	in := "alias crypto-crc32c crc32c_generic\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n"
	got, err := parseAlias([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].pattern != "crypto-crc32c" || got[0].module != "crc32c_generic" ||
		got[1].module != "virtio_pci" || got[1].line != "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci" {
		t.Errorf("parseAlias = %+v", got)
	}
	if _, err := parseAlias([]byte("alias onlytwo\n")); err == nil {
		t.Error("parseAlias accepted a short line")
	}
}

func FuzzParseDB(f *testing.F) {
	f.Add([]byte("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko\n"))
	f.Add([]byte("softdep ext4 pre: crypto-crc32c post: x\n"))
	f.Add([]byte("alias crc32c crc32c_generic\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if deps, err := parseDep(b); err == nil {
			for name, e := range deps {
				if name != modName(e.path) {
					t.Fatalf("module %q stored under %q", e.path, name)
				}
			}
		}
		parseSoftdep(b)
		if al, err := parseAlias(b); err == nil {
			for _, a := range al {
				if a.pattern == "" || a.module == "" {
					t.Fatalf("empty alias field in %+v", a)
				}
			}
		}
		parseBuiltin(b)
	})
}
