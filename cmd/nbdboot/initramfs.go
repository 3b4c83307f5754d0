package main

import "errors"

// runInitramfs builds an initramfs image.
func runInitramfs(args []string) error { return errors.New("initramfs: not implemented yet") }
