#!/usr/bin/env bash
# Makes payload.FORMAT: a small stand-in vmlinux ("\x7fELF" and 24 KiB of
# text) compressed the way the kernel build does (scripts/Makefile.lib,
# scripts/xz_wrap.sh), followed by the build's size word (size_append: the
# uncompressed length, 32-bit little-endian).
# Run in this directory: ./mkpayloads.sh
set -euo pipefail
elf=$(mktemp)
trap 'rm -f "$elf"' EXIT
{ printf '\177ELF'; for i in $(seq 1 1000); do printf 'vmlinux line %05d\n' "$i"; done; } >"$elf"
size=$(stat -c %s "$elf")
size_word() { printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((size & 255)) $((size >> 8 & 255)) $((size >> 16 & 255)) $((size >> 24 & 255)))"; }
compress() { # FORMAT COMMAND...
	local f=$1
	shift
	{ "$@" <"$elf"; size_word; } >"payload.$f"
}
compress gzip gzip -n -f -9
compress bzip2 bzip2 -9
compress lzma lzma -9
compress xz xz --check=crc32 --x86 --lzma2=dict=1MiB
compress lzo lzop -9
compress lz4 lz4 -l -9 - -
compress zstd zstd -22 --ultra -q
cp "$elf" payload.elf
