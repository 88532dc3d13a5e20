#!/bin/bash
# t/lib/fed_ejabberd.sh: a plain ejabberd 23.01 (no xedge in front) as a
# federation peer for the tests, started as contrib/sandbox/xedge-sandbox
# starts its ejabberd backends (ejabberdctl foreground in its own session,
# Erlang distribution on loopback without epmd). s2s only, with STARTTLS,
# dialback (mod_s2s_dialback) and SASL EXTERNAL; mod_ping answers a ping
# to the domain (a round trip over federation, both ways).
#
#   t/lib/fed_ejabberd.sh start DIR --domain D --address A --s2s-port N
#       --dns ADDR:PORT --pem FILE --ca FILE [--starttls optional|required]
#   t/lib/fed_ejabberd.sh stop DIR
#
# --pem: its certificate and key in one file; --ca: the CAs it checks peers'
# certificates with (s2s_cafile). Erlang's resolver asks --dns only (an
# inetrc in DIR: ERL_INETRC); ejabberd resolves SRV targets through libc,
# so the test DNS server should give SRV records an IP literal as target.
# The Erlang distribution listens on A:N+1. start waits until the s2s port
# accepts and prints the PID of beam (also in DIR/pid; DIR/session: its
# session, which stop sends SIGTERM to as a process group). Logs:
# DIR/logs/ejabberd.log (and error.log: crashes), DIR/console.out.
set -u
prog=fed_ejabberd.sh
die() { echo "$prog: $*" >&2; exit 1; }

cmd_stop() {
	local dir=$1 sid pid
	[ -r "$dir/session" ] || die "no $dir/session"
	sid=$(cat "$dir/session")
	pid=$(cat "$dir/pid" 2>/dev/null)
	# only our ejabberd: the session's leader names DIR's configuration
	if [ -r "/proc/$sid/cmdline" ] && tr '\0' ' ' <"/proc/$sid/cmdline" | grep -qF -- "$dir"; then
		kill -TERM -- "-$sid" 2>/dev/null
	elif [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir"; then
		kill -TERM "$pid" 2>/dev/null
	fi
	for _ in $(seq 1 200); do
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	mv -f "$dir/session" "$dir/session.down"
}

cmd_start() {
	local dir=$1 domain="" addr="" port="" dns="" pem="" ca="" starttls=optional
	shift
	while [ $# -gt 0 ]; do
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--domain) domain=$2 ;;
		--address) addr=$2 ;;
		--s2s-port) port=$2 ;;
		--dns) dns=$2 ;;
		--pem) pem=$2 ;;
		--ca) ca=$2 ;;
		--starttls) starttls=$2 ;;
		*) die "unknown option $1" ;;
		esac
		shift 2
	done
	[ -n "$domain" ] && [ -n "$addr" ] && [ -n "$port" ] && [ -n "$dns" ] && [ -n "$pem" ] && [ -n "$ca" ] ||
		die "--domain, --address, --s2s-port, --dns, --pem and --ca are needed"
	local ejctl=${EJABBERDCTL:-ejabberdctl}
	command -v "$ejctl" >/dev/null || die "ejabberdctl not found (apt-get install ejabberd)"
	mkdir -p "$dir/spool" "$dir/logs" || die "mkdir $dir"
	dir=$(cd "$dir" && pwd)
	local node=xedge_fed_${port}@localhost dnsip=${dns%:*}
	cat >"$dir/ejabberd.yml" <<EOF
# written by t/lib/fed_ejabberd.sh: $domain, s2s on $addr:$port
loglevel: info
log_rotate_count: 0
hosts:
  - "$domain"
certfiles:
  - "$pem"
s2s_cafile: "$ca"
s2s_use_starttls: $starttls
s2s_dns_timeout: 5
s2s_dns_retries: 1
s2s_access: all
listen:
  -
    port: $port
    ip: "$addr"
    module: ejabberd_s2s_in
    max_stanza_size: 262144
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
modules:
  mod_disco: {}
  mod_ping: {}
  mod_s2s_dialback: {}
EOF
	cat >"$dir/ejabberdctl.cfg" <<EOF
# sourced by ejabberdctl (written by t/lib/fed_ejabberd.sh)
ERLANG_NODE=$node
ERL_DIST_PORT=$((port + 1))
INET_DIST_INTERFACE=$addr
ERL_OPTIONS="-setcookie xedge-fed-$(openssl rand -hex 8) -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_CONFIG_PATH=$dir/ejabberd.yml
EJABBERD_PID_PATH=$dir/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
EXEC_CMD=as_current_user
EOF
	# Erlang's resolver: the test DNS server only (resolv_conf "" first,
	# else the nameserver list comes out empty)
	cat >"$dir/inetrc" <<EOF
{resolv_conf, ""}.
{nameserver, {${dnsip//./,}}, ${dns##*:}}.
{lookup, [dns, file]}.
{host, {127,0,0,1}, ["localhost"]}.
EOF
	setsid "$ejctl" --config-dir "$dir" --ctl-config "$dir/ejabberdctl.cfg" \
		--spool "$dir/spool" --logs "$dir/logs" foreground </dev/null >"$dir/console.out" 2>&1 &
	local sid=$! beam="" end=$((SECONDS + 40))
	echo "$sid" >"$dir/session"
	while :; do
		[ -z "$beam" ] && beam=$(pgrep -s "$sid" -f "name $node" | head -n 1)
		if [ -n "$beam" ] && timeout 2 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null; then
			echo "$beam" >"$dir/pid"
			echo "$beam"
			return 0
		fi
		if ! kill -0 "$sid" 2>/dev/null || [ $SECONDS -ge $end ] ||
			grep -qE 'Failed to start|eaddrinuse' "$dir/console.out" 2>/dev/null; then
			tail -n 30 "$dir/console.out" "$dir/logs/ejabberd.log" >&2 2>/dev/null
			kill -TERM -- "-$sid" 2>/dev/null
			die "ejabberd for $domain did not start (s2s on $addr:$port)"
		fi
		sleep 0.1
	done
}

case ${1:-} in
start) [ $# -ge 2 ] || die "usage: $prog start DIR OPTIONS..."; shift; cmd_start "$@" ;;
stop) [ $# -eq 2 ] || die "usage: $prog stop DIR"; cmd_stop "$2" ;;
*) echo "usage: $prog start DIR OPTIONS... | stop DIR" >&2; exit 2 ;;
esac
