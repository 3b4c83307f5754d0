package bootcfg

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Options are dracut's NBD OPTIONS field: a comma-separated list that dracut
// hands to nbd-client. The ones that mean something to nbdboot are parsed;
// the rest are kept verbatim in Extra (and logged, not applied).
type Options struct {
	Timeout     time.Duration // timeout=SECONDS (nbd-client -t): request timeout
	BlockSize   uint32        // bs=N (nbd-client -b): 512…65536, a power of two
	Persist     bool          // persist (nbd-client -p); nbdboot always reconnects
	Connections int           // connections=N (nbd-client -C): 1…16
	Extra       []string      // other options as written
}

// MaxConnections is the most connections per device nbdboot opens.
const MaxConnections = 16

// ParseOptions parses dracut's OPTIONS field. An option may be written
// with nbd-client's leading dashes and short names (-t 30, -persist, -C 2).
// Every bad option is reported, joined into one error.
func ParseOptions(s string) (Options, error) {
	var o Options
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			continue
		}
		k := strings.TrimLeft(item, "-")
		key, val, hasVal := strings.Cut(k, "=")
		if !hasVal {
			key, val, hasVal = strings.Cut(k, " ")
		}
		var err error
		switch key {
		case "timeout", "t":
			o.Timeout, err = parseSeconds(val, hasVal, 0)
		case "bs", "b", "block-size":
			o.BlockSize, err = parseBlockSize(val, hasVal)
		case "persist", "p":
			if hasVal {
				err = errors.New("takes no value")
			}
			o.Persist = true
		case "connections", "C":
			o.Connections, err = parseCount(val, hasVal, 1, MaxConnections)
		default:
			o.Extra = append(o.Extra, item)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("option %q: %w", item, err))
		}
	}
	return o, errors.Join(errs...)
}

// String returns the options in the form ParseOptions reads.
func (o Options) String() string {
	var s []string
	if o.Timeout != 0 {
		s = append(s, "timeout="+formatSeconds(o.Timeout))
	}
	if o.BlockSize != 0 {
		s = append(s, "bs="+strconv.FormatUint(uint64(o.BlockSize), 10))
	}
	if o.Persist {
		s = append(s, "persist")
	}
	if o.Connections != 0 {
		s = append(s, "connections="+strconv.Itoa(o.Connections))
	}
	s = append(s, o.Extra...)
	return strings.Join(s, ",")
}

func (o Options) isZero() bool {
	return o.Timeout == 0 && o.BlockSize == 0 && !o.Persist && o.Connections == 0 && len(o.Extra) == 0
}

// maxSeconds bounds every duration option: a day.
const maxSeconds = 24 * time.Hour

// parseSeconds reads whole seconds, written as a bare number ("30") or as
// a Go duration ("30s", "5m", "1h"), from min to a day.
func parseSeconds(val string, hasVal bool, min time.Duration) (time.Duration, error) {
	want := fmt.Sprintf("expected whole seconds from %d to %d, like 30 or 5m", int(min.Seconds()), int(maxSeconds.Seconds()))
	if !hasVal || val == "" {
		return 0, errors.New(want)
	}
	var d time.Duration
	if allDigits(val) {
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return 0, errors.New(want)
		}
		d = time.Duration(n) * time.Second
	} else {
		var err error
		if d, err = time.ParseDuration(val); err != nil {
			return 0, errors.New(want)
		}
	}
	if d < min || d > maxSeconds || d%time.Second != 0 {
		return 0, errors.New(want)
	}
	return d, nil
}

func formatSeconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return d.String()
}

func parseCount(val string, hasVal bool, min, max int) (int, error) {
	n, err := strconv.Atoi(val)
	if !hasVal || err != nil || !allDigits(val) || n < min || n > max {
		return 0, fmt.Errorf("expected a number from %d to %d", min, max)
	}
	return n, nil
}

func parseBlockSize(val string, hasVal bool) (uint32, error) {
	n, err := strconv.ParseUint(val, 10, 32)
	if !hasVal || err != nil || !allDigits(val) || n < 512 || n > 65536 || n&(n-1) != 0 {
		return 0, errors.New("expected a power of two from 512 to 65536")
	}
	return uint32(n), nil
}
