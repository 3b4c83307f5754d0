package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nbdboot/nbdboot/cow"
)

// The control interface lists and resets overlays while the server runs.
// It is a unix socket (mode 0600, so only its owner may use it) that
// takes one request per connection, a JSON object on one line:
//
//	{"op":"list"}
//	{"op":"reset","export":"lab","client":"52:54:00:12:34:56"}
//	{"op":"reset","export":"lab"}                   (every client of lab)
//
// and answers with one JSON line, "error" set when it failed:
//
//	{"overlays":[{"export":"lab","client":"pc1","size":4096,
//	  "last_use":"2026-11-21T15:04:05Z","connections":1,"persistent":false}]}
//	{"reset":3}
//	{"reset":2,"error":"reset overlays of export \"lab\": overlay in use: ..."}

// ControlRequest is one request to the control socket.
type ControlRequest struct {
	Op     string `json:"op"` // "list" or "reset"
	Export string `json:"export,omitempty"`
	// Client is the overlay to reset; empty resets all of Export's.
	Client string `json:"client,omitempty"`
}

// ControlReply answers a ControlRequest.
type ControlReply struct {
	Overlays []OverlayInfo `json:"overlays,omitempty"`
	Reset    int           `json:"reset,omitempty"` // overlays deleted
	Error    string        `json:"error,omitempty"`
}

// OverlayInfo describes one overlay.
type OverlayInfo struct {
	Export      string    `json:"export"`
	Client      string    `json:"client"`
	Size        int64     `json:"size"` // bytes the overlay holds
	LastUse     time.Time `json:"last_use"`
	Connections int       `json:"connections"`
	Persistent  bool      `json:"persistent"`
}

// maxControlRequest bounds a request line.
const maxControlRequest = 64 << 10

// controlTimeout bounds one control connection.
const controlTimeout = 10 * time.Second

// ListenControl listens on the unix socket at path with mode 0600. A
// socket left by a server that is gone is replaced; one that answers is
// an error.
func ListenControl(path string) (net.Listener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: in use by another server", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

// ServeControl answers control requests about the overlays of m on ln
// until ctx is done; it closes ln (which removes the socket).
func ServeControl(ctx context.Context, ln net.Listener, m *cow.Manager, log *slog.Logger) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("control socket: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveControlConn(c, m, log)
		}()
	}
}

func serveControlConn(c net.Conn, m *cow.Manager, log *slog.Logger) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(controlTimeout))
	line, err := bufio.NewReader(io.LimitReader(c, maxControlRequest)).ReadBytes('\n')
	var reply ControlReply
	var req ControlRequest
	if err != nil {
		reply.Error = fmt.Sprintf("control request: want one JSON line of at most %d bytes: %v", maxControlRequest, err)
	} else if err := json.Unmarshal(line, &req); err != nil {
		reply.Error = fmt.Sprintf("control request: %v", err)
	} else {
		reply = doControl(req, m)
		if req.Op == "reset" {
			log.Info("control: reset", "export", req.Export, "client", req.Client, "deleted", reply.Reset, "err", reply.Error)
		}
	}
	out, _ := json.Marshal(reply)
	c.Write(append(out, '\n'))
}

// doControl carries out one request.
func doControl(req ControlRequest, m *cow.Manager) ControlReply {
	var reply ControlReply
	switch req.Op {
	case "list":
		reply.Overlays = []OverlayInfo{}
		for _, in := range m.List() {
			reply.Overlays = append(reply.Overlays, OverlayInfo{Export: in.Export, Client: in.Client, Size: in.Size,
				LastUse: in.LastUse.UTC(), Connections: in.Connections, Persistent: in.Persistent})
		}
	case "reset":
		var err error
		switch {
		case req.Export == "":
			err = errors.New("reset: no export given")
		case req.Client == "":
			reply.Reset, err = m.ResetAll(req.Export)
		default:
			if err = m.Reset(req.Export, req.Client); err == nil {
				reply.Reset = 1
			}
		}
		if err != nil {
			reply.Error = err.Error()
		}
	default:
		reply.Error = fmt.Sprintf("control request: unknown op %q (want list or reset)", req.Op)
	}
	return reply
}

// ControlCall sends req to the control socket at path and returns the
// reply; a reply carrying an error is returned with that error too.
func ControlCall(ctx context.Context, path string, req ControlRequest) (ControlReply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return ControlReply{}, fmt.Errorf("control socket: %w", err)
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(controlTimeout)
	}
	c.SetDeadline(deadline)
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return ControlReply{}, fmt.Errorf("control socket %s: send: %w", path, err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, 64<<20)).ReadBytes('\n')
	if err != nil {
		return ControlReply{}, fmt.Errorf("control socket %s: read reply: %w", path, err)
	}
	var reply ControlReply
	if err := json.Unmarshal(line, &reply); err != nil {
		return ControlReply{}, fmt.Errorf("control socket %s: reply: %w", path, err)
	}
	if reply.Error != "" {
		return reply, errors.New(reply.Error)
	}
	return reply, nil
}
