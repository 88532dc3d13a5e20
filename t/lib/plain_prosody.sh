#!/bin/bash
# t/lib/plain_prosody.sh: a plain, unproxied Prosody 0.12 (no xedge in front)
# for the federation tests: its own TLS, its own SASL, s2s with dialback.
#
#   t/lib/plain_prosody.sh start DIR --domain D --address A --c2s-port N
#       --s2s-port M --cert FILE --key FILE [--trust CAFILE]
#       [--dns ADDR:PORT] [--user NAME=PASSWORD]... [--secure-auth]
#       [--s2s-direct-tls-port P [--alpn]]
#   t/lib/plain_prosody.sh stop DIR
#
# start writes DIR/prosody.cfg.lua (c2s STARTTLS required on A:N, s2s on
# A:M with STARTTLS offered, s2s_secure_auth = false so that peers without
# a valid certificate use dialback; --secure-auth turns it on), registers
# the users (prosodyctl register, internal_plain storage), starts Prosody in
# the foreground (debug log DIR/prosody.log, console DIR/console.out), waits
# for both ports and prints "PID" on stdout; DIR/pid holds it too.
# --s2s-direct-tls-port: s2s Direct TLS (XEP-0368) on A:P as well
# (s2s_direct_tls_ports; Prosody's outgoing side asks _xmpps-server SRV
# first anyway). --alpn: P is instead a Direct TLS port of mod_net_multiplex
# (ssl_ports) which selects ALPN and routes "xmpp-server" to s2s (Prosody
# 0.12's own s2s_direct_tls port selects no ALPN); its debug log then says
# 'Routing incoming connection to ... based on ALPN "xmpp-server"'. --trust: the CA file Prosody checks peers' certificates with (default: the
# system's). --dns ADDR:PORT: Prosody's resolver (libunbound through
# lua-unbound) asks only that server (a forwarder, e.g. t/lib/dns.sh's
# dnsmasq), with the special-use "test." zone made transparent (libunbound
# answers NXDOMAIN for it by itself otherwise) and queries to loopback
# allowed; without it Prosody resolves as the system does.
# stop sends SIGTERM to DIR/pid (then SIGKILL after 10 s). Exit status 1 (and
# the end of the logs on stderr) if anything fails.
set -u
prog=plain_prosody.sh
die() { echo "$prog: $*" >&2; exit 1; }

cmd_stop() {
	local dir=$1 pid
	[ -r "$dir/pid" ] || die "no $dir/pid"
	pid=$(cat "$dir/pid")
	# only our Prosody: its command line names DIR's config
	if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/prosody.cfg.lua"; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	mv -f "$dir/pid" "$dir/pid.down"
	return 0
}

wait_port() { # HOST PORT PID CONSOLE
	local end=$((SECONDS + 30))
	while [ $SECONDS -lt $end ]; do
		timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		grep -q 'Failed to open server port' "$4" 2>/dev/null && return 1
		sleep 0.05
	done
	return 1
}

cmd_start() {
	local dir=$1
	shift
	local domain="" addr="" c2s="" s2s="" cert="" key="" trust="" dns="" secure=false users=() s2sd="" alpn=false
	while [ $# -gt 0 ]; do
		case $1 in
		--domain) domain=$2; shift 2 ;;
		--address) addr=$2; shift 2 ;;
		--c2s-port) c2s=$2; shift 2 ;;
		--s2s-port) s2s=$2; shift 2 ;;
		--s2s-direct-tls-port) s2sd=$2; shift 2 ;;
		--alpn) alpn=true; shift ;;
		--cert) cert=$2; shift 2 ;;
		--key) key=$2; shift 2 ;;
		--trust) trust=$2; shift 2 ;;
		--dns) dns=$2; shift 2 ;;
		--user) users+=("$2"); shift 2 ;;
		--secure-auth) secure=true; shift ;;
		*) die "unknown option $1" ;;
		esac
	done
	[ -n "$domain" ] && [ -n "$addr" ] && [ -n "$c2s" ] && [ -n "$s2s" ] && [ -n "$cert" ] && [ -n "$key" ] ||
		die "start needs --domain --address --c2s-port --s2s-port --cert --key"
	mkdir -p "$dir/data" "$dir/certs" || die "mkdir $dir"
	dir=$(cd "$dir" && pwd)
	cp "$cert" "$dir/certs/$domain.crt" && cp "$key" "$dir/certs/$domain.key" || die "copy cert/key"
	local unbound="" ssl_trust="" s2sd_ports=$s2sd mplex="" mplex_mod=""
	if $alpn && [ -n "$s2sd" ]; then
		s2sd_ports="" mplex="ssl_ports = { $s2sd }" mplex_mod=' "net_multiplex";'
	fi
	if [ -n "$dns" ]; then
		unbound="unbound = {
  resolvconf = false; hoststxt = false;
  forward = { \"${dns%:*}@${dns##*:}\" };
  options = { [\"do-not-query-localhost\"] = \"no\"; [\"local-zone\"] = \"test. transparent\" };
}"
	fi
	[ -n "$trust" ] && ssl_trust="ssl = { cafile = \"$trust\" }"
	cat >"$dir/prosody.cfg.lua" <<EOF
-- plain Prosody for $domain (t/lib/plain_prosody.sh): no xedge in front.
run_as_root = true
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
certificates = "$dir/certs"

interfaces = { "$addr" }
c2s_ports = { $c2s }
s2s_ports = { $s2s }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { $s2sd_ports }
$mplex
legacy_ssl_ports = { }

c2s_require_encryption = true
s2s_require_encryption = false
s2s_secure_auth = $secure
$ssl_trust
$unbound

log = {
  { levels = { min = "debug" }, to = "file", filename = "$dir/prosody.log" };
  { levels = { min = "info" }, to = "console" };
}
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix";$mplex_mod }
modules_disabled = { "offline" }
authentication = "internal_plain"
storage = "internal"

VirtualHost "$domain"
  ssl = { certificate = "$dir/certs/$domain.crt"; key = "$dir/certs/$domain.key"; }
EOF
	local u
	for u in "${users[@]}"; do
		prosodyctl --config "$dir/prosody.cfg.lua" register "${u%%=*}" "$domain" "${u#*=}" \
			>>"$dir/prosodyctl.out" 2>&1 || { cat "$dir/prosodyctl.out" >&2; die "register ${u%%=*}"; }
	done
	prosody -F --config "$dir/prosody.cfg.lua" </dev/null >"$dir/console.out" 2>&1 &
	local pid=$!
	echo "$pid" >"$dir/pid"
	if ! wait_port "$addr" "$c2s" "$pid" "$dir/console.out" || ! wait_port "$addr" "$s2s" "$pid" "$dir/console.out" ||
		{ [ -n "$s2sd" ] && ! wait_port "$addr" "$s2sd" "$pid" "$dir/console.out"; }; then
		tail -n 20 "$dir/console.out" "$dir/prosody.log" >&2 2>/dev/null
		cmd_stop "$dir" 2>/dev/null
		die "Prosody for $domain did not start on $addr:$c2s/$s2s"
	fi
	echo "$pid"
}

case ${1:-} in
start) [ $# -ge 2 ] || die "usage: $prog start DIR OPTIONS..."; d=$2; shift 2; cmd_start "$d" "$@" ;;
stop) [ $# -eq 2 ] || die "usage: $prog stop DIR"; cmd_stop "$2" ;;
*) echo "usage: $prog start DIR OPTIONS... | stop DIR" >&2; exit 2 ;;
esac
