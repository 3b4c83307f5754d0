package netcfg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// keepUntilRenewed runs KeepLeases for res's DHCP lease in a synctest
// bubble, the lease acquired at the bubble's start (its clock moves only
// while every goroutine in it waits, not during the DHCP exchange). Once
// the loop sleeps until T1, asleep runs (nil: nothing); then the test
// waits for the first renewal attempt, checks that it came exactly at T1,
// cancels KeepLeases and returns its log. res must hold one DHCP lease.
func keepUntilRenewed(t *testing.T, res Result, asleep func(t *testing.T)) []string {
	t.Helper()
	var keepLog []string
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		res.Links = slices.Clone(res.Links)
		var t1 time.Duration
		for i, lr := range res.Links {
			if lr.Lease != nil {
				l := *lr.Lease
				l.Acquired = start
				res.Links[i].Lease, t1 = &l, l.T1
			}
		}
		logs := make(chan string, 100)
		ctx, cancel := context.WithCancel(context.Background())
		kept := make(chan error, 1)
		go func() {
			kept <- KeepLeases(ctx, res, DHCPConfig{}, func(f string, a ...any) { logs <- fmt.Sprintf(f, a...) })
		}()
		synctest.Wait() // the loop sleeps until T1
		if asleep != nil {
			asleep(t)
		}
		for {
			line := <-logs
			keepLog = append(keepLog, line)
			if strings.Contains(line, ": renewed ") || strings.Contains(line, " failed: ") {
				break
			}
		}
		if got := time.Since(start); got != t1 {
			t.Errorf("KeepLeases renewed %s after the lease was acquired, want at T1 (%s)", got, t1)
		}
		cancel()
		if err := <-kept; !errors.Is(err, context.Canceled) {
			t.Errorf("KeepLeases = %v", err)
		}
	})
	return keepLog
}
