package bootcfg_test

import (
	"fmt"

	"github.com/nbdboot/nbdboot/bootcfg"
)

func ExampleParse() {
	c, err := bootcfg.Parse(`console=ttyS0 root=/dev/nbd0p1 nbdroot=nbd:10.0.2.2:10809/debian:ext4 ip=dhcp nbdboot.connections=4 nbdboot.timeot=5 rd.break=later`)
	fmt.Println(err)
	fmt.Println(c.NBD.Servers[0], c.NBD.Export, c.RootDevice, c.Connections)
	// Output:
	// nbdboot.timeot=5: unknown nbdboot option "nbdboot.timeot"; known: nbdboot.connections, .timeout, .deadconn, .retry, .debug, .shell, .break, .overlay, .attach, .clientid, .modules
	// rd.break=later: expected no value or one of pre-mount, mount, pre-pivot
	// 10.0.2.2:10809 debian /dev/nbd0p1 4
}

func ExampleParseNBDRoot() {
	// The init parses the DHCP root-path when the command line said nbdroot=dhcp.
	t, err := bootcfg.ParseNBDRoot("nbd://[fd00::1]:10809,10.0.2.2/lab%20image")
	fmt.Println(t.Servers, t.Export, err)
	_, err = bootcfg.ParseNBDRoot("nbds://srv/x")
	fmt.Println(err)
	// Output:
	// [[fd00::1]:10809 10.0.2.2:10809] lab image <nil>
	// TLS not supported yet (nbds://); use nbd://
}
