package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// A server that accepts and never answers must not hang the benchmark:
// runFio gives up after its limit and leaves no fio process behind, job
// processes (which start sessions of their own) included.
func TestRunFioHungServer(t *testing.T) {
	testutil.RequireTool(t, "fio")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // never answered; closed with the listener
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	w := workload{name: "hung", args: []string{"--name=hung", "--ioengine=nbd", "--rw=randread", "--bs=4k",
		"--numjobs=4", "--size=1m", "--time_based", "--runtime=1", "--output-format=json"}}
	_, err = runFio(w, "nbd://"+ln.Addr().String()+"/x", 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "no result within") {
		t.Fatalf("runFio = %v, want a timeout", err)
	}
	token := "nbdbench-" + strconv.Itoa(os.Getpid()) + "-"
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), token) {
			st, _ := os.ReadFile("/proc/" + d.Name() + "/stat")
			if !strings.Contains(string(st), ") Z ") {
				t.Errorf("fio process %s still running: %q", d.Name(), b)
			}
		}
	}
}
