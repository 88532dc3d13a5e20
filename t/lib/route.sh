# t/lib/route.sh: sourced by the pool-routing tests (t/e2e-pool-route*.t,
# doc/pool-routing.md), after t/lib/sandbox.sh. One domain over the sandbox's
# three Prosody servers, prosody-0..2, with route = true.
#
#   homes_wrong CTL DOMAIN     the users of the test's lists ON0, ON1, ON2
#                              (homed on prosody-0, -1, -2 by the rendezvous
#                              hash) that `CTL user where USER@DOMAIN` puts on
#                              another server, as " user:home" each; nothing
#                              when every one is at home
#   stop_server DIR NAME LOG   stop the sandbox DIR's server NAME (by its pid,
#                              from DIR/pids) and wait, 10 s at most, until
#                              LOG (xedge's) says its routing link is down
# shellcheck shell=bash

homes_wrong() {
	local k v u h
	for k in 0 1 2; do
		v=ON$k
		for u in ${!v}; do
			h=$("$1" user where "$u@$2" | sed -n 's/^home: //p')
			[ "$h" = "prosody-$k" ] || printf ' %s:%s' "$u" "$h"
		done
	done
}

stop_server() {
	kill -TERM "$(awk -v n="$2" '$2 == n {print $1}' "$1/pids" | tail -n 1)"
	for _ in $(seq 1 100); do
		grep -q "event=route-link-down server=$2" "$3" && return 0
		sleep 0.1
	done
	return 1
}
