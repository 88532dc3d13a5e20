#!/usr/bin/python3
"""s2s_glue_probe.py: drive a Prosody that runs contrib/prosody's
mod_xedge_s2s (and mod_auth_xedge) the way xedge would, byte by byte, for
t/e2e-prosody-s2s-glue.t.

usage: s2s_glue_probe.py SECRET_FILE C2S_PORT S2S_PORT ROUTE_PORT

LOCAL is a.test (served by Prosody), PEER is b.test (behind "xedge"). Prints
one line per check, "CHECK NAME=VALUE", and exits 0 (the test judges):
  login           alice@a.test logged in over c2s with a c2s assertion
  valid           the db:result type for a valid s2s assertion
  delivered       a message from bob@b.test over that stream reached alice
  bad             the type for an assertion signed with another secret
  bad_closed      that stream ended with <not-authorized/> and was closed
  replay          the type for the first stream's assertion sent again
  replay_closed   ditto, closed
  out_header      the stream header Prosody opened on ROUTE_PORT
  out_valid_sent  we (as xedge) accepted its dialback key
  out_message     the body of alice's message to carol@b.test that came there
  fallthrough     what reached the route link when a plain dialback key
                  (not an assertion) was sent inbound: mod_dialback's
                  db:verify, "db:verify key=KEY"
  bounce          the error condition alice got for a message to c.test once
                  nothing listened on ROUTE_PORT any more
"""
import base64
import hashlib
import hmac
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

secret_file, c2s_port, s2s_port, route_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
HOST = "127.0.0.1"
LOCAL, PEER = "a.test", "b.test"
TIMEOUT = 10

with open(secret_file, "rb") as f:
    SECRET = f.read().rstrip(b"\r\n \t")


def assertion(secret, purpose, identity, lifetime=60):
    """doc/assertion.md: xe1:PURPOSE:EXPIRY:NONCE:MAC."""
    expiry = str(int(time.time()) + lifetime)
    nonce = os.urandom(16).hex()
    msg = "\n".join(["xe1", purpose, identity, expiry, nonce]).encode()
    mac = hmac.new(secret, msg, hashlib.sha256).hexdigest()
    return "xe1:%s:%s:%s:%s" % (purpose, expiry, nonce, mac)


def say(name, value):
    print("CHECK %s=%s" % (name, value), flush=True)


def read_match(s, pattern, limit=TIMEOUT):
    """Read until PATTERN (a bytes regex) matches what was read; returns
    (match or None, everything read, closed)."""
    buf, end = b"", time.monotonic() + limit
    while True:
        m = re.search(pattern, buf, re.S)
        if m:
            return m, buf, False
        left = end - time.monotonic()
        if left <= 0:
            return None, buf, False
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return None, buf, False
        except OSError:
            return None, buf, True
        if not d:
            return None, buf, True
        buf += d


def closed_after(s, limit=5):
    """True when the peer closes the connection within LIMIT seconds."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True
    return False


def c2s_login(user):
    s = socket.create_connection((HOST, c2s_port), timeout=TIMEOUT)
    s.sendall(wire.header(LOCAL))
    read_match(s, rb"</stream:features>")
    token = assertion(SECRET, "c2s", "%s@%s" % (user, LOCAL))
    plain = base64.b64encode(("\0%s\0%s" % (user, token)).encode()).decode()
    s.sendall(("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % plain).encode())
    m, _, _ = read_match(s, rb"<(success|failure)")
    if not m or m.group(1) != b"success":
        return None
    s.sendall(wire.header(LOCAL))
    read_match(s, rb"</stream:features>")
    s.sendall(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              b"<resource>probe</resource></bind></iq>")
    m, _, _ = read_match(s, rb"<jid>[^<]*</jid>")
    if not m:
        return None
    s.sendall(b"<presence><priority>1</priority></presence>")
    return s


def s2s_in(token, frm=PEER, to=LOCAL):
    """An inbound stream as xedge opens it; returns (socket, db:result type
    or None, what was read)."""
    s = socket.create_connection((HOST, s2s_port), timeout=TIMEOUT)
    s.sendall(wire.s2s_header(frm, to))
    read_match(s, rb"</stream:features>")
    s.sendall(("<db:result from='%s' to='%s'>%s</db:result>" % (frm, to, token)).encode())
    m, buf, _ = read_match(s, rb"<db:result[^>]*type=['\"](\w+)['\"]")
    return s, (m.group(1).decode() if m else None), buf


# a.test's user, to receive and send
alice = c2s_login("alice")
say("login", "ok" if alice else "failed")
if not alice:
    sys.exit(0)

# (a) a valid assertion, then a stanza over the authenticated stream
token = assertion(SECRET, "s2s", "%s %s" % (PEER, LOCAL))
s, typ, _ = s2s_in(token)
say("valid", typ)
s.sendall(("<message from='bob@%s/x' to='alice@%s' id='m1' type='chat'><body>hello-from-b</body></message>"
           % (PEER, LOCAL)).encode())
m, _, _ = read_match(alice, rb"<message[^>]*from=['\"]bob@b\.test/x['\"].*?hello-from-b")
say("delivered", "yes" if m else "no")

# (b) an assertion signed with another secret
bad = assertion(b"x" * 40, "s2s", "%s %s" % (PEER, LOCAL))
s2, typ, buf = s2s_in(bad)
say("bad", typ)
m, buf2, closed = read_match(s2, rb"not-authorized.*</stream:stream>")
say("bad_closed", "yes" if (m or b"not-authorized" in buf) and (closed or closed_after(s2)) else "no")
s2.close()

# (c) the first assertion again (replay)
s3, typ, buf = s2s_in(token)
say("replay", typ)
m, _, closed = read_match(s3, rb"not-authorized.*</stream:stream>")
say("replay_closed", "yes" if (m or b"not-authorized" in buf) and (closed or closed_after(s3)) else "no")
s3.close()

# (d) outbound: alice writes to carol@b.test; Prosody must come to the route
lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind((HOST, route_port))
lst.listen(4)
lst.settimeout(TIMEOUT)
alice.sendall(b"<message to='carol@b.test' id='o1' type='chat'><body>hello-to-b</body></message>")
out = None
try:
    out, _ = lst.accept()
except socket.timeout:
    say("out_header", "none")
if out:
    m, buf, _ = read_match(out, rb"<stream:stream[^>]*>")
    hdr = m.group(0).decode() if m else ""
    frm = re.search(r"\sfrom=['\"]([^'\"]*)['\"]", hdr)
    to = re.search(r"\sto=['\"]([^'\"]*)['\"]", hdr)
    say("out_header", "from=%s to=%s" % (frm.group(1) if frm else "", to.group(1) if to else ""))
    # as xedge's s2s_backend listener: dialback offered, the key accepted
    out.sendall(wire.s2s_header(PEER, LOCAL, "xedge-probe-1")
                + b"<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>")
    m, _, _ = read_match(out, rb"<db:result[^>]*>[^<]+</db:result>")
    if m:
        out.sendall(("<db:result from='%s' to='%s' type='valid'/>" % (PEER, LOCAL)).encode())
    say("out_valid_sent", "yes" if m else "no")
    m, _, _ = read_match(out, rb"<message[^>]*>.*?<body>([^<]*)</body>")
    say("out_message", m.group(1).decode() if m else "none")

    # (e) a plain dialback key inbound: mod_dialback's, which asks b.test's
    # authoritative server through the route (the link we hold)
    s4 = socket.create_connection((HOST, s2s_port), timeout=TIMEOUT)
    s4.sendall(wire.s2s_header(PEER, LOCAL))
    read_match(s4, rb"</stream:features>")
    s4.sendall(("<db:result from='%s' to='%s'>0123456789abcdef</db:result>" % (PEER, LOCAL)).encode())
    m, _, _ = read_match(out, rb"<db:verify[^>]*>([^<]*)</db:verify>")
    say("fallthrough", "db:verify key=%s" % m.group(1).decode() if m else "none")
    s4.close()
    out.close()
lst.close()

# (f) the route down (nothing listens there now): a stanza for another remote
# domain bounces back to alice, never goes to DNS
alice.sendall(b"<message to='dave@c.test' id='o2' type='chat'><body>lost</body></message>")
m, _, _ = read_match(alice, rb"<message[^>]*type=['\"]error['\"][^>]*>.*?</message>")
cond = re.search(rb"<([a-z-]+) xmlns=['\"]urn:ietf:params:xml:ns:xmpp-stanzas['\"]", m.group(0)) if m else None
say("bounce", cond.group(1).decode() if cond else "none")
s.close()
alice.close()
