package pxe

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"pack.ag/tftp"

	"github.com/nbdboot/nbdboot/internal/vm"
)

// labChildEnv tells TestServiceInLab it runs inside the lab's namespace
// (the bridge and the server's address).
const labChildEnv = "NBDBOOT_PXE_LAB_CHILD"

// TestServiceInLab starts the service on a lab network's bridge (a
// namespace of the test's, root only) and fetches what a BIOS PXE ROM and
// iPXE fetch: undionly.kpxe over TFTP, the script, kernel and initramfs
// over HTTP, each logged with the MAC; a refused machine gets neither. A
// port already taken and an interface without an address are named at
// start-up. The test runs again in a
// child process inside the namespace, so that every socket the servers
// open (a TFTP transfer's own port too) is there.
func TestServiceInLab(t *testing.T) {
	if os.Getenv(labChildEnv) == "" {
		lab := vm.NewLab(t, 0)
		if out, err := lab.Command("ip", "link", "add", "noaddr0", "type", "bridge").CombinedOutput(); err != nil {
			t.Fatalf("add an interface without address: %v: %s", err, out)
		}
		cmd := lab.Command(os.Args[0], "-test.run=^TestServiceInLab$", "-test.v")
		cmd.Env = append(os.Environ(), labChildEnv+"="+lab.Bridge+" "+lab.Server)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestServiceInLab") {
			t.Errorf("in the lab: %v\n%s", err, out)
		}
		return
	}
	bridge, server, _ := strings.Cut(os.Getenv(labChildEnv), " ")
	lab := &vm.Lab{Bridge: bridge, Server: server}
	cfg := bootFilesIn(t, t.TempDir())
	cfg.Interface = lab.Bridge
	cfg.HTTPPort = 8080
	cfg.Machines = []Machine{{MAC: macOther.String(), Refuse: true}}
	log := vm.NewLineLog()
	start := func() (*Service, error) {
		return Start(cfg, Options{Log: slog.New(slog.NewTextHandler(log, nil))})
	}

	noaddr := cfg
	noaddr.Interface = "noaddr0"
	if s, err := Start(noaddr, Options{}); err == nil {
		s.Close()
		t.Error("started on an interface without an address")
	} else if !strings.Contains(err.Error(), "pxe: interface noaddr0 has no IPv4 address") {
		t.Errorf("error %q does not name the interface without address", err)
	}

	taken, err := net.Listen("tcp", net.JoinHostPort(lab.Server, "8080"))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := start(); err == nil {
		s.Close()
		t.Fatal("started with its HTTP port taken")
	} else if !strings.Contains(err.Error(), "pxe: HTTP port 8080 on 10.0.3.1") {
		t.Errorf("error %q does not name the HTTP port", err)
	}
	taken.Close()

	s, err := start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	tftpGet := func(name string) ([]byte, error) {
		c, err := tftp.NewClient()
		if err != nil {
			return nil, err
		}
		r, err := c.Get("tftp://" + lab.Server + ":69/" + name)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}
	got, err := tftpGet("52-54-00-9e-00-01/undionly.kpxe")
	if err != nil || string(got) != "undionly.kpxe" {
		t.Errorf("TFTP undionly.kpxe: %q, %v", got, err)
	}
	if _, err := tftpGet("52-54-00-9e-00-99/undionly.kpxe"); err == nil {
		t.Error("TFTP: a refused machine got iPXE")
	}
	if _, err := tftpGet("52-54-00-9e-00-01/../../etc/passwd"); err == nil {
		t.Error("TFTP: served a name that is not iPXE")
	}

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	httpGet := func(mac, file string) (int, string) {
		t.Helper()
		resp, err := client.Get("http://" + lab.Server + ":8080/boot/" + mac + "/" + file)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := httpGet("52-54-00-9e-00-01", "script.ipxe"); code != 200 || !strings.Contains(body, "nbdroot=nbd://10.0.3.1/lab") {
		t.Errorf("script: %d %q", code, body)
	}
	for file, want := range map[string]string{"kernel": "vmlinuz", "initramfs": "initramfs.cpio.gz"} {
		if code, body := httpGet("52-54-00-9e-00-01", file); code != 200 || body != want {
			t.Errorf("%s: %d %q", file, code, body)
		}
	}
	if got := s.MACOf(lab.Server + ":40000"); got != macKnown.String() {
		t.Errorf("MACOf(the address that fetched) = %q, want %s", got, macKnown)
	}
	if got := s.MACOf("10.0.3.77"); got != "" {
		t.Errorf("MACOf(an address that fetched nothing) = %q", got)
	}
	if code, _ := httpGet("52-54-00-9e-00-99", "kernel"); code != http.StatusForbidden {
		t.Errorf("refused machine's kernel: status %d, want 403", code)
	}
	if code, _ := httpGet("not-a-mac", "kernel"); code != http.StatusNotFound {
		t.Errorf("bad MAC: status %d, want 404", code)
	}
	s.Close()
	logged := func(mac, step string) bool {
		for _, l := range log.Lines() {
			if strings.Contains(l, "mac="+mac+" ") && strings.Contains(l, step) {
				return true
			}
		}
		return false
	}
	for _, step := range []string{"step=tftp file=undionly.kpxe bytes=13", "step=script", "step=kernel bytes=7", "step=initramfs bytes=17"} {
		if !logged(macKnown.String(), step) {
			t.Errorf("log has no %q for %s:\n%s", step, macKnown, log.Tail(30))
		}
	}
	if !logged(macOther.String(), "step=refused") {
		t.Errorf("log has no refusal:\n%s", log.Tail(30))
	}
}
