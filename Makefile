# The two commands a fresh machine needs: `make demo` (the main job) and
# `make test` (every test). Both install what they need first.
GO      ?= go
BIN     := bin/collector
SSHD    := /usr/sbin/sshd

.PHONY: all build probes test vet demo deps clean

all: build

# deps installs OpenSSH's server (the tests and the demo start their own sshd
# on loopback) when it is missing. It needs root, as on CI.
deps:
	@if [ ! -x $(SSHD) ] || ! command -v ssh-keygen >/dev/null; then \
		echo "installing openssh-server and openssh-client"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; \
	fi

# probes cross-builds the static probe for every supported platform into
# collector/probebin/builds, where the collector embeds them.
probes:
	$(GO) generate ./collector/probebin

build: probes
	$(GO) build -o $(BIN) ./collector

vet:
	$(GO) vet ./...

test: deps probes vet
	$(GO) test ./...

demo: deps build
	./demo/demo.sh $(BIN)

clean:
	rm -rf bin collector/probebin/builds/probe-*
