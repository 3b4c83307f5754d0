package pxe

import (
	"log/slog"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// lease answers a DISCOVER with an OFFER of an address and a REQUEST
// with an ACK (or a NAK when the address is not the client's to have),
// in full-DHCP mode. A REQUEST naming another server is not ours.
func (s *Service) lease(m *dhcpv4.DHCPv4, log *slog.Logger) *dhcpv4.DHCPv4 {
	mac := m.ClientHWAddr.String()
	var ip net.IP
	typ := dhcpv4.MessageTypeOffer
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		var err error
		if ip, err = s.leases.offer(mac); ip == nil {
			log.Warn("pxe", "step", "dhcp-no-address", "err", err)
			return nil
		}
	case dhcpv4.MessageTypeRequest:
		if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(s.files.ip) {
			return nil
		}
		ip = m.RequestedIPAddress()
		if ip == nil {
			ip = m.ClientIPAddr
		}
		ok, err := s.leases.ack(mac, ip)
		if ok && err != nil {
			log.Error("pxe", "step", "dhcp-lease", "err", err)
		}
		typ = dhcpv4.MessageTypeAck
		if !ok {
			why := "the address is another's or outside the range"
			if err != nil {
				why = err.Error()
			}
			log.Info("pxe", "step", "dhcp-nak", "ip", ip.String(), "err", why)
			reply, _ := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.files.ip)))
			return reply
		}
		log.Info("pxe", "step", "dhcp-lease", "ip", ip.String())
		s.clients.note(ip, m.ClientHWAddr)
	default:
		return nil
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(ip),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.files.ip)),
		dhcpv4.WithNetmask(s.mask),
		dhcpv4.WithLeaseTime(uint32(time.Duration(s.cfg.DHCP.Lease) / time.Second)),
	}
	if s.cfg.DHCP.Router != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(net.ParseIP(s.cfg.DHCP.Router))))
	}
	reply, err := dhcpv4.NewReplyFromRequest(m, mods...)
	if err != nil {
		log.Error("pxe", "step", "dhcp-reply", "err", err)
		return nil
	}
	return reply
}
