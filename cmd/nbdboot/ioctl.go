package main

import (
	"context"
	"os"

	"github.com/nbdboot/nbdboot/boot"
)

// runKeeper holds an ioctl-attached root: this binary re-executed by PID 1
// as "@nbdboot ioctl-attach ... /dev/nbdN" with the sockets as fds 3 on.
func runKeeper(args []string) error {
	return boot.RunKeeper(context.Background(), args, os.Stdout)
}
