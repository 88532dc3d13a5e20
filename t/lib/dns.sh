#!/bin/bash
# t/lib/dns.sh: a small authoritative DNS server for the federation tests
# (Debian's dnsmasq-base, the binary only: no service, no system resolver).
#
#   t/lib/dns.sh start DIR ADDR PORT RECORD...
#   t/lib/dns.sh stop DIR
#
# RECORD is one of
#   srv:DOMAIN=TARGET:PORT   _xmpp-server._tcp.DOMAIN SRV 0 0 PORT TARGET
#   srvs:DOMAIN=TARGET:PORT  _xmpps-server._tcp.DOMAIN SRV 0 0 PORT TARGET (XEP-0368)
#   a:NAME=ADDR              NAME A ADDR (or AAAA for an IPv6 ADDR)
#   --any-dnsmasq-option     passed as it is (e.g. --srv-host=...)
# start runs dnsmasq on ADDR:PORT (UDP and TCP) answering only from these
# records (every other name under "test." is NXDOMAIN; nothing is forwarded),
# in the foreground of a background job, its queries logged to
# DIR/dnsmasq.log; waits until it answers and prints its PID (also in
# DIR/dnsmasq.pid). stop sends it SIGTERM by that PID.
set -u
prog=dns.sh
die() { echo "$prog: $*" >&2; exit 1; }

cmd_stop() {
	local dir=$1 pid
	[ -r "$dir/dnsmasq.pid" ] || die "no $dir/dnsmasq.pid"
	pid=$(cat "$dir/dnsmasq.pid")
	if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/dnsmasq.pid"; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	fi
	mv -f "$dir/dnsmasq.pid" "$dir/dnsmasq.pid.down"
	return 0
}

cmd_start() {
	local dir=$1 addr=$2 port=$3 r name val
	shift 3
	local opts=()
	for r in "$@"; do
		case $r in
		srv:*=*:*)
			name=${r#srv:}; val=${name#*=}; name=${name%%=*}
			opts+=("--srv-host=_xmpp-server._tcp.$name,${val%:*},${val##*:}") ;;
		srvs:*=*:*)
			name=${r#srvs:}; val=${name#*=}; name=${name%%=*}
			opts+=("--srv-host=_xmpps-server._tcp.$name,${val%:*},${val##*:}") ;;
		a:*=*)
			name=${r#a:}; val=${name#*=}; name=${name%%=*}
			opts+=("--host-record=$name,$val") ;;
		--*) opts+=("$r") ;;
		*) die "bad record: $r" ;;
		esac
	done
	command -v dnsmasq >/dev/null || die "dnsmasq not found (apt-get install dnsmasq-base)"
	mkdir -p "$dir" || die "mkdir $dir"
	dir=$(cd "$dir" && pwd)
	rm -f "$dir/dnsmasq.pid"
	# dnsmasq runs as we do (--user), not as nobody (who could not write
	# to a private test directory)
	dnsmasq --no-resolv --no-hosts --conf-file=/dev/null --keep-in-foreground \
		--pid-file="$dir/dnsmasq.pid" --user="$(id -un)" --listen-address="$addr" --bind-interfaces --port="$port" \
		--local=/test/ --log-queries --log-facility="$dir/dnsmasq.log" "${opts[@]}" \
		</dev/null >"$dir/dnsmasq.out" 2>&1 &
	local job=$! end=$((SECONDS + 10))
	# ready when it has written its pid file and listens on the TCP port
	while [ $SECONDS -lt $end ]; do
		if [ -s "$dir/dnsmasq.pid" ] && timeout 2 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null; then
			cat "$dir/dnsmasq.pid"
			return 0
		fi
		kill -0 "$job" 2>/dev/null || break
		sleep 0.05
	done
	cat "$dir/dnsmasq.out" "$dir/dnsmasq.log" >&2
	kill -TERM "$job" 2>/dev/null
	die "dnsmasq did not start on $addr:$port"
}

case ${1:-} in
start) [ $# -ge 4 ] || die "usage: $prog start DIR ADDR PORT RECORD..."; shift; cmd_start "$@" ;;
stop) [ $# -eq 2 ] || die "usage: $prog stop DIR"; cmd_stop "$2" ;;
*) echo "usage: $prog start DIR ADDR PORT RECORD... | stop DIR" >&2; exit 2 ;;
esac
