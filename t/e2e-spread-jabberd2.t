#!/bin/bash
# e2e-spread-jabberd2.t: t/e2e-spread.t with jabberd2 in the place of
# ejabberd (issue 4 asks for jabberd2 in a test of its own): 300 users over a
# sticky pool of two Prosody and one jabberd2 with weights 2:1:1, each on its
# weighted hash choice, the spread within 15%, the same choice from a second
# xedge process.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

KIND=jabberd2
. "$XE_TOP_SRCDIR/t/lib/spread.sh"
