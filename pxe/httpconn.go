package pxe

import (
	"net"
	"sync"
	"time"
)

// perAddress bounds ln's connections per source address
// (Config.MaxHTTPPerAddress): a connection past its address's share is
// closed at once, and the others are not kept waiting for it. Every
// write of a connection accepted must complete within
// Config.StallTimeout, so a client that stops reading (or reads a byte
// at a time) is cut while one that reads keeps its connection.
func (s *Service) perAddress(ln net.Listener) net.Listener {
	return &addrListener{Listener: ln, s: s}
}

type addrListener struct {
	net.Listener
	s *Service
}

func (l *addrListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		from := sourceIP(c.RemoteAddr())
		if !l.s.httpConns.take(from, false) {
			l.s.logs.Logger(l.s.log, from).Warn("pxe", "step", "http", "client", from,
				"err", "busy: more than max_http_per_address connections")
			c.Close()
			continue
		}
		return &stallConn{Conn: c, stall: time.Duration(l.s.cfg.StallTimeout), release: func() { l.s.httpConns.release(from) }}, nil
	}
}

// stallConn gives every write stall to complete and gives back its
// address's place once closed.
type stallConn struct {
	net.Conn
	stall   time.Duration
	once    sync.Once
	release func()
}

func (c *stallConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.stall)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// sourceIP is addr's IP address as text (its port left out).
func sourceIP(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return host
}
