# The two commands a fresh machine needs: `make demo` (the main job) and
# `make test` (every test). Both install what they need first.
GO      ?= go
BIN     := bin/collector
SSHD    := /usr/sbin/sshd

.PHONY: all build probes test vet demo deps clean bench

all: build

# deps installs what the tests and the demo run for real when it is missing:
# OpenSSH's server and client (they start their own sshd on loopback) and
# Chromium (the live page's test loads it headless). It needs root, as on CI.
deps:
	@missing=""; \
	[ -x $(SSHD) ] && command -v ssh-keygen >/dev/null || missing="$$missing openssh-server openssh-client"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# probes cross-builds the static probe for every supported platform into
# collector/probebin/builds, where the collector embeds them.
probes:
	$(GO) generate ./collector/probebin

build: probes
	$(GO) build -o $(BIN) ./collector

# vet fails on unformatted files too.
vet:
	@unformatted="$$($$($(GO) env GOROOT)/bin/gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './collector/probebin/builds/*'))"; \
	if [ -n "$$unformatted" ]; then echo "not gofmt'ed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

test: deps probes vet
	$(GO) test ./...

demo: deps build
	./demo/demo.sh $(BIN)

# bench measures rounds of 1 to 500 servers against a loopback sshd, next to
# plain parallel ssh, and writes bench/results.md (a few minutes).
bench: deps
	$(GO) run ./bench/fleetbench -out bench/results.md

clean:
	rm -rf bin collector/probebin/builds/probe-*
