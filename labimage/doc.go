// Package labimage turns a root directory (a debootstrap, a chroot the
// administrator maintains, a mounted golden install) into a filesystem
// image that boots as a diskless seat with nbdboot, the LTSP-like way:
// one image, served read-only under overlays or copy-on-write per client.
//
// The directory is never modified: Build clones it next to the output
// (hard links, so it costs only the directories; a full copy where links
// cannot be made), edits the clone by replacing files (a new file renamed
// over the link, so the original's inode is untouched), makes the image
// from the clone (mkfs.ext4 -d or mksquashfs) and removes the clone. The
// image is written beside its final name and renamed into place, so a
// server that has the previous version open keeps serving it (see
// README: updating the image while the room runs).
//
// What Prepare changes, each reported as a Change:
//   - /etc/fstab: no local disk, no swap (the root is mounted by nbdboot);
//   - the boot interface is left to nbdboot: a unit marks it unmanaged for
//     NetworkManager and systemd-networkd at every boot (by MAC address,
//     so a udev rename changes nothing), and ifupdown's stanzas for
//     physical interfaces are commented out;
//   - /etc/hostname emptied and its /etc/hosts line dropped, so each
//     machine keeps the name DHCP gave it;
//   - /etc/machine-id emptied (systemd makes one per boot; a writable
//     per-client root commits it), /var/lib/dbus/machine-id linked to it;
//   - swap off: swap.target masked;
//   - apt's daily timers masked: updates come with a new image.
package labimage
