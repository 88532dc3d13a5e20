#!/bin/bash
# t/lib/fed_jabberd2.sh: a plain jabberd2 2.7 (no xedge in front) as a
# federation peer for the tests: its router, its session manager (sm) and
# its s2s, configured as contrib/sandbox/xedge-sandbox configures its
# jabberd2 backends. No c2s: its users are not needed, the sm's echo
# module (a message to DOMAIN/echo comes back to its sender) answers over
# federation.
#
#   t/lib/fed_jabberd2.sh start DIR --domain D --address A --s2s-port N
#       --dns ADDR:PORT [--pem FILE]
#   t/lib/fed_jabberd2.sh stop DIR
#   t/lib/fed_jabberd2.sh stop-s2s DIR      (its s2s only: its shutdown)
#
# start writes DIR/router.xml, sm.xml, s2s.xml (router on A:N+1), starts the
# three in the background (logs in DIR/logs/, stdout in DIR/*.out), waits
# until the s2s listens on A:N and the sm is ready, and prints the three
# PIDs on stdout ("ROUTER SM S2S"; also in DIR/pids). The s2s resolves
# other domains through udns, pointed at --dns (NSCACHEIP, RES_OPTIONS);
# it has no static route. --pem: a PEM file with its certificate and key:
# it then offers STARTTLS and speaks XMPP 1.0; without it, it opens and
# answers pre-1.0 dialback streams (no version). stop sends SIGTERM to the
# PIDs that DIR/pids lists (then SIGKILL after 10 s).
set -u
prog=fed_jabberd2.sh
die() { echo "$prog: $*" >&2; exit 1; }

sbin=${JABBERD2_SBIN:-/usr/sbin}
lib=${JABBERD2_LIBDIR:-/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)/jabberd2}

stop_pid() { # PID DIR: only a process whose command line names DIR
	local pid=$1 dir=$2
	[ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
	kill -KILL "$pid" 2>/dev/null
}

cmd_stop() {
	local dir=$1 p
	[ -r "$dir/pids" ] || die "no $dir/pids"
	# s2s first (its streams end with <system-shutdown/>), then sm, router
	for p in $(awk '{ print $3, $2, $1 }' "$dir/pids"); do stop_pid "$p" "$dir"; done
	mv -f "$dir/pids" "$dir/pids.down"
}

cmd_stop_s2s() {
	local dir=$1
	[ -r "$dir/pids" ] || die "no $dir/pids"
	stop_pid "$(awk '{ print $3 }' "$dir/pids")" "$dir"
}

cmd_start() {
	local dir=$1 domain="" addr="" port="" dns="" pem=""
	shift
	while [ $# -gt 0 ]; do
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--domain) domain=$2 ;;
		--address) addr=$2 ;;
		--s2s-port) port=$2 ;;
		--dns) dns=$2 ;;
		--pem) pem=$2 ;;
		*) die "unknown option $1" ;;
		esac
		shift 2
	done
	[ -n "$domain" ] && [ -n "$addr" ] && [ -n "$port" ] && [ -n "$dns" ] || die "--domain, --address, --s2s-port and --dns are needed"
	[ -x "$sbin/jabberd2-s2s" ] || die "$sbin/jabberd2-s2s not found (apt-get install jabberd2)"
	[ -z "$pem" ] || [ -r "$pem" ] || die "cannot read $pem"
	mkdir -p "$dir/db" "$dir/logs" || die "mkdir $dir"
	dir=$(cd "$dir" && pwd)
	local rport=$((port + 1)) rsecret
	rsecret=$(openssl rand -hex 16)
	(umask 077; printf '<users><user><name>jabberd</name><secret>%s</secret></user></users>\n' "$rsecret" >"$dir/router-users.xml")
	cat >"$dir/router.xml" <<EOF
<!-- written by t/lib/fed_jabberd2.sh -->
<router>
  <id>router</id>
  <pidfile>$dir/router.pid</pidfile>
  <log type='file'><ident>jabberd/router</ident><file>$dir/logs/router.log</file></log>
  <local><ip>$addr</ip><port>$rport</port><users>$dir/router-users.xml</users></local>
  <check><interval>60</interval><keepalive>0</keepalive></check>
  <io><max_fds>1024</max_fds><limits><bytes>0</bytes><connects>0</connects></limits>
    <access><order>allow,deny</order></access></io>
  <aci><acl type='all'><user>jabberd</user></acl></aci>
</router>
EOF
	local to_router="<router><ip>$addr</ip><port>$rport</port><user>jabberd</user><pass>$rsecret</pass>
    <retry><init>20</init><lost>3</lost><sleep>1</sleep></retry></router>"
	cat >"$dir/sm.xml" <<EOF
<!-- written by t/lib/fed_jabberd2.sh -->
<sm>
  <id>$domain</id>
  <pidfile>$dir/sm.pid</pidfile>
  $to_router
  <log type='file'><ident>jabberd/sm</ident><file>$dir/logs/sm.log</file></log>
  <local><id>$domain</id></local>
  <storage><path>$lib</path><driver>db</driver><db><path>$dir/db</path><sync/></db></storage>
  <modules>
    <path>$lib</path>
    <chain id='sess-start'><module>status</module></chain>
    <chain id='sess-end'><module>status</module></chain>
    <chain id='in-sess'><module>validate</module><module>status</module><module>roster</module>
      <module>iq-ping</module><module>disco</module><module>presence</module><module>deliver</module></chain>
    <chain id='out-sess'></chain>
    <chain id='in-router'><module>session</module><module>validate</module><module>presence</module></chain>
    <chain id='out-router'></chain>
    <chain id='pkt-sm'><module>iq-ping</module><module>iq-version</module><module>disco</module>
      <module>echo</module><module>status</module><module>presence</module></chain>
    <chain id='pkt-user'><module>roster</module><module>presence</module><module>disco</module>
      <module>deliver</module><module>offline</module></chain>
    <chain id='pkt-router'><module>session</module><module>disco</module></chain>
    <chain id='user-load'><module>active</module><module>roster</module></chain>
    <chain id='user-unload'></chain>
    <chain id='user-create'><module>active</module></chain>
    <chain id='user-delete'><module>active</module><module>roster</module></chain>
    <chain id='disco-extend'><module>iq-version</module></chain>
  </modules>
  <discovery><identity><category>server</category><type>im</type><name>jabberd2</name></identity></discovery>
  <user><auto-create/></user>
</sm>
EOF
	cat >"$dir/s2s.xml" <<EOF
<!-- written by t/lib/fed_jabberd2.sh: s2s of $domain on $addr:$port -->
<s2s>
  <id>s2s</id>
  <pidfile>$dir/s2s.pid</pidfile>
  $to_router
  <log type='file'><ident>jabberd/s2s</ident><file>$dir/logs/s2s.log</file></log>
  <local>
    <ip>$addr</ip>
    <port>$port</port>
    <secret>$(openssl rand -hex 16)</secret>${pem:+
    <pemfile>$pem</pemfile>}
  </local>
  <io><max_fds>1024</max_fds><limits><stanzasize>65535</stanzasize></limits></io>
  <check><interval>5</interval><queue>30</queue><retry>5</retry><idle>86400</idle>
    <keepalive>0</keepalive><dnscache>5</dnscache></check>
  <lookup><srv>xmpp-server</srv><min-ttl>1</min-ttl><max-ttl>5</max-ttl>
    <bad-host-timeout>1</bad-host-timeout></lookup>
</s2s>
EOF
	"$sbin/jabberd2-router" -c "$dir/router.xml" </dev/null >"$dir/router.out" 2>&1 &
	local rpid=$! end=$((SECONDS + 20))
	until timeout 2 bash -c "exec 3<>/dev/tcp/$addr/$rport" 2>/dev/null; do
		kill -0 "$rpid" 2>/dev/null && [ $SECONDS -lt $end ] ||
			{ cat "$dir/router.out" "$dir/logs/router.log" >&2 2>/dev/null; kill "$rpid" 2>/dev/null; die "router did not start on $addr:$rport"; }
		sleep 0.05
	done
	"$sbin/jabberd2-sm" -c "$dir/sm.xml" </dev/null >"$dir/sm.out" 2>&1 &
	local smpid=$!
	NSCACHEIP=${dns%:*} RES_OPTIONS=port:${dns##*:} \
		"$sbin/jabberd2-s2s" -c "$dir/s2s.xml" </dev/null >"$dir/s2s.out" 2>&1 &
	local spid=$!
	echo "$rpid $smpid $spid" >"$dir/pids"
	until timeout 2 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null &&
		grep -q "ready for sessions" "$dir/logs/sm.log" 2>/dev/null; do
		if ! kill -0 "$spid" 2>/dev/null || ! kill -0 "$smpid" 2>/dev/null || [ $SECONDS -ge $end ]; then
			tail -n 20 "$dir"/*.out "$dir"/logs/*.log >&2 2>/dev/null
			cmd_stop "$dir"
			die "jabberd2 for $domain did not start (s2s on $addr:$port)"
		fi
		sleep 0.05
	done
	# the s2s is the router's default route once it has bound
	until grep -q "ready for connections\|attached to router\|ready" "$dir/logs/s2s.log" 2>/dev/null; do
		[ $SECONDS -ge $end ] && break
		sleep 0.05
	done
	echo "$rpid $smpid $spid"
}

case ${1:-} in
start) [ $# -ge 2 ] || die "usage: $prog start DIR OPTIONS..."; shift; cmd_start "$@" ;;
stop) [ $# -eq 2 ] || die "usage: $prog stop DIR"; cmd_stop "$2" ;;
stop-s2s) [ $# -eq 2 ] || die "usage: $prog stop-s2s DIR"; cmd_stop_s2s "$2" ;;
*) echo "usage: $prog start DIR OPTIONS... | stop DIR | stop-s2s DIR" >&2; exit 2 ;;
esac
