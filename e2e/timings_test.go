package e2e

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// bootTimings are the durations a boot's console reports (nbdboot's log,
// boot/log.go and boot/run.go) plus what the host measured.
type bootTimings struct {
	InitToSwitch  time.Duration            // nbdboot: /init to switch_root
	KernelUptime  time.Duration            // the kernel's uptime at switch_root (0: not printed)
	Phases        map[string]time.Duration // "modules", "network", "connect", ... as printed
	QemuToRoot    time.Duration            // host: qemu started to the root's init marker
	InitramfsSize int64
}

var (
	// nbdboot: [   1.234s] switch_root: /newroot to nbd://... on /dev/nbd0; 1.234s from /init to switch_root, kernel uptime 3.456s
	switchRE = regexp.MustCompile(`([0-9.]+)s from /init to switch_root(?:, kernel uptime ([0-9.]+)s)?`)
	// nbdboot: [   0.715s] modules: nbd virtio_ring ... (0.686s)
	phaseRE = regexp.MustCompile(`^nbdboot: \[\s*[0-9.]+s\] ([a-z_]+): .*\(([0-9.]+)s\)$`)
)

// parseTimings reads the timings out of console lines.
func parseTimings(lines []string) bootTimings {
	tm := bootTimings{Phases: map[string]time.Duration{}}
	for _, l := range lines {
		l = strings.TrimRight(l, "\r")
		if m := switchRE.FindStringSubmatch(l); m != nil {
			tm.InitToSwitch = seconds(m[1])
			tm.KernelUptime = seconds(m[2])
			continue
		}
		if m := phaseRE.FindStringSubmatch(l); m != nil {
			tm.Phases[m[1]] = seconds(m[2])
		}
	}
	return tm
}

func seconds(s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

// readLines reads a console log file.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// String is the one-line summary the tests log.
func (tm bootTimings) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "initramfs %.2f MiB; /init to switch_root %s", float64(tm.InitramfsSize)/(1<<20), ms(tm.InitToSwitch))
	var ph []string
	for _, name := range []string{"modules", "random", "network", "connect", "attach", "partitions", "root"} {
		if d, ok := tm.Phases[name]; ok {
			ph = append(ph, name+" "+ms(d))
		}
	}
	if len(ph) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(ph, ", "))
	}
	if tm.KernelUptime > 0 {
		fmt.Fprintf(&b, "; kernel uptime at switch_root %s", ms(tm.KernelUptime))
	}
	fmt.Fprintf(&b, "; qemu start to root init %s", ms(tm.QemuToRoot))
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }
