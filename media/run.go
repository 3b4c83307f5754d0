package media

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// tool runs an external program with SOURCE_DATE_EPOCH set to epoch (xorriso
// and mkfs.fat take their timestamps from it) and MTOOLS_SKIP_CHECK=1 (mtools
// would refuse images whose geometry it does not guess). Its output is
// shown only when it fails.
func tool(ctx context.Context, epoch time.Time, name string, args ...string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("%s: %w (run `make deps`: %s)", name, err, toolPackages[name])
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(),
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch.Unix()),
		"MTOOLS_SKIP_CHECK=1",
		"TZ=UTC",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// toolPackages are the Debian packages of the programs media runs.
var toolPackages = map[string]string{
	"xorriso":  "Debian package xorriso",
	"mkfs.fat": "Debian package dosfstools",
	"mcopy":    "Debian package mtools",
	"syslinux": "Debian package syslinux",
}
