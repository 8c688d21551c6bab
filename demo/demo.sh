#!/usr/bin/env bash
# demo.sh COLLECTOR_BINARY: the main job, end to end, on this machine alone.
#
# Starts a throwaway OpenSSH server on loopback with its own host key and
# authorized key, writes an inventory of a few "servers" that all point at it
# (one directly, one through a jump host, one crawler box) plus the master
# itself, trusts the host key, probes them all with `collector once`, runs the
# daemon every 2 seconds into the embedded store while pretend crawlers ramp
# up (each holding its own memory and burning its own share of a CPU), shows
# what it stored and writes the peak report to ./report.html, whose headline
# says how many more crawlers fit and what limits them. About a minute and a
# half in all.
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
HostKey "$work/ssh/host_key"
AuthorizedKeysFile "${work//%/%%}/ssh/authorized_keys"
PidFile "$work/ssh/sshd.pid"
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

# A pretend crawler: holds MB of memory and keeps DUTY of one CPU busy, in
# slices of 100 ms (perl-base alone: no modules). Its command line starts
# python-crawler-N, so the keyword python counts it.
crawler_script='my ($mb, $duty) = @ARGV; my $held = "x" x ($mb << 20);
while (1) { my $u = (times)[0]; 1 while (times)[0] - $u < $duty * 0.1; select(undef, undef, undef, (1 - $duty) * 0.1) }'
crawlers=0
start_crawlers() { # start_crawlers N: N more crawlers, each a little heavier
	for _ in $(seq "$1"); do
		crawlers=$((crawlers + 1))
		mb=$((60 + 15 * crawlers))
		duty=$(printf '0.%02d' $((8 + 3 * (crawlers % 4))))
		bash -c "exec -a python-crawler-$crawlers perl -e '$crawler_script' $mb $duty" &
		pids+=($!)
	done
}

say "starting two pretend crawlers (their command lines say python; each holds memory and burns CPU)"
start_crawlers 2

cat >"$work/servers.toml" <<TOML
# A demo inventory: every SSH server here is the throwaway sshd.
[defaults]
user = "$(id -un)"
identity_file = "$work/ssh/client_key"
known_hosts = "$work/ssh/known_hosts"
probe_dir = "$work/probe-cache"
keywords = ["python"]
sample = "300ms"
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
# Every two seconds, for the demo; a real fleet uses "* * * * *".
cron = "@every 2s"
splay = "200ms"
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

say "collector run --rounds 30   (the daemon, every 2 s, into the embedded store) while the crawlers ramp from 2 to 12"
"$collector" run --rounds 30 &
run=$!
pids+=("$run")
for _ in 1 2 3 4 5; do
	sleep 9
	start_crawlers 2
	echo "  $crawlers pretend crawlers running"
done
wait "$run"

say "collector status   (what the store holds: latest snapshot, peaks with their process counts, failures)"
"$collector" status

say "collector alerts   (what fires now: with the crawlers busy, likely CPU, CPU pressure and load)"
"$collector" alerts

report="$(pwd)/report.html"
say "collector report --since 1h --keyword python --out $report   (the peak report; open it in a browser)"
"$collector" report --since 1h --keyword python --out "$report"

say "how many more crawlers fit (the report's headlines)"
"$collector" report --since 1h --keyword python --format json --out - |
	sed -n 's/^      "name": "\(.*\)",$/\1:/p; s/^          "headline": "\(.*\)",$/  \1/p'

say "done"
