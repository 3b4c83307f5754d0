package cow

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// sizedReader is a Base in memory.
type sizedReader struct{ *bytes.Reader }

// TestAcquireConcurrent: connections of one new client arriving at once
// share one overlay opened once; other clients open theirs alongside.
func TestAcquireConcurrent(t *testing.T) {
	m, err := NewManager(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := sizedReader{bytes.NewReader(make([]byte, 1<<20))}
	const clients, conns = 6, 4
	ovs := make([][]*Overlay, clients)
	var wg sync.WaitGroup
	var failed atomic.Int32
	var mu sync.Mutex
	for c := range clients {
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ov, _, err := m.Acquire("lab", fmt.Sprint("pc", c), base, Policy{})
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				mu.Lock()
				ovs[c] = append(ovs[c], ov)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if failed.Load() > 0 {
		return
	}
	seen := map[*Overlay]bool{}
	for c, list := range ovs {
		for _, ov := range list {
			if ov != list[0] {
				t.Errorf("client pc%d: connections got different overlays", c)
			}
		}
		if seen[list[0]] {
			t.Errorf("client pc%d shares another client's overlay", c)
		}
		seen[list[0]] = true
	}
	for _, in := range m.List() {
		if in.Connections != conns {
			t.Errorf("%s/%s: %d connections, want %d", in.Export, in.Client, in.Connections, conns)
		}
	}
	if _, err := m.ResetAll("lab"); err == nil {
		t.Error("ResetAll with every client connected: no error")
	}
}

// BenchmarkAcquireNew creates overlays one after another, and as many
// clients booting at once would.
func BenchmarkAcquireNew(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprint("parallel=", parallel), func(b *testing.B) {
			m, err := NewManager(Config{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			base := sizedReader{bytes.NewReader(make([]byte, 64<<20))}
			var n atomic.Int64
			acquire := func() {
				_, rel, err := m.Acquire("lab", fmt.Sprint("pc", n.Add(1)), base, Policy{})
				if err != nil {
					b.Error(err)
					return
				}
				rel()
			}
			if !parallel {
				for b.Loop() {
					acquire()
				}
				return
			}
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					acquire()
				}
			})
		})
	}
}
