#!/bin/bash
# t/e2e-resolve.t: xedge's federation resolver (src/io/resolve.c: c-ares on
# libuv) against a real DNS server: dnsmasq on 127.0.0.1 at a free port,
# serving SRV, A and AAAA records from its command line. t/lib/resolve_probe
# runs the resolver on a loop and prints what it answers.
. "${XE_TOP_SRCDIR:-.}/t/lib/sandbox.sh"

PROBE="$XE_TOP_BUILDDIR/t/lib/resolve_probe"
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
[ -x "$DNSMASQ" ] || bail "dnsmasq not found (Debian: dnsmasq-base)"
[ -x "$PROBE" ] || bail "no $PROBE (make check builds it)"

XE_SANDBOX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xedge-resolve.XXXXXX") || bail "mktemp failed"
D=$XE_SANDBOX_DIR
chmod 755 "$D" # dnsmasq may drop its privileges before writing its pid file
XEDGE_PIDS=
cleanup() {
	local p
	for p in $(cat "$D/dnsmasq.pid" 2>/dev/null) ${SINK_PID:-}; do
		kill -TERM "$p" 2>/dev/null
	done
	_sandbox_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

udp_port_free() { ! ss -Huan "( sport = :$1 )" 2>/dev/null | grep -q .; }
PORT=
for _ in $(seq 1 50); do
	p=$((12000 + (RANDOM * 32768 + RANDOM) % 20000)) # below the ephemeral range
	udp_port_free "$p" && _port_free "$p" && { PORT=$p; break; }
done
[ -n "$PORT" ] || bail "no free port"

args=(--no-resolv --no-hosts --conf-file=/dev/null --keep-in-foreground
	--listen-address=127.0.0.1 --bind-interfaces --port="$PORT"
	--pid-file="$D/dnsmasq.pid" --user="$(id -un)" --local=/test/
	# priorities: hi (10) before lo (20); lo has an A and an AAAA (::1)
	--srv-host=_xmpp-server._tcp.prio.test,hi.prio.test,5269,10,0
	--srv-host=_xmpp-server._tcp.prio.test,lo.prio.test,5270,20,0
	--host-record=hi.prio.test,127.0.0.21
	--host-record=lo.prio.test,127.0.0.22,::1
	# weights within one priority: heavy 80, light 20
	--srv-host=_xmpp-server._tcp.w.test,heavy.w.test,5269,5,80
	--srv-host=_xmpp-server._tcp.w.test,light.w.test,5269,5,20
	--host-record=heavy.w.test,127.0.0.31
	--host-record=light.w.test,127.0.0.32
	# XEP-0368: direct TLS (priority 5) before STARTTLS (priority 10)
	--srv-host=_xmpps-server._tcp.mix.test,tls.mix.test,5223,5,0
	--srv-host=_xmpp-server._tcp.mix.test,tcp.mix.test,5269,10,0
	--host-record=tls.mix.test,127.0.0.41
	--host-record=tcp.mix.test,127.0.0.42
	# no SRV record: the domain's own A on the default port
	--host-record=plain.test,127.0.0.7
	# the service refused: a single target "."
	--srv-host=_xmpp-server._tcp.dot.test
	--host-record=dot.test,127.0.0.8)
# more SRV records than XE_RESOLVE_MAX_TARGETS (16), too many for 512 bytes
# of UDP: the answer is truncated and c-ares asks again over TCP
for i in $(seq 1 20); do
	args+=(--srv-host=_xmpp-server._tcp.many.test,m$i.many.test,5269,$i,0
		--host-record=m$i.many.test,127.0.1.$i)
done
"$DNSMASQ" "${args[@]}" >"$D/dnsmasq.out" 2>&1 &
for _ in $(seq 1 50); do [ -s "$D/dnsmasq.pid" ] && break; sleep 0.1; done
[ -s "$D/dnsmasq.pid" ] || bail "dnsmasq did not start: $(cat "$D/dnsmasq.out")"

S=127.0.0.1:$PORT
probe() { timeout 20 "$PROBE" -s "$S" "$@" 2>&1; }
for _ in $(seq 1 50); do
	probe plain.test | grep -q 'status=ok' && break
	sleep 0.1
done

plan 22

out=$(probe prio.test)
is "$(echo "$out" | grep -c '^target')" 3 "prio.test: three targets (hi's A, lo's AAAA and A)"
is "$(echo "$out" | grep '^target' | head -1)" \
	"target host=hi.prio.test addr=127.0.0.21 port=5269 tls=0" "SRV priority 10 first"
like "$(echo "$out" | grep '^target' | sed -n 2,3p | tr '\n' ' ')" \
	"host=lo.prio.test addr=::1 port=5270 tls=0.*host=lo.prio.test addr=127.0.0.22 port=5270" \
	"then priority 20: its AAAA (::1) and its A, on the SRV port"
is "$(echo "$out" | tail -1)" "loop-closed=1" "every handle closed after the resolver is freed"

out=$(probe -n 200 w.test)
heavy=$(echo "$out" | grep -A1 '^result' | grep -c 'host=heavy.w.test')
light=$(echo "$out" | grep -A1 '^result' | grep -c 'host=light.w.test')
is "$(echo "$out" | grep -c '^result.*status=ok n=2')" 200 "weights: 200 answers with both targets"
ok "$([ "$light" -gt 0 ] && [ "$heavy" -gt 0 ] && echo 0 || echo 1)" \
	"weights: each target comes first sometimes (heavy $heavy, light $light)"
ok "$([ "$heavy" -gt $((2 * light)) ] && echo 0 || echo 1)" \
	"weights: the heavier (80) first far more often than the lighter (20)"

out=$(probe mix.test)
is "$(echo "$out" | grep '^target' | tr '\n' ' ')" \
	"target host=tls.mix.test addr=127.0.0.41 port=5223 tls=1 target host=tcp.mix.test addr=127.0.0.42 port=5269 tls=0 " \
	"_xmpps-server and _xmpp-server merged by priority; direct TLS marked (XEP-0368)"

out=$(probe -p 5299 plain.test)
is "$(echo "$out" | grep '^target' | tr '\n' ' ')" \
	"target host=plain.test addr=127.0.0.7 port=5299 tls=0 " "no SRV: the domain's A on the default port"

out=$(probe dot.test)
like "$out" "status=nxdomain n=0" "a single SRV target \".\": refused (nxdomain), its A record not used"

out=$(probe nowhere.test)
like "$out" "status=nxdomain n=0" "no such domain: nxdomain"

out=$(probe many.test)
like "$out" "status=ok n=16" "twenty SRV targets (truncated UDP, then TCP): at most 16 targets"
is "$(echo "$out" | grep '^target' | head -1 | cut -d' ' -f2-3)" "host=m1.many.test addr=127.0.1.1" \
	"... the lowest priority first"
is "$(echo "$out" | grep '^target' | tail -1 | cut -d' ' -f2)" "host=m16.many.test" \
	"... and the sixteen best (the rest dropped)"

out=$(probe 'bad..name')
like "$out" "status=not-started" "a domain that is not a DNS name is refused at once"

# a server that never answers: a UDP socket nobody reads
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
time.sleep(60)' "$D/sink.port" &
SINK_PID=$!
for _ in $(seq 1 50); do [ -s "$D/sink.port" ] && break; sleep 0.1; done
[ -s "$D/sink.port" ] || bail "no silent UDP socket"
out=$(timeout 20 "$PROBE" -s "127.0.0.1:$(cat "$D/sink.port")" -t 1000 plain.test 2>&1)
like "$out" "status=timeout n=0" "a server that never answers: timeout"
ms=$(echo "$out" | sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p')
ok "$([ -n "$ms" ] && [ "$ms" -ge 900 ] && [ "$ms" -le 2500 ] && echo 0 || echo 1)" \
	"... after the request's deadline of 1 s (took ${ms:-?} ms)"
is "$(echo "$out" | tail -1)" "loop-closed=1" "... and c-ares' own queries end too (the loop ends)"

out=$(probe -t 5000 -P 1100 prio.test 2>/dev/null)
like "$(echo "$out" | tr '\n' ' ')" "started=1024 answers=1024 ok=1024 loop-closed=1" \
	"1100 requests at once: 1024 taken (XE_RESOLVE_MAX_REQUESTS), all answered (64 queries out at a time)"

out=$(probe -P 500 -f prio.test)
like "$(echo "$out" | tr '\n' ' ')" "started=500 callbacks=0 loop-closed=1" \
	"free with 500 requests outstanding (most of their queries queued): no callback, every handle closed"

out=$(probe -t 500 -c prio.test)
like "$(echo "$out" | tr '\n' ' ')" "cancelled pending=0 callbacks=0 loop-closed=1" \
	"cancel before the answer: no callback, ever"

out=$(probe -f prio.test)
like "$(echo "$out" | tr '\n' ' ')" "freed callbacks=0 loop-closed=1" \
	"free with a request outstanding: no callback, every handle closed"
