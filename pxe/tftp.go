package pxe

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"pack.ag/tftp"
)

// maxTransfers caps TFTP transfers served at once (each holds a file and
// a socket): a machine flooding read requests gets errors, not the
// server's descriptors.
const maxTransfers = 32

// serveTFTP sends iPXE: the only names served are MAC/NAME with NAME the
// base name of the configured BIOS or UEFI binary, as the DHCP replies
// give them.
func (s *Service) serveTFTP(r tftp.ReadRequest) {
	macPart, name, _ := strings.Cut(r.Name(), "/")
	mac, err := net.ParseMAC(macPart)
	log := s.log.With("mac", macPart, "client", r.Addr().IP.String())
	if err != nil || len(mac) != 6 {
		log.Info("pxe", "step", "tftp", "file", r.Name(), "err", "not MAC/FILE")
		r.WriteError(tftp.ErrCodeFileNotFound, "no such file")
		return
	}
	log = s.log.With("mac", mac.String())
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
	select {
	case s.transfers <- struct{}{}:
		defer func() { <-s.transfers }()
	default:
		log.Warn("pxe", "step", "tftp", "file", name, "err", fmt.Sprintf("more than %d transfers at once", maxTransfers))
		r.WriteError(tftp.ErrCodeNotDefined, "server busy")
		return
	}
	n, err := sendFile(r, path)
	if err != nil {
		log.Error("pxe", "step", "tftp", "file", name, "err", err)
		return
	}
	log.Info("pxe", "step", "tftp", "file", name, "bytes", n)
}

// sendFile writes the file at path to r, announcing its size first.
func sendFile(r tftp.ReadRequest, path string) (int64, error) {
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
	n, err := io.Copy(r, f)
	if err != nil {
		return n, fmt.Errorf("send %s: %w", path, err)
	}
	return n, nil
}
