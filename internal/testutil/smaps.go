package testutil

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// MappedKiB is the part of the mapping that starts at m[0] that is in
// this process's page tables (its Rss in /proc/self/smaps), in KiB; the
// test fails if there is no such mapping.
func MappedKiB(t testing.TB, m []byte) int {
	t.Helper()
	addr := uintptr(unsafe.Pointer(&m[0]))
	kib, ok := MappingAt(t, addr)
	if !ok {
		t.Fatalf("no mapping at %#x in /proc/self/smaps", addr)
	}
	return kib
}

// MappingAt reports whether a mapping of this process starts at addr,
// and the KiB of it in the page tables (its Rss in /proc/self/smaps).
func MappingAt(t testing.TB, addr uintptr) (rssKiB int, ok bool) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := fmt.Sprintf("%x-", addr)
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) > 0 && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasPrefix(line, head) // a mapping's header line
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			n, err := strconv.Atoi(strings.Fields(line)[1])
			if err != nil {
				t.Fatalf("smaps line %q: %v", line, err)
			}
			return n, true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /proc/self/smaps: %v", err)
	}
	return 0, false
}
