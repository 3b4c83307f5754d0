package pxe

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"pack.ag/tftp"
)

// maxTransfers caps TFTP transfers served at once (each holds a file and
// a socket): a machine flooding read requests gets errors, not the
// server's descriptors. One source address holds at most
// Config.MaxTransfersPerAddress of them.
const maxTransfers = 32

// tftpRetransmit is how often a TFTP block is sent again (each after the
// client's timeout, 1 s unless it asks for another) before the transfer
// is given up.
const tftpRetransmit = 5

// tftpChunk is what the handler gives the TFTP connection at a time: a
// block of the default size, so that a stalled transfer is seen after
// one block.
const tftpChunk = 512

// serveTFTP sends iPXE: the only names served are MAC/NAME with NAME the
// base name of the configured BIOS or UEFI binary, as the DHCP replies
// give them.
func (s *Service) serveTFTP(r tftp.ReadRequest) {
	macPart, name, _ := strings.Cut(r.Name(), "/")
	mac, err := net.ParseMAC(macPart)
	from := r.Addr().IP.String()
	base := s.logs.Logger(s.log, from)
	log := base.With("mac", macPart, "client", from)
	if err != nil || len(mac) != 6 {
		log.Info("pxe", "step", "tftp", "file", r.Name(), "err", "not MAC/FILE")
		r.WriteError(tftp.ErrCodeFileNotFound, "no such file")
		return
	}
	log = base.With("mac", mac.String(), "client", from)
	path := map[string]string{s.files.bios: s.cfg.IPXEBIOS, s.files.efi: s.cfg.IPXEEFI}[name]
	if path == "" {
		log.Info("pxe", "step", "tftp", "file", r.Name(), "err", "not an iPXE binary served here")
		r.WriteError(tftp.ErrCodeFileNotFound, "no such file")
		return
	}
	if c, _ := s.machines.choice(mac); c.Refuse {
		log.Info("pxe", "step", "refused", "file", name)
		r.WriteError(tftp.ErrCodeAccessViolation, "this machine is not booted here")
		return
	}
	if !s.transfers.take(from, false) {
		log.Warn("pxe", "step", "tftp", "file", name, "err", fmt.Sprintf("busy: %d transfers at once, %d per address", maxTransfers, s.cfg.MaxTransfersPerAddress))
		r.WriteError(tftp.ErrCodeNotDefined, "server busy")
		return
	}
	defer s.transfers.release(from)
	n, err := sendFile(r, path, time.Duration(s.cfg.StallTimeout), time.Now)
	if err != nil {
		log.Error("pxe", "step", "tftp", "file", name, "err", err)
		return
	}
	log.Info("pxe", "step", "tftp", "file", name, "bytes", n)
}

// sendFile writes the file at path to r, announcing its size first. A
// block that takes longer than stall to be sent and acknowledged ends
// the transfer.
func sendFile(r tftp.ReadRequest, path string, stall time.Duration, now func() time.Time) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		r.WriteError(tftp.ErrCodeFileNotFound, "no such file")
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		r.WriteError(tftp.ErrCodeNotDefined, "read error")
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	r.WriteSize(fi.Size())
	buf := make([]byte, tftpChunk)
	var n int64
	for {
		k, rerr := f.Read(buf)
		if k > 0 {
			start := now()
			w, err := r.Write(buf[:k])
			n += int64(w)
			if err != nil {
				return n, fmt.Errorf("send %s: %w", path, err)
			}
			if took := now().Sub(start); took > stall {
				r.WriteError(tftp.ErrCodeNotDefined, "too slow")
				return n, fmt.Errorf("send %s: a block took %s to be acknowledged (stall_timeout %s)", path, took.Round(time.Millisecond), stall)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			r.WriteError(tftp.ErrCodeNotDefined, "read error")
			return n, fmt.Errorf("read %s: %w", path, rerr)
		}
	}
}
