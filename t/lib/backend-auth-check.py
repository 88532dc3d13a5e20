#!/usr/bin/python3
"""backend-auth-check.py: log in to a backend behind xedge the way xedge does,
with an identity assertion (doc/assertion.md) as the SASL PLAIN password, and
check that the backend glue accepts good assertions and refuses bad ones.

usage:
  backend-auth-check.py --sandbox DIR [--backend K|NAME] [--user LOCALPART]
  backend-auth-check.py --host H --port P --domain D --secret-file F [--user LOCALPART]

With --sandbox, H:P, D and F come from DIR/sandbox.env (written by
contrib/sandbox/xedge-sandbox up; XEDGE_SANDBOX_BACKENDS_ONLY=1 starts the
backends alone). Stdlib only, plaintext stream (the backend's c2s port).

Checks (TAP output, exit 1 if any fails):
  - the backend offers PLAIN (and only PLAIN);
  - a fresh valid assertion -> <success/>, then resource binding gives
    LOCALPART@D/...;
  - the same assertion again (replay) -> <failure/>;
  - a one-digit-changed mac -> <failure/>;
  - an expired assertion -> <failure/>;
  - an assertion for another user -> <failure/>;
  - one signed with another secret -> <failure/>;
  - an s2s assertion -> <failure/>;
  - a valid one whose lifetime exceeds 120 s (the sandbox's max) -> <failure/>;
  - a second fresh one -> <success/> (the glue still works after refusals).

--direct: the same checks through the direct login of mod_auth_xedge
(doc/assertion.md, "Direct login"): the backend offers <auth
xmlns='urn:xedge:auth:0'/>; <auth user='LOCALPART'>TOKEN</auth> gets
<success/> and then, on the same stream with no restart, the features of the
authenticated session (bind); refusals are <failure><not-authorized/>.
"""
import argparse
import base64
import hashlib
import hmac
import os
import re
import socket
import sys
import time

VERSION = "xe1"


def read_secret(path):
    with open(path, "rb") as f:
        data = f.read()
    secret = data.rstrip(b"\r\n \t")
    if len(secret) < 32:
        raise SystemExit("secret in %s is %d bytes, at least 32 are required" % (path, len(secret)))
    return secret


def make_token(secret, purpose, identity, expiry, nonce=None):
    nonce = nonce or os.urandom(16).hex()
    expiry = str(expiry)
    msg = "\n".join([VERSION, purpose, identity, expiry, nonce]).encode("utf-8")
    mac = hmac.new(secret, msg, hashlib.sha256).hexdigest()
    return "%s:%s:%s:%s:%s" % (VERSION, purpose, expiry, nonce, mac)


class Stream:
    def __init__(self, host, port, domain, timeout=5.0):
        self.domain = domain
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.deadline_s = timeout

    def send(self, data):
        self.s.sendall(data.encode("utf-8") if isinstance(data, str) else data)

    def read_until(self, pattern):
        end = time.time() + self.deadline_s
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out.decode("utf-8", "replace")
            left = end - time.time()
            if left <= 0:
                raise TimeoutError("timeout waiting for %r; got %r" % (pattern, self.buf[-300:]))
            self.s.settimeout(left)
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("connection closed while waiting for %r; got %r" % (pattern, self.buf[-300:]))
            self.buf += d

    def open(self):
        self.send("<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" % self.domain)
        return self.read_until(rb"</stream:features>|<stream:features/>")

    def auth_plain(self, authcid, password, authzid=""):
        msg = ("%s\0%s\0%s" % (authzid, authcid, password)).encode("utf-8")
        self.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                  % base64.b64encode(msg).decode())
        return self.read_until(rb"<success[^>]*/>|<success.*?</success>|<failure.*?</failure>|<failure[^>]*/>")

    def auth_direct(self, user, token):
        self.send("<auth xmlns='urn:xedge:auth:0' user='%s'>%s</auth>"
                  % (user.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;"),
                     token.replace("&", "&amp;").replace("<", "&lt;")))
        return self.read_until(rb"<success[^>]*/>|<success.*?</success>|<failure.*?</failure>|<failure[^>]*/>")

    def close(self, settle=False):
        try:
            self.send("</stream:stream>")
            if settle:
                # wait for the server to close its side, then a little more:
                # jabberd2 2.7's c2s keys sessions by file descriptor, and a
                # late routing reply for a session that just ended kills the
                # next connection that gets the same descriptor
                # (internal-server-error); see contrib/jabberd2/README.md
                end = time.time() + 2
                while time.time() < end:
                    self.s.settimeout(max(0.01, end - time.time()))
                    if not self.s.recv(65536):
                        break
                time.sleep(0.3)
            self.s.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sandbox")
    ap.add_argument("--backend", default="0", help="index or name (e.g. ejabberd-0)")
    ap.add_argument("--host")
    ap.add_argument("--port", type=int)
    ap.add_argument("--domain")
    ap.add_argument("--secret-file")
    ap.add_argument("--user", default="alice")
    ap.add_argument("--max-lifetime", type=int, default=120)
    ap.add_argument("--direct", action="store_true",
                    help="the direct login (urn:xedge:auth:0) instead of SASL PLAIN")
    a = ap.parse_args()
    if a.sandbox:
        env = {}
        with open(os.path.join(a.sandbox, "sandbox.env"), encoding="utf-8") as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                env[k] = v
        # XEDGE_BACKENDS: NAME=host:port,... (older sandboxes: host:port,...)
        entries = [e.partition("=")[2] or e for e in env["XEDGE_BACKENDS"].split(",")]
        names = [e.partition("=")[0] for e in env["XEDGE_BACKENDS"].split(",")]
        if a.backend.isdigit():
            hp = entries[int(a.backend)]
        elif a.backend in names:
            hp = entries[names.index(a.backend)]
        else:
            ap.error("no backend %r in XEDGE_BACKENDS=%s" % (a.backend, env["XEDGE_BACKENDS"]))
        host, _, port = hp.rpartition(":")
        a.host = a.host or host
        a.port = a.port or int(port)
        a.domain = a.domain or env["XEDGE_DOMAIN"]
        a.secret_file = a.secret_file or env["XEDGE_SECRET_FILE"]
    if not (a.host and a.port and a.domain and a.secret_file):
        ap.error("give --sandbox DIR, or --host, --port, --domain and --secret-file")

    secret = read_secret(a.secret_file)
    user = a.user
    identity = "%s@%s" % (user, a.domain)
    results = []

    def check(ok, name, diag=None):
        results.append((bool(ok), name, diag))

    def attempt(password, authcid=user):
        st = Stream(a.host, a.port, a.domain)
        try:
            st.open()
            if a.direct:
                return st, st.auth_direct(authcid, password)
            return st, st.auth_plain(authcid, password)
        except Exception:
            st.close()
            raise

    # features
    st = Stream(a.host, a.port, a.domain)
    feats = st.open()
    st.close()
    mechs = re.findall(r"<mechanism>([^<]+)</mechanism>", feats)
    check(mechs == ["PLAIN"], "backend offers only PLAIN", "mechanisms: %r" % mechs)
    if a.direct:
        check(re.search(r"<auth xmlns=['\"]urn:xedge:auth:0['\"]\s*/>", feats),
              "backend offers the direct login", feats)

    now = int(time.time())
    good = make_token(secret, "c2s", identity, now + 60)

    # a valid assertion, then bind
    st, r = attempt(good)
    ok = "<success" in r
    check(ok, "valid assertion -> success", r)
    if ok:
        if a.direct:  # the session's features follow, on the same stream
            f = st.read_until(rb"</stream:features>|<stream:features/>")
            check("urn:ietf:params:xml:ns:xmpp-bind" in f and "<stream:stream" not in f
                  and "urn:xedge:auth:0" not in f,
                  "direct: then the authenticated session's features (bind), no restart", f)
        else:
            st.open()
        st.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>check</resource></bind></iq>")
        r = st.read_until(rb"</iq>|<iq[^>]*/>")
        m = re.search(r"<jid>([^<]+)</jid>", r)
        check(m and m.group(1) == identity + "/check", "bound as %s/check" % identity, r)
    st.close(settle=True)

    def refused(name, password, authcid=user):
        st, r = attempt(password, authcid)
        st.close()
        check("<failure" in r and "not-authorized" in r, name + " -> failure (not-authorized)", r)

    refused("replayed assertion", good)
    fresh = make_token(secret, "c2s", identity, now + 60)
    refused("mac with one digit changed", fresh[:-1] + ("0" if fresh[-1] != "0" else "1"))
    refused("expired assertion", make_token(secret, "c2s", identity, now - 1))
    refused("assertion for another user", make_token(secret, "c2s", "mallory@" + a.domain, now + 60))
    refused("assertion for this user presented as another user",
            make_token(secret, "c2s", identity, now + 60), authcid="mallory")
    refused("signed with another secret", make_token(b"x" * 64, "c2s", identity, now + 60))
    refused("s2s assertion", make_token(secret, "s2s", identity, now + 60))
    refused("lifetime beyond the max (%d s)" % a.max_lifetime,
            make_token(secret, "c2s", identity, now + a.max_lifetime + 30))
    refused("a plain password", "secret-password")

    st, r = attempt(make_token(secret, "c2s", identity, int(time.time()) + 60))
    st.close()
    check("<success" in r, "second fresh assertion -> success", r)

    print("1..%d" % len(results))
    for i, (ok, name, diag) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
        if not ok and diag:
            print("# " + str(diag).replace("\n", "\n# "))
    sys.exit(0 if all(r[0] for r in results) else 1)


if __name__ == "__main__":
    main()
