#!/bin/bash
# e2e-ejabberd.t: xedge in front of a real ejabberd 23.01 (auth_method: external) with
# contrib/ejabberd's xedge-extauth as its glue (sandbox --backends ejabberd:1):
# slixmpp logs in through xedge, binds, messages another online user through
# ejabberd and keeps a roster there; assertions sent straight to ejabberd's port
# are checked (t/lib/backend-auth-check.py): forged, expired and replayed
# ones are refused, and the glue logs why.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"
. "$XE_TOP_SRCDIR/t/lib/legacy_backend.sh"

plan $LEGACY_BACKEND_PLAN
legacy_backend_tests ejabberd console.out
