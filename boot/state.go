package boot

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
)

// StateVersion is the version of the state file's format.
const StateVersion = 1

// State is what PID 1 hands to the resident supervisor, in
// /run/nbdboot/state.json (which moves into the new root with /run).
type State struct {
	Version     int               `json:"version"`
	Index       uint32            `json:"index"`
	Device      string            `json:"device"`  // /dev/nbdN
	Servers     []bootcfg.Address `json:"servers"` // in order of preference
	Target      bootcfg.Address   `json:"target"`  // the one attached
	BackendID   string            `json:"backend_id"`
	ClientID    string            `json:"client_id,omitempty"`
	Connections int               `json:"connections"`
	Size        uint64            `json:"size"`
	BlockSize   uint64            `json:"block_size"`
	ServerFlags uint16            `json:"server_flags"`
	Timeout     time.Duration     `json:"timeout_ns"`
	DeadConn    time.Duration     `json:"dead_conn_timeout_ns"`
	Interface   string            `json:"interface,omitempty"` // its name at boot; udev may rename it
	IfIndex     int               `json:"ifindex,omitempty"`   // Interface's index, which a rename keeps
	// Overlay is nbdboot.overlay ("" or "tmpfs"): with a client-side
	// overlay the device is only read, which allows failover.
	Overlay string `json:"overlay,omitempty"`
	// Ioctl is set when the root was attached with ioctls and is held by
	// the keeper process: the supervisor cannot reconfigure it.
	Ioctl bool `json:"ioctl,omitempty"`
	// DHCPAddr is the address (CIDR) DHCP gave Interface at boot; ""
	// when the boot did not use DHCP. The supervisor keeps its lease.
	DHCPAddr string `json:"dhcp_addr,omitempty"`
	Debug    bool   `json:"debug,omitempty"`
	// InitStart is the kernel uptime when /init started, so that the
	// supervisor's log goes on with the same timeline.
	InitStart time.Duration `json:"init_start_uptime_ns,omitempty"`
}

// MarshalState encodes the state file.
func MarshalState(s State) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(b, '\n'), nil
}

// maxStateSize caps the state file read by the supervisor.
const maxStateSize = 1 << 20

// ReadState reads and checks a state file.
func ReadState(path string) (State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return State{}, fmt.Errorf("read state: %w", err)
	}
	return UnmarshalState(b)
}

// UnmarshalState decodes and checks a state file's content.
func UnmarshalState(b []byte) (State, error) {
	var s State
	if len(b) > maxStateSize {
		return s, fmt.Errorf("state: %d bytes, more than %d", len(b), maxStateSize)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode state: %w", err)
	}
	if s.Version != StateVersion {
		return s, fmt.Errorf("state: version %d, want %d", s.Version, StateVersion)
	}
	if s.Device == "" || s.Target.Host == "" {
		return s, fmt.Errorf("state: no device or target")
	}
	return s, nil
}
