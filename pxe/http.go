package pxe

import (
	"net"
	"net/http"
	"os"
)

// httpHandler serves /boot/MAC/{script.ipxe,kernel,initramfs}.
func (s *Service) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot/{mac}/{file}", s.serveBoot)
	return mux
}

// serveBoot serves one machine's script or boot file, and logs it.
func (s *Service) serveBoot(w http.ResponseWriter, r *http.Request) {
	mac, err := net.ParseMAC(r.PathValue("mac"))
	if err != nil || len(mac) != 6 {
		http.NotFound(w, r)
		return
	}
	file := r.PathValue("file")
	from := r.RemoteAddr
	if host, _, err := net.SplitHostPort(from); err == nil {
		from = host
	}
	log := s.logs.Logger(s.log, from).With("mac", mac.String(), "client", r.RemoteAddr)
	c, known := s.machines.choice(mac)
	if c.Refuse {
		log.Info("pxe", "step", "refused", "file", file)
		http.Error(w, "this machine is not booted here", http.StatusForbidden)
		return
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil {
			s.clients.note(ip, mac)
		}
	}
	var path string
	switch file {
	case "script.ipxe":
		cl := cmdline(s.cfg.Cmdline, s.nbdServer, c)
		log.Info("pxe", "step", "script", "export", c.Export, "known", known, "cmdline", cl)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(script(s.files.baseURL(mac), mac, cl)))
		return
	case "kernel":
		path = s.cfg.Kernel
	case "initramfs":
		path = s.cfg.Initramfs
	default:
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		log.Error("pxe", "step", file, "err", err)
		http.Error(w, "cannot open "+file, http.StatusInternalServerError)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		log.Error("pxe", "step", file, "err", err)
		http.Error(w, "cannot stat "+file, http.StatusInternalServerError)
		return
	}
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, file, fi.ModTime(), f)
	log.Info("pxe", "step", file, "bytes", cw.n, "size", fi.Size())
}

// countingWriter counts the body bytes written.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}
