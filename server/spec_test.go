package server

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseExportSpec(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    ExportConfig
		wantErr string
	}{
		{in: "root=/srv/root.img", want: ExportConfig{Name: "root", Path: "/srv/root.img"}},
		{in: "root=/srv/root.img,ro", want: ExportConfig{Name: "root", Path: "/srv/root.img", ReadOnly: true}},
		{in: "d=/dev/sdb,desc=spare disk", want: ExportConfig{Name: "d", Path: "/dev/sdb", Description: "spare disk"}},
		{in: "d=/x,desc=a=b,ro", want: ExportConfig{Name: "d", Path: "/x", Description: "a=b", ReadOnly: true}},
		{in: "d=/x,desc=", want: ExportConfig{Name: "d", Path: "/x"}},
		{in: "d=rel/path.img", want: ExportConfig{Name: "d", Path: "rel/path.img"}},

		{in: "root", wantErr: `export "root": want NAME=PATH[,ro][,cow[=persistent]][,grace=DURATION][,quota=SIZE][,desc=TEXT]`},
		{in: "=/srv/x", wantErr: `export name is empty`},
		{in: "root=", wantErr: `export "root": empty path`},
		{in: "root=,ro", wantErr: `export "root": empty path`},
		{in: "root=/x,rw", wantErr: `export "root": unknown option "rw" (known: ro, cow[=persistent], grace=DURATION, quota=SIZE, desc=TEXT)`},
		{in: "lab=/x,cow", want: ExportConfig{Name: "lab", Path: "/x", COW: "ephemeral"}},
		{in: "lab=/x,cow=persistent,desc=room 2", want: ExportConfig{Name: "lab", Path: "/x", COW: "persistent", Description: "room 2"}},
		{in: "lab=/x,cow=ephemeral", want: ExportConfig{Name: "lab", Path: "/x", COW: "ephemeral"}},
		{in: "lab=/x,cow,grace=10m,quota=512M", want: ExportConfig{Name: "lab", Path: "/x", COW: "ephemeral", Grace: Duration(10 * time.Minute), Quota: 512 << 20}},
		{in: "lab=/x,cow=persistent,quota=2G", want: ExportConfig{Name: "lab", Path: "/x", COW: "persistent", Quota: 2 << 30}},
		{in: "lab=/x,cow,grace=soon", wantErr: `export "lab": option grace="soon": want a duration such as 90s or 10m`},
		{in: "lab=/x,cow,quota=2X", wantErr: `export "lab": option quota="2X": want a size such as 512M or 2G`},
		{in: "lab=/x,cow,quota", wantErr: `export "lab": option quota="": want a size such as 512M or 2G`},
		{in: "lab=/x,cow,quota=100", wantErr: `export "lab": grace must be >= 0, quota 0 or at least 4K`},
		{in: "lab=/x,quota=1G", wantErr: `export "lab": grace and quota apply to cow exports only`},
		{in: "lab=/x,cow=forever", wantErr: `export "lab": cow="forever", want ephemeral or persistent`},
		{in: "lab=/x,cow=", wantErr: `export "lab": cow="", want ephemeral or persistent`},
		{in: "lab=/x,cow,ro", wantErr: `export "lab": cow and ro exclude each other`},
		{in: "root=/x,snapshot", wantErr: `export "root": unknown option "snapshot" (known: ro, cow[=persistent], grace=DURATION, quota=SIZE, desc=TEXT)`},
		{in: "root=/x,", wantErr: `export "root": unknown option "" (known: ro, cow[=persistent], grace=DURATION, quota=SIZE, desc=TEXT)`},
		{in: "root=/x,ro=1", wantErr: `export "root": option ro takes no value`},
		{in: "root=/x,desc", wantErr: `export "root": option desc needs a value (desc=TEXT)`},
		{in: "root=/x,ro,ro", wantErr: `export "root": option "ro" given twice`},
		{in: "a/b=/x", wantErr: `export name "a/b": holds '/', which is reserved for NAME/CLIENT-ID`},
		{in: "a\x00b=/x", wantErr: `export name "a\x00b": holds a NUL byte`},
		{in: strings.Repeat("n", 4097) + "=/x", wantErr: `longer than 4096 bytes`},
	} {
		got, err := ParseExportSpec(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseExportSpec(%.40q) = %+v, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseExportSpec(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// FuzzExportSpec checks that a parsed spec is valid and survives being
// formatted back and parsed again.
func FuzzExportSpec(f *testing.F) {
	for _, s := range []string{"root=/srv/root.img", "r=/x,ro", "d=/dev/sdb,desc=spare", "x", "a=b,c=d", "=,,", "l=/x,cow,grace=90s,quota=4K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ec, err := ParseExportSpec(s)
		if err != nil {
			return
		}
		if err := ec.Validate(); err != nil {
			t.Fatalf("parsed %q to invalid %+v: %v", s, ec, err)
		}
		out := ec.Name + "=" + ec.Path
		if ec.ReadOnly {
			out += ",ro"
		}
		if ec.COW != "" {
			out += ",cow=" + ec.COW
		}
		if ec.Grace != 0 {
			out += ",grace=" + time.Duration(ec.Grace).String()
		}
		if ec.Quota != 0 {
			out += ",quota=" + strconv.FormatInt(int64(ec.Quota), 10)
		}
		if ec.Description != "" {
			out += ",desc=" + ec.Description
		}
		again, err := ParseExportSpec(out)
		if err != nil || !reflect.DeepEqual(again, ec) {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v, %v", s, ec, out, again, err)
		}
	})
}
