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
// Guests reach servers on this machine through qemu user networking
// (restrict=on, a socat relay per guest connection: reconnects and several
// connections work) or through tap devices in a network namespace the
// test creates (Options.NetNS runs qemu inside it). Monitor runs human
// monitor commands over QMP, e.g. "set_link net0 off".
//
// Lab helpers, for tests of guests on a network of their own:
//
//	lab := vm.NewLab(t, 2)                  // namespace, bridge br0 at 10.0.3.1/24, taps tap1, tap2
//	dns := vm.StartDnsmasq(t, lab, vm.DnsmasqConfig{RangeLo: "10.0.3.50", RangeHi: "10.0.3.59"})
//	ln, _ := lab.Listen("10.0.3.1:10809")   // a TCP listener inside the namespace
//	srv := vm.StartServer(t, vm.ServerConfig{Listener: ln, StateDir: dir, Exports: exports})
//	m := vm.Start(t, vm.Options{NetNS: lab.NS, NICs: []vm.NIC{{Tap: lab.Taps[0]}}, ...})
//	srv.WaitLog(vm.LogConnected, 1, time.Minute)
//
// Lab.Do runs any function inside the namespace (UDP sockets too);
// Lab.Command runs another program there. StartServer without a Listener
// serves on loopback (guests reach it through a user-network relay).
// LineLog collects a server's or a program's log for waits on its lines.
//
// qemu's output stays out of the test log unless the test fails (or
// NBDBOOT_CONSOLE=1 streams it live). Cleanup kills qemu; qemu also dies
// with the test process (Pdeathsig, tied to the starting OS thread: do not
// call Start from a goroutine that locked its thread and then exits).
package vm
