#!/bin/bash
# t/extauth.t: contrib/ejabberd/xedge-extauth, the glue for ejabberd
# (external auth) and jabberd2 (pipe authreg), through its real protocols:
# every vector of doc/assertion-vectors.tsv is sent as an ejabberd
# "auth:User:Server:Password" frame and as a jabberd2 "CHECK-PASSWORD" line,
# and both the answer and the reason logged for a refusal must be the
# expected result; then replay, isuser/USER-EXISTS, the other operations,
# oversized and garbled requests, --domain, --allow-anonymous, and that
# neither the assertion nor the secret is ever logged. TAP output.
set -u

top=${XE_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${XE_TOP_BUILDDIR:-$top}
prog=$build/contrib/ejabberd/xedge-extauth
tsv=$top/doc/assertion-vectors.tsv
for f in "$prog" "$tsv"; do
	if [ ! -r "$f" ]; then echo "1..1"; echo "not ok 1 - missing $f"; exit 1; fi
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xedge-extauth.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 - "$prog" "$tsv" "$tmp" <<'PY'
import base64, hashlib, hmac, os, re, struct, subprocess, sys, time

prog, tsv, tmp = sys.argv[1:4]
results = []


def check(ok, name, diag=None):
    results.append((bool(ok), name, diag))


def write_secret(raw, name="secret"):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(raw)
    return path


def make_token(secret, purpose, identity, expiry, nonce=None):
    nonce = nonce or os.urandom(16).hex()
    msg = "\n".join(["xe1", purpose, identity, str(expiry), nonce]).encode()
    return "xe1:%s:%d:%s:%s" % (purpose, expiry, nonce, hmac.new(secret, msg, hashlib.sha256).hexdigest())


class Ej:
    """ejabberd extauth: 2-byte length + request; answer 00 02 00 0x."""
    proto = "ejabberd"

    def __init__(self, args):
        self.p = subprocess.Popen([prog, "--protocol", "ejabberd"] + args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def raw(self, data):
        self.p.stdin.write(struct.pack(">H", len(data)) + data)
        self.p.stdin.flush()
        r = self.p.stdout.read(4)
        if len(r) != 4 or r[:3] != b"\x00\x02\x00" or r[3] not in (0, 1):
            raise RuntimeError("bad answer %r" % r)
        return r[3] == 1

    def auth(self, user, server, password):
        return self.raw(("auth:%s:%s:%s" % (user, server, password)).encode())

    def isuser(self, user, server):
        return self.raw(("isuser:%s:%s" % (user, server)).encode())

    def finish(self):
        out, err = self.p.communicate(timeout=10)
        return self.p.returncode, err.decode("utf-8", "replace")


class Jd:
    """jabberd2 pipe: capability line, then one command per line, OK/NO."""
    proto = "jabberd2"

    def __init__(self, args):
        self.p = subprocess.Popen([prog, "--protocol", "jabberd2"] + args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.hello = self.p.stdout.readline().decode()

    def line(self, s):
        self.p.stdin.write(s if isinstance(s, bytes) else s.encode())
        self.p.stdin.flush()
        r = self.p.stdout.readline()
        if r not in (b"OK\n", b"NO\n"):
            raise RuntimeError("bad answer %r" % r)
        return r == b"OK\n"

    def auth(self, user, server, password):
        b64 = base64.b64encode(password.encode()).decode()
        return self.line("CHECK-PASSWORD %s %s %s\n" % (user, b64, server))

    def isuser(self, user, server):
        return self.line("USER-EXISTS %s %s\n" % (user, server))

    def finish(self):
        out, err = self.p.communicate(timeout=10)
        return self.p.returncode, err.decode("utf-8", "replace")


def events(err):
    return [l for l in err.splitlines() if "event=accepted" in l or "event=refused" in l]


# ---------------------------------------------------------------- the vectors
vectors = []
comment = None
with open(tsv, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        line = line.rstrip("\n")
        if line.startswith("#"):
            comment = line.lstrip("# ")
        elif line:
            f = line.split("\t")
            # an s2s pair ("PEER LOCAL") is no user@server: neither protocol
            # can carry it, and xedge-extauth checks logins (c2s) only
            if len(f) == 7 and f[1] == "s2s" and " " in f[2]:
                continue
            vectors.append((n, comment, f))
check(len(vectors) >= 20, "at least 20 vectors (found %d)" % len(vectors))
check({v[2][6] for v in vectors if len(v[2]) == 7} >=
      {"ok", "malformed", "wrong-purpose", "expired", "lifetime-too-long", "bad-signature"},
      "the vectors include every result")

for cls in (Ej, Jd):
    for n, comment, f in vectors:
        name = "%s: vector line %d: %s" % (cls.proto, n, comment)
        if len(f) != 7:
            check(False, name, "expected 7 fields, got %d" % len(f))
            continue
        secret_hex, purpose, identity, now, maxl, token, expected = f
        user, _, server = identity.rpartition("@")
        path = write_secret(bytes.fromhex(secret_hex))
        c = cls(["--secret-file", path, "--max-lifetime", maxl, "--now", now,
                 "--purpose", purpose, "--verbose"])
        try:
            got = c.auth(user, server, token)
            rc, err = c.finish()
        except Exception as e:  # noqa: BLE001 - reported as a failure
            check(False, name, "protocol error: %s" % e)
            continue
        ev = events(err)
        if expected == "ok":
            ok = got and len(ev) == 1 and "event=accepted" in ev[0]
        else:
            ok = (not got) and len(ev) == 1 and ev[0].endswith("reason=" + expected)
        check(ok and rc == 0, name, "expected %s; answer %s, exit %s, log %r" % (expected, got, rc, ev))
        if token and token in err:
            check(False, name + " (the token is not logged)")

# ---------------------------------------------------------------- behaviour
secret = os.urandom(32).hex().encode()
spath = write_secret(secret + b"\n", "live.secret")
now = int(time.time())
for cls in (Ej, Jd):
    P = cls.proto + ": "
    c = cls(["--secret-file", spath, "--domain", "example.test"])
    if cls is Jd:
        check(c.hello == "OK USER-EXISTS CHECK-PASSWORD SET-PASSWORD DELETE-USER FREE\n",
              P + "announces USER-EXISTS CHECK-PASSWORD SET-PASSWORD DELETE-USER FREE",
              repr(c.hello))
    good = make_token(secret, "c2s", "alice@example.test", now + 60)
    check(c.auth("alice", "example.test", good), P + "a fresh assertion is accepted")
    check(not c.auth("alice", "example.test", good), P + "the same assertion again is refused (replay)")
    check(c.auth("alice", "example.test", make_token(secret, "c2s", "alice@example.test", now + 60)),
          P + "another fresh one is accepted")
    check(not c.auth("bob", "example.test", make_token(secret, "c2s", "alice@example.test", now + 60)),
          P + "alice's assertion presented as bob is refused")
    check(not c.auth("alice", "example.test", make_token(secret, "c2s", "alice@example.test", now - 1)),
          P + "an expired one is refused")
    check(not c.auth("alice", "example.test", make_token(secret, "c2s", "alice@example.test", now + 600)),
          P + "one beyond the max lifetime (120 s) is refused")
    check(not c.auth("alice", "example.test", make_token(b"y" * 64, "c2s", "alice@example.test", now + 60)),
          P + "one signed with another secret is refused")
    check(not c.auth("alice", "other.test", make_token(secret, "c2s", "alice@other.test", now + 60)),
          P + "a domain not given with --domain is refused")
    anon = make_token(secret, "c2s-anonymous", "x1@example.test", now + 60)
    check(not c.auth("x1", "example.test", anon), P + "c2s-anonymous is refused without --allow-anonymous")
    check(not c.auth("alice", "example.test", "secret-password"), P + "a plain password is refused")
    check(not c.auth("alice", "example.test", ""), P + "an empty password is refused")
    check(c.isuser("alice", "example.test"), P + "isuser: a well-formed local user exists")
    check(c.isuser("j\u00fcrgen", "example.test"), P + "isuser: a UTF-8 localpart exists")
    check(not c.isuser("a/b", "example.test"), P + "isuser: a malformed localpart does not")
    check(not c.isuser("alice", "other.test"), P + "isuser: another domain does not")
    if cls is Ej:
        check(not c.raw(b"setpass:alice:example.test:pw"), P + "setpass is answered false")
        check(not c.raw(b"tryregister:alice:example.test:pw"), P + "tryregister is answered false")
        check(c.raw(b"removeuser:alice:example.test"), P + "removeuser of a local user is answered true (the purge)")
        check(not c.raw(b"removeuser:alice:other.test"), P + "removeuser of another domain is answered false")
        check(not c.raw(b"removeuser3:alice:example.test:pw"), P + "removeuser3 is answered false")
        check(not c.raw(b"isuser:alice:example.test:extra"), P + "isuser with a fourth field is false")
        check(not c.raw(b"auth:alice"), P + "a truncated request is false")
        check(not c.raw(b"auth:alice:example.test:" + b"x" * 3000), P + "a 3 kB request is refused")
        check(not c.raw(b"auth:alice:example.test:\x00" + good.encode()), P + "a NUL in a request is refused")
    else:
        check(not c.line("GET-PASSWORD alice example.test\n"), P + "GET-PASSWORD is answered NO")
        check(not c.line("SET-PASSWORD alice cHc= example.test\n"), P + "SET-PASSWORD is answered NO")
        check(not c.line("CREATE-USER alice example.test\n"), P + "CREATE-USER is answered NO")
        check(c.line("DELETE-USER alice example.test\n"), P + "DELETE-USER of a local user is answered OK (the purge)")
        check(not c.line("DELETE-USER alice other.test\n"), P + "DELETE-USER of another domain is answered NO")
        check(not c.line("CHECK-PASSWORD alice !!!! example.test\n"), P + "bad base64 is refused")
        check(not c.line("CHECK-PASSWORD alice " + "x" * 3000 + " example.test\n"), P + "a 3 kB line is refused")
    check(c.auth("alice", "example.test", make_token(secret, "c2s", "alice@example.test", now + 60)),
          P + "still in step after the refusals")
    if cls is Jd:
        c.p.stdin.write(b"FREE\n")
    rc, err = c.finish()
    check(rc == 0, P + "exits 0 at %s" % ("FREE" if cls is Jd else "end of input"), "exit %s" % rc)
    reasons = re.findall(r"event=refused .*reason=(\S+)", err)
    check(reasons[:6] == ["replayed", "bad-signature", "expired", "lifetime-too-long", "bad-signature", "bad-jid"],
          P + "refusals are logged with their reasons", repr(reasons))
    check(good not in err and secret.decode() not in err and "xe1:" not in err,
          P + "neither an assertion nor the secret is logged")

    c = cls(["--secret-file", spath, "--allow-anonymous"])
    check(c.auth("x1", "example.test", make_token(secret, "c2s-anonymous", "x1@example.test", now + 60)),
          P + "c2s-anonymous is accepted with --allow-anonymous")
    check(c.auth("alice", "example.test", make_token(secret, "c2s", "alice@example.test", now + 60)),
          P + "c2s still works with --allow-anonymous")
    c.finish()

# the replay cache: bounded (full = refuse), and it grows past its first table
for cls in (Ej, Jd):
    P = cls.proto + ": "
    c = cls(["--secret-file", spath, "--replay-cache-size", "3"])
    got = [c.auth("u%d" % i, "example.test", make_token(secret, "c2s", "u%d@example.test" % i, now + 60))
           for i in range(4)]
    rc, err = c.finish()
    check(got == [True, True, True, False] and "reason=replay-cache-full" in err,
          P + "--replay-cache-size 3: the 4th live assertion is refused (cache full)", repr(got))
    c = cls(["--secret-file", spath])
    toks = [make_token(secret, "c2s", "alice@example.test", now + 60) for _ in range(3000)]
    got = [c.auth("alice", "example.test", t) for t in toks]
    again = [c.auth("alice", "example.test", toks[i]) for i in (0, 1023, 2047, 2999)]
    c.finish()
    check(all(got) and not any(again), P + "3000 assertions accepted, each refused when replayed",
          "%d accepted, replays %r" % (sum(got), again))

short = write_secret(b"a" * 31 + b"\n", "short.secret")
p = subprocess.run([prog, "--secret-file", short], capture_output=True, timeout=10)
check(p.returncode == 1 and b"short.secret" in p.stderr and b"at least 32" in p.stderr,
      "a secret shorter than 32 bytes is refused, naming the file", p.stderr)
p = subprocess.run([prog], capture_output=True, timeout=10)
check(p.returncode == 2, "--secret-file is required (exit 2)", p.stderr)

print("1..%d" % len(results))
for i, (ok, name, diag) in enumerate(results, 1):
    print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
    if not ok and diag:
        print("# " + str(diag).replace("\n", "\n# "))
sys.exit(0 if all(r[0] for r in results) else 1)
PY
