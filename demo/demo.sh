#!/usr/bin/env bash
# demo.sh COLLECTOR_BINARY: the main job, end to end, on this machine alone.
#
# Starts a throwaway OpenSSH server on loopback with its own host key and
# authorized key, writes an inventory of a few "servers" that all point at it
# (one directly, one through a jump host, one crawler box) plus the master
# itself, trusts the host key, probes them all with `collector once`, runs the
# daemon for a few rounds into the embedded store, shows what it stored and
# writes the peak report to ./report.html.
# Nothing outside a temporary directory is touched, ~/.ssh included.
set -euo pipefail

collector=$(realpath "${1:-bin/collector}")
work=$(mktemp -d -t collector-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# A free port on loopback.
for _ in $(seq 50); do
	port=$((20000 + RANDOM % 20000))
	(echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null || break
done

say "starting a throwaway sshd on 127.0.0.1:$port (files in $work)"
mkdir -p "$work/ssh" /run/sshd 2>/dev/null || mkdir -p "$work/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/client_key"
cp "$work/ssh/client_key.pub" "$work/ssh/authorized_keys"
cat >"$work/ssh/sshd_config" <<CONF
ListenAddress 127.0.0.1:$port
HostKey $work/ssh/host_key
AuthorizedKeysFile $work/ssh/authorized_keys
PidFile $work/ssh/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
CONF
/usr/sbin/sshd -D -e -f "$work/ssh/sshd_config" 2>"$work/ssh/sshd.log" &
pids+=($!)
for _ in $(seq 100); do
	(echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
	sleep 0.05
done

say "starting three pretend crawlers (their command lines say python)"
for i in 1 2 3; do
	bash -c "exec -a python-crawler-$i sleep 600" &
	pids+=($!)
done

cat >"$work/servers.toml" <<TOML
# A demo inventory: every SSH server here is the throwaway sshd.
[defaults]
user = "$(id -un)"
identity_file = "$work/ssh/client_key"
known_hosts = "$work/ssh/known_hosts"
probe_dir = "$work/probe-cache"
keywords = ["python"]
sample = "500ms"
timeout = "20s"

[[server]]
name = "web1"
address = "127.0.0.1:$port"
description = "the throwaway sshd, reached directly"

[[server]]
name = "crawler1"
address = "127.0.0.1"
port = $port
jump = "web1"
description = "the same sshd, reached through web1 as a jump host"
keywords = ["python", "sshd"]
tags = ["crawler"]

[[server]]
name = "master"
address = "local"
description = "the machine the collector runs on, without SSH"

[store]
# No uri: the embedded store (FerretDB on SQLite) in this directory.
data_dir = "$work/data"

[schedule]
# Every three seconds, for the demo; a real fleet uses "* * * * *".
cron = "*/3 * * * * *"
splay = "500ms"
TOML
export COLLECTOR_CONFIG="$work/servers.toml"
echo "inventory: $COLLECTOR_CONFIG"

say "collector trust --yes web1   (records the host key; nothing is accepted blindly)"
"$collector" trust --yes web1

say "collector once web1 crawler1 master"
"$collector" once web1 crawler1 master

say "collector once --json crawler1   (a second run: the probe is cached, nothing is uploaded)"
"$collector" once --json crawler1

say "collector check   (connect, auth, host key and probe for every server)"
"$collector" check

say "collector run --rounds 3   (the daemon: cron rounds over persistent connections into the embedded store)"
"$collector" run --rounds 3

say "collector status   (what the store holds: latest snapshot, peaks with their process counts, failures)"
"$collector" status

say "collector alerts   (what fires now: the demo's servers are idle, so likely nothing)"
"$collector" alerts

report="$(pwd)/report.html"
say "collector report --since 1h --out $report   (the peak report; open it in a browser)"
"$collector" report --since 1h --out "$report"

say "done"
