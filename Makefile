# nbdboot: `make demo` boots a diskless guest; `make test` runs every test.
SHELL := /bin/bash
BUILD ?= $(CURDIR)/build
GO ?= go
export NBDBOOT_BUILD := $(BUILD)

.PHONY: all deps build test unit fuzz e2e demo bench clean kernel images initramfs soak distro

all: build

deps:
	@scripts/deps.sh
	@$(GO) mod download

build:
	@mkdir -p $(BUILD)/bin
	@CGO_ENABLED=0 $(GO) build -trimpath -o $(BUILD)/bin/ ./cmd/...

# Every test: vet, unit and integration tests under -race, the fuzz targets
# briefly, then the qemu boots.
# Packages whose tests boot qemu guests run one at a time (-p 1) after the
# others: two cores do not carry several TCG guests and a race build at once.
VMPKGS := ./e2e ./internal/vm/... ./initramfs ./nbdnl
test: deps build kernel images initramfs distro
	@$(GO) vet ./...
	@NBDBOOT_STRICT=1 $(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v -e /e2e$$ -e /internal/vm -e /initramfs$$ -e /nbdnl$$)
	@NBDBOOT_STRICT=1 $(GO) test -race -timeout 25m -p 1 $(VMPKGS)
	@$(MAKE) --no-print-directory fuzz

# Boot test inputs, shared by every boot test through NBDBOOT_BUILD:
# build/kernel/{vmlinux,bzImage,version,root/lib/modules},
# build/kernel-bpo/ (the same for Debian's backports kernel, a second kernel
# that renames the NIC; only build/kernel-bpo/unavailable when the mirror
# has no backports), build/images/{root.ext4,root-part.img,root.squashfs},
# build/initramfs.cpio.gz (and initramfs-bpo.cpio.gz), build/distro/root
# (a Debian 12 systemd root). Each step is quiet and quick when up to date.
kernel: deps
	@scripts/fetch-kernel.sh $(BUILD)/kernel
	@scripts/fetch-kernel.sh $(BUILD)/kernel-bpo bookworm-backports

images: deps
	@scripts/mkimages.sh $(BUILD)/images

initramfs: kernel
	@$(GO) run ./cmd/nbdboot initramfs -o $(BUILD)/initramfs.cpio.gz -kmod $(BUILD)/kernel/root -cache $(BUILD)/cache -reuse
	@if [ -f $(BUILD)/kernel-bpo/version ]; then \
		$(GO) run ./cmd/nbdboot initramfs -o $(BUILD)/initramfs-bpo.cpio.gz -kmod $(BUILD)/kernel-bpo/root -cache $(BUILD)/cache -reuse; fi

distro: deps
	@scripts/mkdistro.sh $(BUILD)/distro

# Boots a diskless qemu guest from nbdserve on loopback, console live;
# exits 0 once the guest reached its root's init and powered off.
demo: deps build kernel images initramfs
	@scripts/demo.sh

# Longer crash and power-loss runs than make test's: SOAK_TRIALS kill -9
# trials of nbdserve (plain and copy-on-write exports, two connections
# each, FUA, WRITE_ZEROES, TRIM), the power-loss model on overlays and on
# file exports for SOAK_TIME each, then SOAK_VMRUNS guest runs on ext4
# over dm-log-writes, each log replayed to every Sync and between. Each
# prints its trials and violations; a failure prints the seed that
# reproduces it.
SOAK_TRIALS ?= 100
SOAK_TIME ?= 5m
SOAK_VMRUNS ?= 10
SOAKFILTER := grep -E -v '^=== (RUN|PAUSE|CONT)'
soak: deps build kernel
	@set -o pipefail; NBDSERVE_KILL9_TRIALS=$(SOAK_TRIALS) $(GO) test -count=1 -timeout 0 -v -run 'TestKill9Loop$$' ./cmd/nbdserve | $(SOAKFILTER)
	@set -o pipefail; POWERLOSS_TIME=$(SOAK_TIME) $(GO) test -count=1 -timeout 0 -v -run 'TestPowerLoss$$' ./cow | $(SOAKFILTER)
	@set -o pipefail; POWERLOSS_TIME=$(SOAK_TIME) $(GO) test -count=1 -timeout 0 -v -run 'TestPowerLossFileBackend$$' ./server | $(SOAKFILTER)
	@set -o pipefail; DMLOG_SEEDS=$(SOAK_VMRUNS) $(GO) test -count=1 -timeout 0 -v -run 'TestPowerCutReplay$$' ./internal/vm/dmlog | $(SOAKFILTER)

FUZZTIME ?= 5s
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

# Benchmarks (not tests): nbdserve against nbd-server, nbdkit and qemu-nbd.
BENCHFLAGS ?=
bench: deps build
	@$(GO) run ./bench -nbdserve $(BUILD)/bin/nbdserve $(BENCHFLAGS)

clean:
	rm -rf $(BUILD)
