// Command nbdboot boots a diskless machine with its root filesystem on NBD.
//
// As PID 1 in the initramfs it is the init: it brings the network up,
// attaches the root device, mounts it and switches into it. Otherwise it is
// the administrator's tool:
//
//	nbdboot initramfs -o FILE -kmod DIR [-add-modules m1,m2] [-compress gzip|zstd|none]
//	nbdboot attach [-connections N] [-timeout D] [-deadconn D] nbd://HOST[:PORT]/EXPORT [/dev/nbdN]
//	nbdboot detach /dev/nbdN
//	nbdboot list [nbd://HOST[:PORT]]
//	nbdboot image -o FILE [-format ext4|squashfs] [-size S] DIR
//	nbdboot media usb|iso|floppy -o FILE [-kernel K] [-initramfs I] -cmdline "..."
package main

import (
	"fmt"
	"os"

	"github.com/nbdboot/nbdboot/boot"
)

const usage = `usage:
  nbdboot initramfs -o FILE -kmod DIR [-add-modules m1,m2] [-compress gzip|zstd|none]
  nbdboot attach [-connections N] [-timeout D] [-deadconn D] nbd://HOST[:PORT]/EXPORT [/dev/nbdN]
  nbdboot detach /dev/nbdN
  nbdboot list [nbd://HOST[:PORT]]   (a server's exports, or the local nbd devices)
  nbdboot image -o FILE [-format ext4|squashfs] [-size S] DIR   (a root directory as a lab image)
  nbdboot media usb|iso|floppy -o FILE [-kernel K] [-initramfs I] -cmdline "..."   (boot media)

Run "nbdboot COMMAND -h" for a command's flags.
`

func main() {
	if err := run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "nbdboot: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if os.Getpid() == 1 {
		return runInit(args)
	}
	if len(args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command given")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "initramfs":
		return runInitramfs(rest)
	case "attach":
		return runAttach(rest)
	case "detach":
		return runDetach(rest)
	case "list":
		return runList(rest)
	case "media":
		return runMedia(rest)
	case "image":
		return runImage(rest)
	case boot.SupervisorMode: // "@nbdboot supervise STATE", started by PID 1
		return runSupervise(rest)
	case boot.KeeperMode: // "@nbdboot ioctl-attach ... /dev/nbdN", started by PID 1
		return runKeeper(rest)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
