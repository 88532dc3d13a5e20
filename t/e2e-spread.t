#!/bin/bash
# e2e-spread.t: 300 users over a sticky pool of two Prosody and one ejabberd
# with weights 2:1:1. Each lands on its weighted hash choice (computed here
# independently from the documented formula), the spread follows the
# weights within 15%, and a second xedge process sharing the configuration
# sends the same users to the same servers.
. "${XE_TOP_SRCDIR:-$(dirname "$0")/..}/t/lib/sandbox.sh"

KIND=ejabberd
. "$XE_TOP_SRCDIR/t/lib/spread.sh"
