package media

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// buildFloppy writes the floppy image to out.
func buildFloppy(ctx context.Context, c Config, tmp, out string) (*Result, error) {
	if err := needFile(c.Loaders.IPXE); err != nil {
		return nil, err
	}
	ins, err := hashInputs([][2]string{{"ipxe", c.Loaders.IPXE}})
	if err != nil {
		return nil, err
	}
	if ins[0].Size > FloppySize/2 {
		return nil, fmt.Errorf("iPXE %s: %d bytes do not fit a floppy beside SYSLINUX", c.Loaders.IPXE, ins[0].Size)
	}
	st := stage{dir: filepath.Join(tmp, "floppy"), epoch: c.Epoch}
	if err := st.copyFile(floppyIPXE, c.Loaders.IPXE); err != nil {
		return nil, err
	}
	script, urls := ipxeChain(c.ScriptURL), []string{c.ScriptURL}
	if !c.chains() {
		script, urls = ipxeScript(c.KernelURL, c.InitramfsURL, c.Cmdline), []string{c.KernelURL, c.InitramfsURL}
	}
	if err := st.writeFile(floppyScript, script); err != nil {
		return nil, err
	}
	if err := st.writeFile(floppyCfg, syslinuxCfg()); err != nil {
		return nil, err
	}
	if err := st.settle(); err != nil {
		return nil, err
	}
	ins = append(ins, Input{Name: "ipxe-script", Path: floppyScript, Size: int64(len(script)), SHA256: sha256Hex(script)})
	fat := fatImage{path: out, size: FloppySize, label: "NBDBOOT", serial: serial(c, ins, "floppy"), epoch: c.Epoch}
	if err := fat.make(ctx, st); err != nil {
		return nil, err
	}
	// SYSLINUX's installer writes its boot sector and ldlinux.sys and
	// ldlinux.c32 (the files get the current time, stamped over below).
	if err := tool(ctx, c.Epoch, "syslinux", "--install", out); err != nil {
		return nil, err
	}
	if err := fat.stamp(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != FloppySize {
		return nil, fmt.Errorf("floppy image %s: size changed by the installer (%v)", out, err)
	}
	return &Result{Inputs: ins, URLs: urls}, nil
}
