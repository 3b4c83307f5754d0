// Package kmod loads Linux kernel modules the way modprobe does, from a
// module tree such as the initramfs's /lib/modules/$(uname -r).
//
// An Index holds what depmod wrote: modules.dep (each module's file and
// its hard dependencies), modules.softdep ("softdep ext4 pre: crc32c"),
// modules.alias (glob patterns matched against device modaliases and names
// like "crc32c") and modules.builtin (modules compiled into the kernel).
//
// A Loader resolves a name through the Index, loads soft pre-dependencies,
// hard dependencies in depmod's order, the module itself and its soft
// post-dependencies, each once, through an Inserter (finit_module(2) in
// production, a recorder in tests). LoadForDevices walks sysfs modalias
// files and loads the matching drivers, repeating the walk while new
// modules create new devices (virtio_pci exposes the virtio devices that
// virtio_net drives).
package kmod
