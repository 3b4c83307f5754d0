package netcfg

import (
	"context"
	"fmt"
	"time"
)

// RenewFunc renews cur and returns the new lease.
type RenewFunc func(ctx context.Context, cur *Lease) (*Lease, error)

// RenewConfig drives RenewLoop.
type RenewConfig struct {
	Renew    RenewFunc            // required; see DHCPConfig.Renewer
	Logf     func(string, ...any) // nil means silent
	OnLease  func(*Lease)         // called after every successful renewal
	MinRetry time.Duration        // shortest wait between failed attempts; default 60s (RFC 2131 4.4.5)
}

// RenewLoop keeps the DHCP lease alive from the resident process until ctx
// is done; it returns ctx.Err(). It goes by the time package's clock (its
// tests run it in a testing/synctest bubble). It renews at T1; a failed attempt is
// retried after half the time left until T2 (then until expiry), at least
// MinRetry apart, and keeps retrying after the lease has expired. It never
// touches the installed address (which is permanent, see the package
// documentation): a lease for a different address is reported and ignored.
func RenewLoop(ctx context.Context, lease *Lease, rc RenewConfig) error {
	if rc.Renew == nil {
		return fmt.Errorf("renew lease %s: no RenewFunc", lease.Addr)
	}
	logf := rc.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	minRetry := rc.MinRetry
	if minRetry <= 0 {
		minRetry = time.Minute
	}
	boot := lease.Addr
	cur := lease
	for {
		if cur.Duration == Infinite {
			logf("dhcp on %s: lease for %s is infinite, not renewing", cur.Interface, cur.Addr)
			<-ctx.Done()
			return ctx.Err()
		}
		if err := sleepUntil(ctx, cur.Acquired.Add(cur.T1)); err != nil {
			return err
		}
		warnedExpiry := false
		for {
			sent := time.Now()
			next, err := rc.Renew(ctx, cur)
			if err == nil {
				// RFC 2131 4.4.1: lease times count from the request.
				next.Acquired = sent
				if next.Addr != boot {
					logf("dhcp on %s: server now offers %s; keeping boot address %s", next.Interface, next.Addr, boot)
				} else {
					logf("dhcp on %s: renewed %s for %s", next.Interface, next.Addr, next.Duration)
				}
				cur = next
				if rc.OnLease != nil {
					rc.OnLease(next)
				}
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			now := time.Now()
			wait := retryWait(cur, now, minRetry)
			if now.After(cur.Expires()) && !warnedExpiry {
				logf("dhcp on %s: lease for %s expired at %s; keeping the address (permanent) and retrying", cur.Interface, cur.Addr, cur.Expires().Format(time.RFC3339))
				warnedExpiry = true
			}
			logf("dhcp on %s: renew %s failed: %v; retrying in %s", cur.Interface, cur.Addr, err, wait)
			if err := sleepUntil(ctx, now.Add(wait)); err != nil {
				return err
			}
		}
	}
}

// retryWait is half the time left until T2 (or, past T2, until expiry), but
// at least min (RFC 2131 4.4.5).
func retryWait(l *Lease, now time.Time, min time.Duration) time.Duration {
	until := l.Acquired.Add(l.T2)
	if !now.Before(until) {
		until = l.Expires()
	}
	if w := until.Sub(now) / 2; w > min {
		return w
	}
	return min
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
