#!/bin/bash
# e2e-jabberd2.t: xedge in front of a real jabberd2 2.7 (authreg pipe) with
# contrib/ejabberd's xedge-extauth as its glue (sandbox --backends jabberd2:1):
# slixmpp logs in through xedge, binds, messages another online user through
# jabberd2 and keeps a roster there; assertions sent straight to jabberd2's port
# are checked (t/lib/backend-auth-check.py): forged, expired and replayed
# ones are refused, and the glue logs why.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/legacy_backend.sh"

plan $LEGACY_BACKEND_PLAN
legacy_backend_tests jabberd2 c2s.out
