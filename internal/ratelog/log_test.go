package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLogLimiter: an address logs its burst, then its rate; lines over
// it are dropped and counted on the next line let through; other
// addresses are not affected; errors always pass.
func TestLogLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	lim := New(func() time.Time { return now })
	var out bytes.Buffer
	base := slog.New(slog.NewTextHandler(&out, nil))
	noisy, quiet := lim.Logger(base, "10.0.0.1"), lim.Logger(base, "10.0.0.2").With("client", "q")
	for range addrLogBurst + 50 {
		noisy.Info("churn")
	}
	if n := strings.Count(out.String(), "msg=churn"); n != addrLogBurst {
		t.Fatalf("%d lines of a burst of %d logged", n, addrLogBurst)
	}
	noisy.Error("failure")
	quiet.Info("other address")
	if !strings.Contains(out.String(), "msg=failure") || !strings.Contains(out.String(), `msg="other address" client=q`) {
		t.Fatalf("an error or another address's line was dropped:\n%s", out.String())
	}
	now = now.Add(time.Second / addrLogRate)
	out.Reset()
	noisy.Info("later")
	if got := out.String(); !strings.Contains(got, "msg=later suppressed=50") {
		t.Fatalf("after a token came back: %q, want the line with suppressed=50", got)
	}
}
