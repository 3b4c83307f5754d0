package nbdnl

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"golang.org/x/sys/unix"
)

func TestDecodeLinkDead(t *testing.T) {
	requireLittleEndian(t)
	tests := []struct {
		name string
		m    genetlink.Message
		want uint32
		ok   bool
	}{
		{"link dead 4", genetlink.Message{Header: genetlink.Header{Command: CmdLinkDead, Version: FamilyVersion}, Data: []byte{
			0x08, 0x00, 0x01, 0x00, // len 8, NBD_ATTR_INDEX
			0x04, 0x00, 0x00, 0x00, //   u32 4
		}}, 4, true},
		{"other command", genetlink.Message{Header: genetlink.Header{Command: CmdStatus}, Data: []byte{
			0x08, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00,
		}}, 0, false},
		{"no index", genetlink.Message{Header: genetlink.Header{Command: CmdLinkDead}}, 0, false},
		{"truncated", genetlink.Message{Header: genetlink.Header{Command: CmdLinkDead}, Data: []byte{
			0x08, 0x00, 0x01, 0x00, 0x04, // len 8 but 5 bytes
		}}, 0, false},
	}
	for _, tt := range tests {
		got, ok := decodeLinkDead(tt.m)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: decodeLinkDead = %d, %v; want %d, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestWatchLoop feeds crafted notifications through the loop: LINK_DEAD
// indexes come out in order, junk and overruns are skipped, and a receive
// error closes the stream.
func TestWatchLoop(t *testing.T) {
	type recv struct {
		msgs []genetlink.Message
		err  error
	}
	feed := make(chan recv)
	out := make(chan uint32)
	ctx := t.Context()
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchLoop(ctx, func() ([]genetlink.Message, error) {
			r := <-feed
			return r.msgs, r.err
		}, out)
	}()
	dead := func(i uint32) genetlink.Message { return indexReply(CmdLinkDead, i) }
	go func() {
		feed <- recv{msgs: []genetlink.Message{dead(1), {Header: genetlink.Header{Command: CmdLinkDead}}, dead(2)}}
		feed <- recv{err: os.NewSyscallError("recvmsg", unix.ENOBUFS)}
		feed <- recv{msgs: []genetlink.Message{indexReply(CmdConnect, 8), dead(3)}}
		feed <- recv{err: errors.New("socket closed")}
	}()
	var got []uint32
	for _, want := range []uint32{1, 2, 3} {
		select {
		case i := <-out:
			got = append(got, i)
			if i != want {
				t.Fatalf("got indexes %v, want %d next", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no notification after %v", got)
		}
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("loop did not end on a receive error")
	}
}

func TestWatchLoopCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan uint32) // nobody reads: the loop must not block on send
	done := make(chan struct{})
	first := true
	go func() {
		defer close(done)
		watchLoop(ctx, func() ([]genetlink.Message, error) {
			if first {
				first = false
				return []genetlink.Message{indexReply(CmdLinkDead, 1)}, nil
			}
			return nil, errors.New("closed")
		}, out)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("loop did not end after cancel")
	}
}
