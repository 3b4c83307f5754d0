package pxe

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// maxTransfers caps TFTP transfers served at once (each holds a file and
// a socket): a machine flooding read requests gets errors, not the
// server's descriptors. One source address holds at most
// Config.MaxTransfersPerAddress of them, for the whole transfer.
const maxTransfers = 32

// tftpResend is how long a block waits for its ACK before it is sent
// again; Config.StallTimeout without the ACK ends the transfer. The
// client's "timeout" option is not honoured: the server's timing is its
// own.
const tftpResend = time.Second

// serveTFTP reads requests on the service's TFTP port until it is
// closed, and starts a transfer for each read request.
func (s *Service) serveTFTP(conn *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n < 2 {
			continue
		}
		log := s.logs.Logger(s.log, from.IP.String()).With("client", from.IP.String())
		switch buf[1] {
		case opRRQ:
			r, err := parseRRQ(buf[:n])
			if err != nil {
				log.Info("pxe", "step", "tftp", "err", err)
				conn.WriteToUDP(errorPacket(tftpErrIllegal, err.Error()), from)
				continue
			}
			s.startTransfer(conn, from, r, log)
		case opWRQ:
			conn.WriteToUDP(errorPacket(tftpErrAccess, "read-only server"), from)
		}
	}
}

// startTransfer checks a read request and serves it from a socket of its
// own: the only names served are MAC/NAME with NAME the base name of the
// configured BIOS or UEFI binary, as the DHCP replies give them.
func (s *Service) startTransfer(conn *net.UDPConn, from *net.UDPAddr, r rrq, log *slog.Logger) {
	refuse := func(code uint16, msg string, args ...any) {
		log.Info("pxe", append([]any{"step", "tftp", "file", r.name}, args...)...)
		conn.WriteToUDP(errorPacket(code, msg), from)
	}
	macPart, name, _ := strings.Cut(r.name, "/")
	mac, err := net.ParseMAC(macPart)
	if err != nil || len(mac) != 6 {
		refuse(tftpErrNotFound, "no such file", "err", "not MAC/FILE")
		return
	}
	log = log.With("mac", mac.String())
	path := map[string]string{s.files.bios: s.cfg.IPXEBIOS, s.files.efi: s.cfg.IPXEEFI}[name]
	if path == "" {
		refuse(tftpErrNotFound, "no such file", "err", "not an iPXE binary served here")
		return
	}
	if c, _ := s.machines.choice(mac); c.Refuse {
		log.Info("pxe", "step", "refused", "file", name)
		conn.WriteToUDP(errorPacket(tftpErrAccess, "this machine is not booted here"), from)
		return
	}
	key := from.IP.String()
	if !s.transfers.take(key, false) {
		log.Warn("pxe", "step", "tftp", "file", name, "err", fmt.Sprintf("busy: %d transfers at once, %d per address", maxTransfers, s.cfg.MaxTransfersPerAddress))
		conn.WriteToUDP(errorPacket(tftpErrUndefined, "server busy"), from)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		n, err := s.transfer(from, r, path)
		s.transfers.release(key) // before the line that tells it ended
		if err != nil {
			log.Warn("pxe", "step", "tftp", "file", name, "bytes", n, "err", err)
			return
		}
		log.Info("pxe", "step", "tftp", "file", name, "bytes", n)
	}()
}

// transfer sends the file at path to the client at to, from a socket of
// its own (the transfer's ID), and returns the bytes acknowledged.
func (s *Service) transfer(to *net.UDPAddr, r rrq, path string) (int64, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: s.files.ip})
	if err != nil {
		return 0, fmt.Errorf("open a transfer socket: %w", err)
	}
	defer c.Close()
	t := &tftpTransfer{c: c, to: to, stall: time.Duration(s.cfg.StallTimeout), done: s.done}
	f, err := os.Open(path)
	if err != nil {
		t.send(errorPacket(tftpErrNotFound, "no such file"))
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.send(errorPacket(tftpErrUndefined, "read error"))
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	blk := tftpDefaultBlock
	if r.blksize != 0 || r.tsize {
		blk = min(max(r.blksize, 0), tftpMaxBlock)
		tsize := int64(-1)
		if r.tsize {
			tsize = fi.Size()
		}
		if err := t.exchange(oackPacket(blk, tsize), 0); err != nil {
			if errors.Is(err, errClientAborted) {
				return 0, nil // a size probe (EDK2 asks twice)
			}
			return 0, err
		}
		if blk == 0 {
			blk = tftpDefaultBlock
		}
	}
	buf, pkt := make([]byte, blk), make([]byte, 0, 4+blk)
	var sent int64
	for block := uint16(1); ; block++ {
		n, err := io.ReadFull(f, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			t.send(errorPacket(tftpErrUndefined, "read error"))
			return sent, fmt.Errorf("read %s: %w", path, err)
		}
		if err := t.exchange(dataPacket(pkt, block, buf[:n]), block); err != nil {
			return sent, err
		}
		sent += int64(n)
		if n < blk {
			return sent, nil
		}
	}
}

// errClientAborted is a client's ERROR during a transfer.
var errClientAborted = errors.New("the client ended the transfer")

// tftpTransfer is one transfer's socket and deadlines.
type tftpTransfer struct {
	c     *net.UDPConn
	to    *net.UDPAddr
	stall time.Duration
	done  <-chan struct{}
	buf   [1500]byte
}

func (t *tftpTransfer) send(p []byte) error {
	_, err := t.c.WriteToUDP(p, t.to)
	return err
}

// exchange sends p until the client acknowledges block n, sending it
// again every tftpResend, for stall at most. Duplicate ACKs of earlier
// blocks are ignored (never answered by sending again: RFC 1350's
// Sorcerer's Apprentice bug); packets from another address or port get
// an ERROR and change nothing.
func (t *tftpTransfer) exchange(p []byte, n uint16) error {
	give := time.Now().Add(t.stall)
	for {
		select {
		case <-t.done:
			return errors.New("the service is closing")
		default:
		}
		if err := t.send(p); err != nil {
			return fmt.Errorf("send block %d: %w", n, err)
		}
		resend := time.Now().Add(tftpResend)
		if resend.After(give) {
			resend = give
		}
		t.c.SetReadDeadline(resend)
		for {
			k, from, err := t.c.ReadFromUDP(t.buf[:])
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return fmt.Errorf("wait for the ACK of block %d: %w", n, err)
			}
			if !from.IP.Equal(t.to.IP) || from.Port != t.to.Port {
				t.c.WriteToUDP(errorPacket(tftpErrUnknownID, "unknown transfer ID"), from)
				continue
			}
			ack, isErr, msg, ok := parseReply(t.buf[:k])
			if isErr {
				return fmt.Errorf("%w: %q", errClientAborted, msg)
			}
			if ok && ack == n {
				return nil
			}
		}
		if !time.Now().Before(give) {
			t.send(errorPacket(tftpErrUndefined, "timeout"))
			return fmt.Errorf("block %d not acknowledged within stall_timeout %s", n, t.stall)
		}
	}
}
