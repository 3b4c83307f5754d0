// Package vm boots the Debian kernel under qemu for the boot tests.
//
// Tests find the shared inputs through $NBDBOOT_BUILD (set by the
// Makefile): Kernel, Initramfs and Image fail the test under `make test`
// (NBDBOOT_STRICT=1) and skip it in a plain `go test` when they are not
// built. Start runs qemu with TCG (KVM does not work on these machines),
// the ELF vmlinux through its PVH entry, no option ROMs and no reboot, its
// serial console captured to a file and matched line by line:
//
//	m := vm.Start(t, vm.Options{
//		Cmdline: "nbdroot=10.0.2.100:10809/root ip=dhcp",
//		NICs:    []vm.NIC{{User: &vm.UserNet{Forwards: []vm.Forward{{Guest: "10.0.2.100:10809", Host: srv.Addr()}}}}},
//	})
//	m.ExpectLine(`NBDBOOT-ROOT-INIT ok`, 60*time.Second)
//	if code := m.WaitExit(30 * time.Second); code != 0 { ... }
//
// qemu's output stays out of the test log unless the test fails (or
// NBDBOOT_CONSOLE=1 streams it live). Cleanup kills qemu.
package vm
