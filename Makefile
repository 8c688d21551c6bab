# The two commands a fresh machine needs: `make demo` (the main job) and
# `make test` (every test). Both install what they need first.
GO      ?= go
BIN     := bin/collector
SSHD    := /usr/sbin/sshd
PREFIX  ?= /usr/local

.PHONY: all build probes test vet demo deps deps-ssh install clean bench

all: build

# deps-ssh installs, when missing, what the demo and the benchmark run for
# real: OpenSSH's server and client (they start their own sshd on loopback).
# deps adds what only the tests need: Chromium (the live page's test loads it
# headless), promtool (Debian's prometheus package: the alerting-rules
# example is checked and unit-tested with it) and systemd-analyze (the
# systemd unit is checked with it; openssh-server usually brings systemd
# along as a recommendation). They need root, as on CI.
deps-ssh:
	@$(call apt_install,$(if $(and $(wildcard $(SSHD)),$(shell command -v ssh-keygen)),,openssh-server openssh-client))

deps: deps-ssh
	@$(call apt_install,$(if $(shell command -v chromium),,chromium) $(if $(shell command -v promtool),,prometheus) $(if $(shell command -v systemd-analyze),,systemd))

# apt_install installs the packages named, if any.
apt_install = missing="$(strip $(1))"; \
	if [ -n "$$missing" ]; then \
		echo "installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# probes cross-builds the static probe for every supported platform into
# collector/probebin/builds, where the collector embeds them.
probes:
	$(GO) generate ./collector/probebin

build: probes
	$(GO) build -o $(BIN) ./collector

# install puts the collector, probes embedded, in $GOBIN when it is set, else
# in $(PREFIX)/bin (/usr/local/bin; make install PREFIX=~/.local for a user).
install: probes
	GOBIN="$(or $(GOBIN),$(abspath $(PREFIX))/bin)" $(GO) install ./collector
	@echo "shell completion: collector completion bash > /etc/bash_completion.d/collector (or zsh; see collector completion -h)"

# vet fails on unformatted files too.
vet:
	@unformatted="$$($$($(GO) env GOROOT)/bin/gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './collector/probebin/builds/*'))"; \
	if [ -n "$$unformatted" ]; then echo "not gofmt'ed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

test: deps probes vet
	$(GO) test ./...

demo: deps-ssh build
	./demo/demo.sh $(BIN)

# bench measures rounds of 1 to 500 servers against a loopback sshd, next to
# plain parallel ssh, and writes bench/results.md (a few minutes).
bench: deps-ssh
	$(GO) run ./bench/fleetbench -out bench/results.md

clean:
	rm -rf bin collector/probebin/builds/probe-*
