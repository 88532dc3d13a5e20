#!/usr/bin/python3
"""ws_probe.py - a raw RFC 6455 / RFC 7395 client (stdlib only) for the
hostile cases of t/e2e-websocket.t.

  ws_probe.py --url wss://HOST:PORT/PATH --cafile CA --domain D CASE [options]

Prints what it saw, one KEY=value per line:
  HTTP=<status> [header lines as H=name: value]
  MSG=<text of a text message>          (each, in order)
  CLOSE=<code>                          (the server's close frame)
  EOF=1 / TIMEOUT=1                     (the connection ended / went quiet)
  SENT=<bytes of a big frame written before the server closed>

CASE: upgrade (open, read the features) | noproto | otherproto | badpath |
plainget | hostmeta | hostmeta-json | origin (--origin O) | unmasked | binary |
bigframe | badutf8 | two | half | beforeopen | slow (--slow S: the request
head over S seconds) | idle (--count N: N upgraded connections held open
--hold S seconds; prints UPGRADED=n REFUSED=n) | noread (--jid --password:
log in with PLAIN, then send --count messages to itself, never reading) |
login (--jid --password --mech M: SCRAM-SHA-1/256[-PLUS with
tls-server-end-point], PLAIN, ANONYMOUS or EXTERNAL (--cert --key);
--register: XEP-0077 first; then bind and a ping to the server; prints
MECHS=offered, REGISTER=ok|error, LOGIN=ok|failure CONDITION= JID= PING=ok).
--forwarded-for A: an X-Forwarded-For header; --source A: the local address
to connect from; ws:// URLs are plain."""
import argparse, base64, hashlib, hmac, os, re, socket, ssl, struct, sys, time
from urllib.parse import urlparse

p = argparse.ArgumentParser()
p.add_argument('--url', required=True)
p.add_argument('--cafile')
p.add_argument('--domain', default='example.test')
p.add_argument('--origin')
p.add_argument('--slow', type=float, default=0)
p.add_argument('--count', type=int, default=1)
p.add_argument('--hold', type=float, default=0)
p.add_argument('--jid')
p.add_argument('--password')
p.add_argument('--timeout', type=float, default=5)
p.add_argument('--mech', default='PLAIN')
p.add_argument('--forwarded-for')
p.add_argument('--source')
p.add_argument('--cert')
p.add_argument('--key')
p.add_argument('--register', action='store_true')
p.add_argument('--proxy-v1', help='send a PROXY v1 header naming this source address first')
p.add_argument('case')
a = p.parse_args()
u = urlparse(a.url)
HOST, PORT, PATH = u.hostname, u.port, u.path or '/'
OPEN = ("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='%s' version='1.0'/>" % a.domain).encode()


def connect():
    s = socket.create_connection((HOST, PORT), timeout=a.timeout,
                                 source_address=(a.source, 0) if a.source else None)
    if a.proxy_v1:
        s.sendall(('PROXY TCP4 %s %s 40000 %d\r\n' % (a.proxy_v1, HOST, PORT)).encode())
    if u.scheme == 'wss':
        ctx = ssl.create_default_context(cafile=a.cafile)
        ctx.check_hostname = False
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)
        s = ctx.wrap_socket(s, server_hostname=a.domain)
    return s


def request(path=PATH, proto='xmpp', upgrade=True, origin=None):
    h = 'GET %s HTTP/1.1\r\nHost: %s:%d\r\n' % (path, HOST, PORT)
    if upgrade:
        h += ('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n'
              'Sec-WebSocket-Key: %s\r\n' % base64.b64encode(os.urandom(16)).decode())
    if proto:
        h += 'Sec-WebSocket-Protocol: %s\r\n' % proto
    if origin:
        h += 'Origin: %s\r\n' % origin
    if a.forwarded_for:
        h += 'X-Forwarded-For: %s\r\n' % a.forwarded_for
    return (h + '\r\n').encode()


class Conn:
    def __init__(self, s):
        self.s, self.buf = s, b''

    def recv(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def head(self):
        while b'\r\n\r\n' not in self.buf:
            self.recv()
        head, _, self.buf = self.buf.partition(b'\r\n\r\n')
        lines = head.decode('latin-1').split('\r\n')
        status = int(lines[0].split()[1])
        return status, lines[1:]

    def frame(self):
        while len(self.buf) < 2:
            self.recv()
        op, n, off = self.buf[0] & 15, self.buf[1] & 127, 2
        if n == 126:
            while len(self.buf) < 4:
                self.recv()
            n, off = struct.unpack('>H', self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self.recv()
            n, off = struct.unpack('>Q', self.buf[2:10])[0], 10
        while len(self.buf) < off + n:
            self.recv()
        pl, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return op, pl


def frame(op, payload, mask=True, fin=True):
    n = len(payload)
    b = bytes([(0x80 if fin else 0) | op])
    m = 0x80 if mask else 0
    if n < 126:
        b += bytes([m | n])
    elif n < 65536:
        b += bytes([m | 126]) + struct.pack('>H', n)
    else:
        b += bytes([m | 127]) + struct.pack('>Q', n)
    if not mask:
        return b + payload
    k = os.urandom(4)
    return b + k + bytes(x ^ k[i % 4] for i, x in enumerate(payload))


def read_all(c):
    """Print every message until the close, EOF or silence."""
    try:
        while True:
            op, pl = c.frame()
            if op == 8:
                print('CLOSE=%s' % (struct.unpack('>H', pl[:2])[0] if len(pl) >= 2 else 1005))
                c.s.sendall(frame(8, pl[:2]))
            elif op == 1:
                print('MSG=%s' % pl.decode('utf-8', 'replace'))
            elif op == 10:
                print('PONG=%s' % pl.decode('utf-8', 'replace'))
    except EOFError:
        print('EOF=1')
    except (socket.timeout, TimeoutError):
        print('TIMEOUT=1')
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        print('EOF=1')


def upgraded(c, **kw):
    c.s.sendall(request(**kw))
    st, hdrs = c.head()
    print('HTTP=%d' % st)
    for h in hdrs:
        print('H=%s' % h)
    return st == 101


def opened():
    c = Conn(connect())
    if not upgraded(c):
        sys.exit(0)
    return c


case = a.case
if case in ('noproto', 'otherproto', 'badpath', 'plainget', 'hostmeta', 'hostmeta-json', 'origin'):
    c = Conn(connect())
    kw = {'noproto': dict(proto=None), 'otherproto': dict(proto='chat'),
          'badpath': dict(path='/nope'), 'plainget': dict(upgrade=False, proto=None),
          'hostmeta': dict(path='/.well-known/host-meta', upgrade=False, proto=None),
          'hostmeta-json': dict(path='/.well-known/host-meta.json', upgrade=False, proto=None),
          'origin': dict(origin=a.origin)}[case]
    ok = upgraded(c, **kw)
    if not ok:
        body = c.buf
        try:
            while True:
                c.recv()
        except Exception:
            pass
        print('BODY=%s' % c.buf.decode('utf-8', 'replace').replace('\n', ' '))
    else:
        c.s.sendall(frame(1, OPEN))
    read_all(c)
elif case in ('upgrade', 'unmasked', 'binary', 'badutf8', 'two', 'half', 'beforeopen', 'ping'):
    c = opened()
    IQ = b"<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"
    send = {'upgrade': [frame(1, OPEN)], 'unmasked': [frame(1, OPEN, mask=False)],
            'binary': [frame(2, OPEN)], 'badutf8': [frame(1, b"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='\xff\xfe'/>")],
            'two': [frame(1, OPEN + IQ)], 'half': [frame(1, OPEN), frame(1, IQ[:30])],
            'beforeopen': [frame(1, IQ)], 'ping': [frame(9, b'hi'), frame(1, OPEN)]}[case]
    for f in send:
        c.s.sendall(f)
    read_all(c)
elif case == 'login':
    c = opened()

    def until(pat):
        buf = ''
        while True:
            m = re.search(pat, buf, re.S)
            if m:
                return m
            op, pl = c.frame()
            if op == 8:
                raise EOFError('closed')
            buf += pl.decode()

    def send(x):
        c.s.sendall(frame(1, x.encode()))
    b64 = lambda b: base64.b64encode(b).decode()
    try:
        send(OPEN.decode())
        feats = until(r'<stream:features.*?</stream:features>').group(0)
        print('MECHS=%s' % ','.join(re.findall(r'<mechanism>([^<]+)</mechanism>', feats)))
        mech, user = a.mech, (a.jid or '@').split('@')[0]
        if a.register:  # XEP-0077 before the login, on this stream
            send("<iq xmlns='jabber:client' type='set' id='reg'><query xmlns='jabber:iq:register'>"
                 "<username>%s</username><password>%s</password></query></iq>" % (user, a.password))
            r = until(r"<iq[^>]*id='reg'.*?(/>|</iq>)").group(0)
            print('REGISTER=%s' % ('ok' if "type='result'" in r else 'error'))
        SASL = "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'"
        if mech.startswith('SCRAM-'):
            hname = 'sha256' if 'SHA-256' in mech else 'sha1'
            if mech.endswith('-PLUS'):
                der = c.s.getpeercert(binary_form=True)
                gs2, cb = 'p=tls-server-end-point,,', hashlib.sha256(der).digest()
            else:
                gs2, cb = 'n,,', b''
            bare = 'n=%s,r=%s' % (user, b64(os.urandom(18)))
            send("<auth %s mechanism='%s'>%s</auth>" % (SASL, mech, b64((gs2 + bare).encode())))
            m = until(r'<challenge[^>]*>([^<]*)</challenge>|<failure.*?</failure>')
            if m.group(0).startswith('<failure'):  # (a lockout: at once)
                print('LOGIN=failure')
                print('CONDITION=%s' % re.search(r'<failure[^>]*><([a-z-]+)', m.group(0)).group(1))
                sys.exit(0)
            first = base64.b64decode(m.group(1)).decode()
            f = dict(kv.split('=', 1) for kv in first.split(','))
            salted = hashlib.pbkdf2_hmac(hname, a.password.encode(), base64.b64decode(f['s']), int(f['i']))
            ck = hmac.new(salted, b'Client Key', hname).digest()
            final = 'c=%s,r=%s' % (b64(gs2.encode() + cb), f['r'])
            sig = hmac.new(hashlib.new(hname, ck).digest(), ('%s,%s,%s' % (bare, first, final)).encode(), hname).digest()
            send("<response %s>%s</response>" % (SASL, b64((final + ',p=' + b64(bytes(x ^ y for x, y in zip(ck, sig)))).encode())))
        elif mech == 'PLAIN':
            send("<auth %s mechanism='PLAIN'>%s</auth>" % (SASL, b64(('\0%s\0%s' % (user, a.password)).encode())))
        else:  # ANONYMOUS, EXTERNAL (the certificate's identity)
            send("<auth %s mechanism='%s'>=</auth>" % (SASL, mech))
        m = until(r'<success[^>]*?(/>|>.*?</success>)|<failure.*?</failure>')
        if m.group(0).startswith('<failure'):
            print('LOGIN=failure')
            print('CONDITION=%s' % re.search(r'<failure[^>]*><([a-z-]+)', m.group(0)).group(1))
            sys.exit(0)
        send(OPEN.decode())
        until(r'</stream:features>')
        send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<resource>probe</resource></bind></iq>")
        print('JID=%s' % until(r'<jid>([^<]+)</jid>').group(1))
        print('LOGIN=ok')
        send("<iq xmlns='jabber:client' type='get' id='p' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % a.domain)
        until(r"<iq[^>]*id='p'[^>]*type='result'|<iq[^>]*type='result'[^>]*id='p'")
        print('PING=ok')
        sys.stdout.flush()
        time.sleep(a.hold)
        send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>")
        read_all(c)
    except (EOFError, socket.timeout, TimeoutError) as e:
        print('LOGIN=error %s' % e)
elif case == 'bigframe':
    c = opened()
    c.s.sendall(frame(1, OPEN))
    # a 1 MiB text frame, written in pieces: the server must close long before
    n = 1 << 20
    k = os.urandom(4)
    c.s.sendall(bytes([0x81, 0x80 | 127]) + struct.pack('>Q', n) + k)
    sent = 0
    try:
        while sent < n:
            c.s.sendall(bytes(x ^ k[i % 4] for i, x in enumerate(b'<' + b'a' * 16383)))
            sent += 16384
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout, OSError):
        pass
    print('SENT=%d' % sent)
    read_all(c)
elif case == 'slow':
    c = Conn(connect())
    req = request()
    t0 = time.time()
    try:
        for i in range(len(req)):
            c.s.sendall(req[i:i + 1])
            time.sleep(a.slow / len(req))
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
        print('WRITE_FAILED_AFTER=%.1f' % (time.time() - t0))
    try:
        st, _ = c.head()
        print('HTTP=%d' % st)
    except Exception:
        pass
    read_all(c)
    print('SECONDS=%.1f' % (time.time() - t0))
elif case == 'idle':
    conns, refused = [], 0
    for i in range(a.count):
        try:
            c = Conn(connect())
            c.s.sendall(request())
            st, _ = c.head()
            if st != 101:
                refused += 1
                continue
            c.s.sendall(frame(1, OPEN))
            conns.append(c)
        except Exception:
            refused += 1
    print('UPGRADED=%d' % len(conns))
    print('REFUSED=%d' % refused)
    sys.stdout.flush()
    time.sleep(a.hold)
    alive = 0
    for c in conns:
        try:
            c.s.settimeout(0.01)
            c.s.recv(1)
            alive += 1
        except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
            alive += 1
        except Exception:
            pass
    print('ALIVE=%d' % alive)
elif case == 'noread':
    c = opened()
    c.s.sendall(frame(1, OPEN))
    auth = base64.b64encode(b'\0' + a.jid.split('@')[0].encode() + b'\0' + a.password.encode())
    c.s.sendall(frame(1, b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + auth + b"</auth>"))
    time.sleep(0.5)
    c.s.sendall(frame(1, OPEN))
    c.s.sendall(frame(1, b"<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>noread</resource></bind></iq>"))
    time.sleep(0.5)
    body = b'x' * 8000
    msg = frame(1, b"<message xmlns='jabber:client' to='%s' type='chat'><body>" % a.jid.encode() + body + b"</body></message>")
    sent, t0 = 0, time.time()
    c.s.settimeout(0.5)
    try:
        for i in range(a.count):
            c.s.sendall(msg)
            sent += 1
    except Exception as e:
        print('STOPPED=%s' % type(e).__name__)
    print('SENT_MESSAGES=%d' % sent)
    print('SECONDS=%.1f' % (time.time() - t0))
    time.sleep(a.hold)
else:
    sys.exit('unknown case ' + case)
