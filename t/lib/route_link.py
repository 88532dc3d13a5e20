#!/usr/bin/python3
"""route_link.py - a hostile (or buggy) backend glue on xedge's routing
listener (doc/pool-routing.md), byte-level.

  /usr/bin/python3 t/lib/route_link.py HOST:PORT DOMAIN SERVER SECRET_FILE MODE [TIMEOUT]

It opens a routing link as SERVER of DOMAIN's pool with an assertion of
purpose "route" made with the secret in SECRET_FILE (MODE bad-auth: with a
wrong secret), then:
  bad-auth   prints AUTH=failure (or AUTH=success) and exits;
  echo       prints AUTH=success and MAP servers=N once the map arrives,
             then sends back every message xedge routes to it, twice:
             unchanged (its from is a user of another server: forged,
             dropped without an error) and with the from of a remote
             user, loop@remote.test/x (its home is this server: a loop,
             if xedge took it), and prints
               ROUTED-IN to=JID           (a message xedge routed here)
               REFUSED to=JID condition=C (xedge's error for an echo)
             and exits after the first REFUSED (or at TIMEOUT, default 20 s).
  flood      once the map arrives, sends 2000 stanzas for a domain xedge
             does not route (each refused, with an error), then one with
             id='last', and prints FLOODED when its error is back.
  deaf       once the map arrives, reads nothing more and sends 300
             stanzas that each earn a 200 KB error (their id is 200 KB
             long, for a domain xedge does not route): 60 MB of replies.
             Prints BLOCKED sent=N when a write waits 3 s (xedge stopped
             reading), SENT-ALL sent=300 otherwise.
  hold       as deaf, but once xedge stops reading, prints HOLDING and
             keeps the link open, reading nothing, until TIMEOUT (xedge
             holds what it has for it: map deltas pile up).
  resync     once the map arrives (MAP servers=N gen=G pins=P), sends
             <resync/> as a glue that missed a delta does, and prints
             MAP-AGAIN gen=G pins=P when the whole map comes again.
Exit status 0 when the expected lines came, 1 otherwise.
"""
import hashlib
import hmac
import os
import re
import socket
import sys
import time


def token(secret, identity, purpose='route'):
    expiry = str(int(time.time()) + 30)
    nonce = os.urandom(16).hex()
    mac = hmac.new(secret, ('xe1\n%s\n%s\n%s\n%s' % (purpose, identity, expiry, nonce)).encode(),
                   hashlib.sha256).hexdigest()
    return 'xe1:%s:%s:%s:%s' % (purpose, expiry, nonce, mac)


def main():
    if len(sys.argv) < 6:
        print(__doc__, file=sys.stderr)
        return 64
    addr, domain, server, secret_file, mode = sys.argv[1:6]
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 20
    with open(secret_file, 'rb') as f:
        secret = f.read().rstrip(b'\r\n \t')
    if mode == 'bad-auth':
        secret = b'x' * 64
    host, _, port = addr.rpartition(':')
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
               "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>"
               "<auth xmlns='urn:xedge:route:0' server='%s'>%s</auth>"
               % (domain, server, token(secret, domain + ' ' + server))).encode())
    buf, end = '', time.time() + timeout
    authed = mapped = False
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        buf += d.decode('utf-8', 'replace')
        if not authed and '<success' in buf:
            authed = True
            print('AUTH=success', flush=True)
            if mode == 'bad-auth':
                return 1
        if not authed and '<failure' in buf:
            print('AUTH=failure', flush=True)
            return 0 if mode == 'bad-auth' else 1
        if authed and not mapped:
            m = re.search(r'<pool [^>]*>.*?</pool>', buf, re.S)
            if m:
                mapped = True
                print('MAP servers=%d' % len(re.findall(r'<server ', m.group(0))), flush=True)
                if mode == 'resync':
                    g = re.search(r"<pool [^>]*gen='(\d+)' pins='(\d+)'", m.group(0))
                    print('MAP gen=%s pins=%s' % (g.group(1), g.group(2)) if g else 'MAP gen=-',
                          flush=True)
                    s.sendall(b"<resync xmlns='urn:xedge:route:0'/>")
                buf = buf[m.end():]
        if not mapped:
            continue
        if mode == 'resync':
            m = re.search(r"<pool [^>]*gen='(\d+)' pins='(\d+)'", buf)
            if m:
                print('MAP-AGAIN gen=%s pins=%s' % (m.group(1), m.group(2)), flush=True)
                return 0
            continue
        if mode == 'flood':
            s.sendall(''.join("<message from='example.test' to='x@elsewhere.test' id='f%d'/>" % i
                              for i in range(2000)).encode())
            s.sendall(b"<message from='example.test' to='x@elsewhere.test' id='last'/>")
            while time.time() < end:
                if "id='last'" in buf:
                    print('FLOODED', flush=True)
                    return 0
                d = s.recv(65536)
                if not d:
                    break
                buf += d.decode('utf-8', 'replace')
            print('TIMEOUT flood', flush=True)
            return 1
        if mode in ('deaf', 'hold'):
            s.settimeout(3)
            big = 'd' * 200000
            for i in range(300):
                st = "<message from='example.test' to='x@elsewhere.test' id='%d%s'/>" % (i, big)
                try:
                    s.sendall(st.encode())
                except socket.timeout:
                    print('BLOCKED sent=%d' % i, flush=True)
                    if mode == 'hold':
                        print('HOLDING', flush=True)
                        time.sleep(max(0, end - time.time()))
                    return 0
            print('SENT-ALL sent=300', flush=True)
            return 1
        # whole messages (the test's have no nested <message>)
        while True:
            m = re.search(r'<message\b[^>]*?(/>|>.*?</message>)', buf, re.S)
            if not m:
                break
            st = m.group(0)
            buf = buf[m.end():]
            to = re.search(r"\bto=['\"]([^'\"]+)", st)
            to = to.group(1) if to else '-'
            if "type='error'" in st or 'type="error"' in st:
                c = re.search(r'<([a-z-]+) xmlns=.urn:ietf:params:xml:ns:xmpp-stanzas', st)
                print('REFUSED to=%s condition=%s' % (to, c.group(1) if c else '-'), flush=True)
                s.close()
                return 0
            print('ROUTED-IN to=%s' % to, flush=True)
            s.sendall(st.encode())  # back where it came from, its from forged
            s.sendall(re.sub(r"\bfrom=(['\"])[^'\"]*\1", "from='loop@remote.test/x'", st,
                             count=1).encode())  # a remote's, back to its home
    print('TIMEOUT authed=%d mapped=%d' % (authed, mapped), flush=True)
    return 1


if __name__ == '__main__':
    sys.exit(main())
