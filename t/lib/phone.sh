# shellcheck shell=bash disable=SC2034 # OUT, RC, RESULT are for the tests that source this
# t/lib/phone.sh: sourced by t/e2e-phone-*.t after t/lib/sandbox.sh.
#
# phone SCENARIO [ARGS...]: t/lib/phone_day.py through the sandbox's xedge
# (STARTTLS port, its CA) as PHONE_JID with PHONE_FRIEND as the other party;
# sets OUT, RC and RESULT and shows the output as diag, like client().
phone() {
	OUT=$(timeout -k 2 100 "$PY" "$XE_TOP_SRCDIR/t/lib/phone_day.py" --server "$XEDGE_C2S" \
		--cafile "$XEDGE_CERT" --jid "$PHONE_JID" --password "$PHONE_PW" \
		--friend "$PHONE_FRIEND" --friend-password "$PHONE_PW" "$@" 2>"$XE_SANDBOX_DIR/phone.err")
	RC=$?
	RESULT=$(printf '%s\n' "$OUT" | grep '^RESULT=' | tail -n 1)
	diag "phone_day.py $*" "$(printf '%s\n' "$OUT" | sed 's/^/  /')"
	if [ -s "$XE_SANDBOX_DIR/phone.err" ]; then
		diag "  stderr:" "$(tail -n 20 "$XE_SANDBOX_DIR/phone.err" | sed 's/^/    /')"
	fi
	return 0
}

# offers: the OFFERS line of the last phone run (features scenario)
offers() { printf '%s\n' "$OUT" | sed -n 's/^OFFERS //p'; }
