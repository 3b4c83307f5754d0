package netcfg

import (
	"context"
	"sync"
)

// KeepLeases is what the resident process runs after switch_root: a
// RenewLoop for every DHCP lease in res (renewing with dc's identity, on
// the link of LinkResult.Index whatever its name is by then), until
// ctx is done. logf may be nil (silent). It returns
// ctx.Err(), or nil when res has no DHCP lease.
func KeepLeases(ctx context.Context, res Result, dc DHCPConfig, logf func(string, ...any)) error {
	if dc.Logf == nil {
		dc.Logf = logf
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(res.Links))
	for _, l := range res.Links {
		if l.Lease == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- RenewLoop(ctx, l.Lease, RenewConfig{Renew: dc.Renewer(l.Index), Logf: logf})
		}()
	}
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
	}
	return first
}
