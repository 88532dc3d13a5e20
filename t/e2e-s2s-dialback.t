#!/bin/bash
# e2e-s2s-dialback.t: federation through two xedges (issue 5). a.test on
# 127.0.0.11 and b.test on 127.0.0.12, each xedge in front of its own
# Prosody, with static routes to each other (--peer) and self-signed
# certificates (so no EXTERNAL: dialback). alice@a.test and bob@b.test
# message each other both ways; each direction is authenticated by exactly
# one dialback verification (the seed 002): the receiving xedge asks the
# sending domain's xedge, which answers db:verify valid.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/fed.sh"
# shellcheck disable=SC2153 # A_*, B_*, C_* are set by fed_ports, fed_sandbox

plan 10

PW="fed-$RANDOM-$RANDOM"
fed_init
fed_ports a
fed_ports b
fed_sandbox a a.test 127.0.0.11 --user "alice@a.test=$PW" --peer "b.test=127.0.0.12:$B_S2S"
fed_sandbox b b.test 127.0.0.12 --user "bob@b.test=$PW" --peer "a.test=127.0.0.11:$A_S2S"

fed_chat alice@a.test "$PW" "$A_XEDGE_C2S" "$A_CAFILE" bob@b.test "$PW" "$B_XEDGE_C2S" "$B_CAFILE"
is "$RC/$(result RESULT)" 0/ok "alice@a.test and bob@b.test message each other through two xedges"
like "$OUT" '^RECEIVED to=bob@b.test from=alice@a.test/' "a.test -> b.test arrived"
like "$OUT" '^RECEIVED to=alice@a.test from=bob@b.test/' "b.test -> a.test arrived"

# Each direction: the receiving xedge authenticates the sending domain with
# dialback (event=s2s-auth mech=dialback), after asking the sending
# domain's xedge, which answers one db:verify (event=s2s-verify result=valid).
sleep 0.5 # the log lines of the last steps
for d in a:b b:a; do
	recv=${d%%:*} send=${d#*:}
	rlog=$(v=${recv^^}_XEDGE_LOG; echo "${!v}")
	slog=$(v=${send^^}_XEDGE_LOG; echo "${!v}")
	is "$(count_lines "$rlog" "event=s2s-auth .*mech=dialback.*remote=$send\.test")" 1 \
		"$send.test -> $recv.test: $recv.test's xedge authenticated $send.test once, with dialback"
	is "$(count_lines "$slog" "event=s2s-verify .*remote=$recv\.test local=$send\.test result=valid")" 1 \
		"$send.test -> $recv.test: $send.test's xedge answered one db:verify, valid"
	is "$(count_lines "$slog" "event=s2s-out .*local=$send\.test remote=$recv\.test mech=dialback")" 1 \
		"$send.test -> $recv.test: $send.test's xedge has one outbound stream, authenticated with dialback"
done
n=$(cat "$A_XEDGE_LOG" "$B_XEDGE_LOG" | count_lines /dev/stdin 'event=s2s-auth-failed|event=s2s-verify .*result=invalid')
is "$n" 0 "no failed authentication or invalid verification on either side"
