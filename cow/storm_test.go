package cow

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkManagerStorm is a classroom's morning at the Manager: a server
// just started (a new Manager over 30 persistent overlays, each with a
// flushed write), 30 clients acquire theirs at once, read a block, and
// release it. It reports the time of one storm (start to the last
// release; the Managers' start and close are not counted) and the
// slowest client's acquire, averaged; compare it across changes with
//
//	go test -run XXX -bench ManagerStorm -count 5 ./cow
func BenchmarkManagerStorm(b *testing.B) {
	const clients = 30
	base := newTestBase(b, benchSize)
	dir := b.TempDir()
	m, err := NewManager(Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, bs4k)
	for i := range clients {
		ov, release, err := m.Acquire(lab, fmt.Sprintf("pc%d", i), base.be, Policy{Persistent: true})
		if err != nil {
			b.Fatal(err)
		}
		ov.WriteAt(buf, int64(i)*bs4k)
		if err := ov.Sync(); err != nil {
			b.Fatal(err)
		}
		release()
	}
	m.Close()
	var sumSlowest time.Duration
	for b.Loop() {
		b.StopTimer()
		m, err := NewManager(Config{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		var slowest time.Duration
		b.StartTimer()
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			start = make(chan struct{})
		)
		for i := range clients {
			wg.Go(func() {
				<-start
				t0 := time.Now()
				ov, release, err := m.Acquire(lab, fmt.Sprintf("pc%d", i), base.be, Policy{Persistent: true})
				if err != nil {
					b.Error(err)
					return
				}
				d := time.Since(t0)
				p := make([]byte, bs4k)
				ov.ReadAt(p, int64(i)*bs4k)
				release()
				mu.Lock()
				slowest = max(slowest, d)
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		b.StopTimer()
		m.Close()
		sumSlowest += slowest
		b.StartTimer()
	}
	b.ReportMetric(float64(sumSlowest.Microseconds())/1000/float64(b.N), "slowest-acquire-ms")
}
