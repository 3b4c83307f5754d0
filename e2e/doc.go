// Package e2e holds the end-to-end boot tests: a real Debian kernel under
// qemu (-accel tcg) boots the nbdboot initramfs, which brings the network
// up, attaches its root over NBD from nbdserve running on the host's
// loopback (reached through a qemu guestfwd relay; nothing leaves the
// machine), mounts it and switches into it. The tests wait on console
// lines with deadlines and check the server's image after the guest
// powered off.
//
// The tests need `make kernel images initramfs` and find the results
// through NBDBOOT_BUILD (set by the Makefile; internal/vm reads it):
// without them they skip, and under NBDBOOT_STRICT=1 (make test) they
// fail. At most two guests run at once. The package has no non-test code
// but this comment; the tests log (never assert) the boot timings, which
// `go test -v` shows.
package e2e
