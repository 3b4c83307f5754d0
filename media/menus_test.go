package media

import (
	"strings"
	"testing"
	"time"
)

func TestIsolinuxCfg(t *testing.T) {
	got := isolinuxCfg("console=ttyS0 nbdroot=nbd://s/lab rw", 1500*time.Millisecond)
	want := `SERIAL 0 115200
SAY nbdboot: booting in 1.5s (press a key for the boot: prompt; "nbdboot PARAM=VALUE" adds parameters)
DEFAULT nbdboot
PROMPT 1
TIMEOUT 15
LABEL nbdboot
  KERNEL /boot/vmlinuz
  INITRD /boot/initrd
  APPEND console=ttyS0 nbdroot=nbd://s/lab rw
`
	if got != want {
		t.Errorf("isolinux.cfg:\n%s\nwant:\n%s", got, want)
	}
	if got := isolinuxCfg("x", 0); !strings.Contains(got, "PROMPT 0\n") || strings.Contains(got, "TIMEOUT") {
		t.Errorf("isolinux.cfg without a timeout still waits:\n%s", got)
	}
}

func TestGrubCfg(t *testing.T) {
	got := grubCfg("console=ttyS0 nbdroot=nbd://s/lab rw", 1500*time.Millisecond)
	want := `set default=0
set timeout=2
set gfxpayload=text
menuentry 'nbdboot' {
	echo 'nbdboot: loading the kernel and initramfs'
	linux /boot/vmlinuz 'console=ttyS0' 'nbdroot=nbd://s/lab' 'rw'
	initrd /boot/initrd
}
`
	if got != want {
		t.Errorf("grub.cfg:\n%s\nwant:\n%s", got, want)
	}
}

func TestIPXEScript(t *testing.T) {
	got := ipxeScript("http://${next-server}/kernel", "http://${next-server}/initramfs", "nbdroot=nbd://${next-server}/lab")
	want := `#!ipxe
:retry
echo nbdboot: DHCP
dhcp || goto retry
isset ${proxydhcp/next-server} && set server ${proxydhcp/next-server} || set server ${next-server}
echo nbdboot: kernel from http://${next-server}/kernel
kernel http://${next-server}/kernel nbdroot=nbd://${next-server}/lab || goto retry
echo nbdboot: initramfs from http://${next-server}/initramfs
initrd http://${next-server}/initramfs || goto retry
boot || goto retry
`
	if got != want {
		t.Errorf("iPXE script:\n%s\nwant:\n%s", got, want)
	}
}

func TestIPXEChain(t *testing.T) {
	got := ipxeChain("http://${server}/boot/${mac:hexhyp}/script.ipxe")
	want := `#!ipxe
:retry
echo nbdboot: DHCP
dhcp || goto retry
isset ${proxydhcp/next-server} && set server ${proxydhcp/next-server} || set server ${next-server}
echo nbdboot: boot script from http://${server}/boot/${mac:hexhyp}/script.ipxe
chain http://${server}/boot/${mac:hexhyp}/script.ipxe || goto retry
`
	if got != want {
		t.Errorf("iPXE script:\n%s\nwant:\n%s", got, want)
	}
}

func TestSyslinuxCfg(t *testing.T) {
	want := "SERIAL 0 115200\nSAY nbdboot: starting iPXE\nDEFAULT ipxe\nPROMPT 0\nLABEL ipxe\n  KERNEL IPXE.KRN\n  INITRD NBDBOOT.IPX\n"
	if got := syslinuxCfg(); got != want {
		t.Errorf("syslinux.cfg = %q, want %q", got, want)
	}
}
