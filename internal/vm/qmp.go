package vm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmpCommand runs one human monitor command through the QMP socket at path
// and returns its output. The socket is listening before qemu starts (Start
// passes it in), so a connection waits in the backlog until qemu serves it.
func qmpCommand(path, command string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return "", fmt.Errorf("qmp connect %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	r := bufio.NewReader(conn)
	// Greeting, then capabilities negotiation.
	if _, err := qmpRead(r); err != nil {
		return "", fmt.Errorf("qmp greeting: %w", err)
	}
	if err := qmpSend(conn, map[string]any{"execute": "qmp_capabilities"}); err != nil {
		return "", err
	}
	if _, err := qmpRead(r); err != nil {
		return "", fmt.Errorf("qmp_capabilities: %w", err)
	}
	if err := qmpSend(conn, map[string]any{
		"execute":   "human-monitor-command",
		"arguments": map[string]any{"command-line": command},
	}); err != nil {
		return "", err
	}
	ret, err := qmpRead(r)
	if err != nil {
		return "", fmt.Errorf("monitor command %q: %w", command, err)
	}
	var out string
	if err := json.Unmarshal(ret, &out); err != nil {
		return "", fmt.Errorf("monitor command %q: reply %s: %w", command, ret, err)
	}
	return out, nil
}

func qmpSend(conn net.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = conn.Write(append(b, '\n'))
	return err
}

// qmpMessage is a QMP reply, event or greeting.
type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Event  string          `json:"event"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

// qmpRead returns the next reply's "return" (or the greeting), skipping
// asynchronous events.
func qmpRead(r *bufio.Reader) (json.RawMessage, error) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("qmp message %q: %w", line, err)
		}
		switch {
		case m.Event != "":
			continue
		case m.Error != nil:
			return nil, fmt.Errorf("qmp error %s: %s", m.Error.Class, m.Error.Desc)
		case m.QMP != nil:
			return m.QMP, nil
		default:
			return m.Return, nil
		}
	}
}
