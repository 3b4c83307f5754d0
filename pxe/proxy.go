package pxe

import (
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// answer is the reply to DHCP message m received on port 67 (port4011
// false) or 4011, or nil for none. It logs what it answers.
func (s *Service) answer(m *dhcpv4.DHCPv4, port4011 bool) *dhcpv4.DHCPv4 {
	if m.OpCode != dhcpv4.OpcodeBootRequest || len(m.ClientHWAddr) != 6 {
		return nil
	}
	fw := classify(m)
	mac := m.ClientHWAddr
	log := s.dhcpLog(mac)
	c, known := s.machines.choice(mac)
	boot := fw != notPXE && fw != otherPXE && !c.Refuse
	if fw != notPXE && c.Refuse {
		log.Info("pxe", "step", "refused", "firmware", fw.String(), "known", known)
	}
	if fw == otherPXE {
		log.Info("pxe", "step", "unsupported", "arch", m.ClientArch())
	}
	var reply *dhcpv4.DHCPv4
	step := "dhcp-" + m.MessageType().String()
	if s.leases != nil && !port4011 {
		reply = s.lease(m, log)
		if reply == nil || !boot || reply.MessageType() == dhcpv4.MessageTypeNak {
			return reply
		}
	} else {
		// proxyDHCP: an OFFER to a DISCOVER on 67, an ACK to a REQUEST on
		// 4011; never an address.
		want := dhcpv4.MessageTypeDiscover
		typ := dhcpv4.MessageTypeOffer
		if port4011 {
			want, typ = dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeAck
		}
		if !boot || m.MessageType() != want {
			return nil
		}
		var err error
		reply, err = dhcpv4.NewReplyFromRequest(m,
			dhcpv4.WithMessageType(typ),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.files.ip)),
			dhcpv4.WithYourIP(net.IPv4zero),
		)
		if err != nil {
			log.Error("pxe", "step", "reply", "err", err)
			return nil
		}
		if port4011 {
			reply.ClientIPAddr = m.ClientIPAddr
		}
		step = "proxy-offer"
		if port4011 {
			step = "proxy-ack-4011"
		}
	}
	file := s.files.addBoot(reply, m, fw, port4011)
	log.Info("pxe", "step", step, "firmware", fw.String(), "file", file, "known", known)
	return reply
}
