package vm

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// fakeQMP serves one QMP session on a unix socket: greeting, capabilities,
// an event, then the reply to human-monitor-command.
func fakeQMP(t *testing.T, reply string) string {
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
		r.ReadBytes('\n') // qmp_capabilities
		c.Write([]byte(`{"return": {}}` + "\n"))
		line, _ := r.ReadBytes('\n')
		var req struct {
			Execute   string
			Arguments map[string]string
		}
		json.Unmarshal(line, &req)
		c.Write([]byte(`{"event": "NIC_RX_FILTER_CHANGED", "data": {}}` + "\n"))
		if req.Execute != "human-monitor-command" || req.Arguments["command-line"] != "info status" {
			c.Write([]byte(`{"error": {"class": "GenericError", "desc": "unexpected request"}}` + "\n"))
			return
		}
		b, _ := json.Marshal(map[string]string{"return": reply})
		c.Write(append(b, '\n'))
	}()
	return path
}

func TestQMPCommand(t *testing.T) {
	path := fakeQMP(t, "VM status: running\r\n")
	out, err := qmpCommand(path, "info status", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out != "VM status: running\r\n" {
		t.Errorf("output = %q", out)
	}
}

func TestQMPError(t *testing.T) {
	path := fakeQMP(t, "")
	if _, err := qmpCommand(path, "bogus", 5*time.Second); err == nil {
		t.Fatal("qmp error reply not reported")
	}
}
