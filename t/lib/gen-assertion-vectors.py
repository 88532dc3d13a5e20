#!/usr/bin/python3
"""Generate doc/assertion-vectors.tsv: the test vectors of the xedge identity
assertion (doc/assertion.md). Deterministic: no clock, no randomness.

usage: gen-assertion-vectors.py [OUTPUT]      (default: stdout)

Every vector is a call verify(secret, purpose, identity, token, now,
max_lifetime) and its expected result, one of: ok, malformed, wrong-purpose,
expired, lifetime-too-long, bad-signature.  Stdlib only (hmac, hashlib).
"""
import hashlib
import hmac
import sys

VERSION = "xe1"
NOW = 1700000000          # 2023-11-14T22:13:20Z
MAXL = 60


def make(secret, purpose, identity, expiry, nonce, version=VERSION):
    """The token, exactly per doc/assertion.md. expiry: the decimal string."""
    msg = "\n".join([version, purpose, identity, expiry, nonce]).encode("utf-8")
    mac = hmac.new(secret, msg, hashlib.sha256).hexdigest()
    return "%s:%s:%s:%s:%s" % (version, purpose, expiry, nonce, mac)


def nonce(label):
    """A fixed 16-byte nonce (32 lowercase hex chars), derived from a label."""
    return hashlib.sha256(b"xedge-vector-nonce:" + label.encode()).hexdigest()[:32]


# Secret A: what `openssl rand -hex 32` writes to a secret file (64 ASCII hex
# chars); the secret is those ASCII bytes, not their hex decoding.
SA = hashlib.sha256(b"xedge test secret A").hexdigest().encode("ascii")
# Secret B: another such file content.
SB = hashlib.sha256(b"xedge test secret B").hexdigest().encode("ascii")
# Secret C: 32 raw binary bytes including NUL and high bytes (length counts).
SC = bytes(range(0, 256, 8))
assert len(SA) == 64 and len(SB) == 64 and len(SC) == 32 and b"\0" in SC

ALICE = "alice@example.test"
BOB = "bob@example.test"
JUERGEN = "j\u00fcrgen@example.test"                       # UTF-8 localpart
DMITRY = "\u0434\u043c\u0438\u0442\u0440\u0438\u0439@example.test"  # Cyrillic
MEI = "\u6885@example.test"                                # CJK, 3-byte UTF-8


def flip_hex_digit(s, pos):
    """Change the hex digit at pos to another lowercase hex digit."""
    if pos < 0:
        pos += len(s)
    c = s[pos]
    assert c in "0123456789abcdef"
    n = "0" if c != "0" else "1"
    return s[:pos] + n + s[pos + 1:]


vectors = []  # (comment, secret, purpose, identity, now, maxl, token, expected)


def v(comment, secret, purpose, identity, now, maxl, token, expected):
    vectors.append((comment, secret, purpose, identity, now, maxl, token, expected))


E = str(NOW + MAXL)
# --- ok
v("ok: c2s, expiry exactly now+max_lifetime (the upper bound is inclusive)",
  SA, "c2s", ALICE, NOW, MAXL, make(SA, "c2s", ALICE, E, nonce("1")), "ok")
v("ok: c2s, other user, expiry now+30",
  SA, "c2s", BOB, NOW, MAXL, make(SA, "c2s", BOB, str(NOW + 30), nonce("2")), "ok")
v("ok: c2s, expiry now+1 (valid while now < expiry)",
  SA, "c2s", BOB, NOW, MAXL, make(SA, "c2s", BOB, str(NOW + 1), nonce("3")), "ok")
v("ok: c2s, UTF-8 localpart (Latin-1 range)",
  SA, "c2s", JUERGEN, NOW, MAXL, make(SA, "c2s", JUERGEN, str(NOW + 45), nonce("4")), "ok")
v("ok: c2s, UTF-8 localpart (Cyrillic)",
  SA, "c2s", DMITRY, NOW, MAXL, make(SA, "c2s", DMITRY, str(NOW + 10), nonce("5")), "ok")
v("ok: c2s, UTF-8 localpart (CJK)",
  SA, "c2s", MEI, NOW, MAXL, make(SA, "c2s", MEI, str(NOW + 20), nonce("6")), "ok")
v("ok: c2s, binary 32-byte secret containing NUL",
  SC, "c2s", ALICE, NOW, MAXL, make(SC, "c2s", ALICE, str(NOW + 5), nonce("7")), "ok")
v("ok: c2s, longer max_lifetime (300)",
  SB, "c2s", ALICE, NOW, 300, make(SB, "c2s", ALICE, str(NOW + 300), nonce("8")), "ok")
v("ok: s2s purpose checked as s2s (the verifier is purpose-generic)",
  SA, "s2s", "example.test", NOW, MAXL, make(SA, "s2s", "example.test", str(NOW + 30), nonce("9")), "ok")
v("ok: s2s, identity PEER SPACE LOCAL (doc/federation.md)",
  SA, "s2s", "b.test a.test", NOW, MAXL, make(SA, "s2s", "b.test a.test", str(NOW + 30), nonce("26")), "ok")

# --- expired
v("expired: now > expiry",
  SA, "c2s", ALICE, NOW, MAXL, make(SA, "c2s", ALICE, str(NOW - 1), nonce("10")), "expired")
v("expired: now == expiry (valid only while now < expiry)",
  SA, "c2s", ALICE, NOW, MAXL, make(SA, "c2s", ALICE, str(NOW), nonce("11")), "expired")
v("expired: long ago, and the mac is also bad (expiry is checked before the mac)",
  SA, "c2s", ALICE, NOW, MAXL,
  flip_hex_digit(make(SA, "c2s", ALICE, str(NOW - 3600), nonce("12")), -1), "expired")

# --- lifetime-too-long
v("lifetime-too-long: expiry - now = max_lifetime + 1",
  SA, "c2s", ALICE, NOW, MAXL, make(SA, "c2s", ALICE, str(NOW + MAXL + 1), nonce("13")), "lifetime-too-long")
v("lifetime-too-long: a year ahead, signed with another secret (checked before the mac)",
  SA, "c2s", ALICE, NOW, MAXL, make(SB, "c2s", ALICE, str(NOW + 31536000), nonce("14")), "lifetime-too-long")

# --- bad-signature
t = make(SA, "c2s", ALICE, E, nonce("15"))
v("bad-signature: last mac hex digit changed",
  SA, "c2s", ALICE, NOW, MAXL, flip_hex_digit(t, -1), "bad-signature")
v("bad-signature: first mac hex digit changed",
  SA, "c2s", ALICE, NOW, MAXL, flip_hex_digit(t, len(t) - 64), "bad-signature")
v("bad-signature: signed with another secret",
  SA, "c2s", ALICE, NOW, MAXL, make(SB, "c2s", ALICE, E, nonce("16")), "bad-signature")
v("bad-signature: token for bob checked for alice",
  SA, "c2s", ALICE, NOW, MAXL, make(SA, "c2s", BOB, E, nonce("17")), "bad-signature")
v("bad-signature: token for alice@other.test checked for alice@example.test",
  SA, "c2s", ALICE, NOW, MAXL, make(SA, "c2s", "alice@other.test", E, nonce("18")), "bad-signature")
v("bad-signature: nonce changed after signing",
  SA, "c2s", ALICE, NOW, MAXL, flip_hex_digit(t, len(t) - 65 - 1), "bad-signature")
t2 = make(SA, "c2s", ALICE, str(NOW + 30), nonce("19"))
v("bad-signature: expiry changed after signing (+30 -> +31)",
  SA, "c2s", ALICE, NOW, MAXL, t2.replace(":%d:" % (NOW + 30), ":%d:" % (NOW + 31)), "bad-signature")
v("bad-signature: s2s, peer and local swapped",
  SA, "s2s", "b.test a.test", NOW, MAXL, make(SA, "s2s", "a.test b.test", E, nonce("27")), "bad-signature")
v("bad-signature: s2s, token for another peer (c.test) checked for b.test",
  SA, "s2s", "b.test a.test", NOW, MAXL, make(SA, "s2s", "c.test a.test", E, nonce("28")), "bad-signature")
v("bad-signature: secret with the trailing newline left in (glue must strip it)",
  SA, "c2s", ALICE, NOW, MAXL, make(SA + b"\n", "c2s", ALICE, E, nonce("20")), "bad-signature")

# --- wrong-purpose
v("wrong-purpose: s2s token checked as c2s",
  SA, "c2s", ALICE, NOW, MAXL, make(SA, "s2s", ALICE, E, nonce("21")), "wrong-purpose")
v("wrong-purpose: c2s token checked as s2s",
  SA, "s2s", ALICE, NOW, MAXL, make(SA, "c2s", ALICE, E, nonce("22")), "wrong-purpose")
v("wrong-purpose: s2s token that is also expired (purpose is checked first)",
  SA, "c2s", ALICE, NOW, MAXL, make(SA, "s2s", ALICE, str(NOW - 10), nonce("23")), "wrong-purpose")

# --- malformed
g = make(SA, "c2s", ALICE, E, nonce("24"))
parts = g.split(":")
v("malformed: mac in upper-case hex (otherwise a valid token)",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:4] + [parts[4].upper()]), "malformed")
v("malformed: nonce in upper-case hex",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:3] + [parts[3].upper(), parts[4]]), "malformed")
v("malformed: missing field (no nonce)",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:3] + [parts[4]]), "malformed")
v("malformed: extra field at the end",
  SA, "c2s", ALICE, NOW, MAXL, g + ":00", "malformed")
v("malformed: trailing colon",
  SA, "c2s", ALICE, NOW, MAXL, g + ":", "malformed")
v("malformed: non-decimal expiry",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:2] + ["17000000x0"] + parts[3:]), "malformed")
v("malformed: signed expiry (+)",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:2] + ["+" + E] + parts[3:]), "malformed")
v("malformed: empty expiry",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:2] + [""] + parts[3:]), "malformed")
v("malformed: expiry of 21 digits",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:2] + ["1" * 21] + parts[3:]), "malformed")
v("malformed: nonce of 31 hex chars",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:3] + [parts[3][:31], parts[4]]), "malformed")
v("malformed: nonce of 34 hex chars",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:3] + [parts[3] + "00", parts[4]]), "malformed")
v("malformed: nonce with a non-hex char",
  SA, "c2s", ALICE, NOW, MAXL, ":".join(parts[:3] + ["g" + parts[3][1:], parts[4]]), "malformed")
v("malformed: mac of 63 hex chars",
  SA, "c2s", ALICE, NOW, MAXL, g[:-1], "malformed")
v("malformed: mac of 65 hex chars",
  SA, "c2s", ALICE, NOW, MAXL, g + "0", "malformed")
v("malformed: empty token",
  SA, "c2s", ALICE, NOW, MAXL, "", "malformed")
v("malformed: version tag xe2 (with a mac computed over xe2)",
  SA, "c2s", ALICE, NOW, MAXL,
  make(SA, "c2s", ALICE, E, nonce("25"), version="xe2"), "malformed")
v("malformed: version tag XE1",
  SA, "c2s", ALICE, NOW, MAXL, "XE1" + g[3:], "malformed")
v("malformed: leading space",
  SA, "c2s", ALICE, NOW, MAXL, " " + g, "malformed")


def main():
    out = open(sys.argv[1], "w", encoding="utf-8", newline="\n") if len(sys.argv) > 1 else sys.stdout
    w = out.write
    w("# xedge identity assertion test vectors (doc/assertion.md).\n")
    w("# Generated by t/lib/gen-assertion-vectors.py; do not edit by hand.\n")
    w("# Each data line is a call verify(secret, purpose, identity, token, now, max_lifetime)\n")
    w("# and its result. secret_hex: the secret bytes (after trailing white space is\n")
    w("# stripped from the file) in hex. identity: UTF-8. token: may be empty.\n")
    w("# Lines starting with '#' are comments; the line before each vector describes it.\n")
    w("#secret_hex\tpurpose\tidentity\tnow\tmax_lifetime\ttoken\texpected\n")
    for comment, secret, purpose, identity, now, maxl, token, expected in vectors:
        for f in (purpose, identity, token):
            assert "\t" not in f and "\n" not in f
        w("# %s\n" % comment)
        w("\t".join([secret.hex(), purpose, identity, str(now), str(maxl), token, expected]) + "\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
