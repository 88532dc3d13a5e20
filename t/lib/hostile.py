#!/usr/bin/python3
"""hostile.py SERVER CASE [ARGS] -- hostile clients for e2e-limits.t.

Prints KEY=value lines. Cases:
  idle-flood N HOLD_S       open N TCP connections from this host at once and
                            hold them without a byte: how many xedge closed at
                            once (refused), how many it held, and what the held
                            ones got when their idle time ran out
  slow-client               send a stream header one byte a second: when and
                            how does xedge end it
  failed-logins N JID CA    N failed PLAIN logins (3 per stream, 8 at a time)
  stanza BYTES              one element of BYTES before authentication
  nesting DEPTH             DEPTH nested elements before authentication
  bytes HEX                 the stream header, then these bytes
  tls-garbage               random bytes (give the Direct TLS port as SERVER)
  sasl-bad-base64 CA        <auth/> whose payload is not base64
  sasl-oversized CA N       <auth/> carrying N bytes (base64-encoded)
  sasl-bad-mechanism CA     <auth/> whose mechanism is not a SASL name
"""
import base64
import concurrent.futures as cf
import os
import re
import resource
import selectors
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>").encode()


def addr_of(server):
    host, _, port = server.rpartition(':')
    return host.strip('[]'), int(port)


def read_all(s, t):
    """Everything the server sends until it closes (or t seconds)."""
    buf, end = b'', time.time() + t
    s.settimeout(0.2)
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionError, ssl.SSLError, OSError):
            return buf + b'[RESET]'
        if not d:
            return buf + b'[EOF]'
        buf += d
    return buf + b'[OPEN]'


def error_of(buf):
    m = re.search(rb'<stream:error><([a-z-]+)', buf)
    return m.group(1).decode() if m else '-'


def idle_flood(server, n, hold):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = min(n, hard - 64)
    a = addr_of(server)
    socks, failed = [], 0
    t0 = time.monotonic()
    for i in range(n):
        if i and i % 250 == 0:
            # in batches, so that the kernel's accept queue never overflows:
            # what is not held is then refused by xedge, not left half-open
            time.sleep(0.05)
        s = socket.socket(socket.AF_INET6 if ':' in a[0] else socket.AF_INET)
        s.setblocking(False)
        try:
            s.connect(a)
        except BlockingIOError:
            pass
        except OSError:
            failed += 1
            s.close()
            continue
        socks.append(s)
    opened = time.monotonic() - t0
    # a second later: which ones did xedge close?
    time.sleep(1.0)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed = set()
    for key, _ in sel.select(timeout=0.5):
        s = key.fileobj
        try:
            d = s.recv(4096)
            if not d:
                closed.add(s)
        except OSError:
            closed.add(s)
    held = [s for s in socks if s not in closed]
    print('ATTEMPTED=%d' % n)
    print('CONNECT_FAILED=%d' % failed)
    print('OPEN_S=%.2f' % opened)
    print('CLOSED_AT_ONCE=%d' % len(closed))
    print('HELD=%d' % len(held))
    sys.stdout.flush()
    # wait for the idle timeout on the held ones
    end = time.time() + hold
    errors, ended = {}, 0
    for s in held:
        s.setblocking(True)
        buf = read_all(s, max(0.1, end - time.time()))
        if buf.endswith(b'[EOF]') or buf.endswith(b'[RESET]'):
            ended += 1
        e = error_of(buf)
        errors[e] = errors.get(e, 0) + 1
    print('HELD_ENDED=%d' % ended)
    print('HELD_ERRORS=%s' % ','.join('%s:%d' % kv for kv in sorted(errors.items())))
    for s in socks:
        s.close()


def slow_client(server):
    s = socket.create_connection(addr_of(server), timeout=5)
    t0 = time.monotonic()
    got, sent = b'', 0
    s.settimeout(1.0)
    for b in HDR * 10:
        try:
            s.send(bytes([b]))
            sent += 1
        except OSError:
            break
        try:
            d = s.recv(65536)
            if not d:
                got += b'[EOF]'
                break
            got += d
        except socket.timeout:
            pass
        except OSError:
            got += b'[RESET]'
            break
        if time.monotonic() - t0 > 30:
            break
    print('SENT_BYTES=%d' % sent)
    print('ENDED_AFTER_S=%.1f' % (time.monotonic() - t0))
    print('ERROR=%s' % error_of(got))
    m = re.search(rb'<text[^>]*>([^<]*)</text>', got)
    print('TEXT=%s' % (m.group(1).decode().replace(' ', '_') if m else '-'))


def tls_stream(server, cafile):
    """STARTTLS, then the TLS stream's features: ready for SASL."""
    return wire.starttls(server, 'example.test', cafile)[0]


def sasl_answer(server, cafile, auth):
    """One <auth/> on a TLS stream: the SASL failure condition, if any."""
    s = tls_stream(server, cafile)
    s.sendall(auth)
    buf = b''
    s.settimeout(10)
    while b'</failure>' not in buf and b'<success' not in buf and b'</stream:error>' not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    m = re.search(rb'<failure[^>]*><([a-z-]+)', buf)
    print('FAILURE=%s' % (m.group(1).decode() if m else '-'))
    print('SUCCESS=%s' % ('yes' if b'<success' in buf else 'no'))


def one_failing_stream(server, jid, cafile, attempts):
    local = jid.split('@')[0]
    s = tls_stream(server, cafile)
    results = []
    for i in range(attempts):
        payload = base64.b64encode(b'\0' + local.encode() + b'\0' + b'wrong-%d' % i).decode()
        s.sendall(("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                   % payload).encode())
        buf = b''
        while b'</failure>' not in buf and b'<success' not in buf and b'</stream:error>' not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        m = re.search(rb'<failure[^>]*><([a-z-]+)', buf)
        results.append(m.group(1).decode() if m else ('success' if b'<success' in buf else '?'))
    s.close()
    return results


def failed_logins(server, n, jid, cafile):
    t0 = time.monotonic()
    streams = (n + 2) // 3
    counts = {}
    with cf.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(one_failing_stream, server, jid, cafile, 3 if i < streams - 1 else n - 3 * (streams - 1))
                for i in range(streams)]
        for f in futs:
            try:
                for r in f.result():
                    counts[r] = counts.get(r, 0) + 1
            except Exception as e:
                k = 'exception-' + type(e).__name__
                counts[k] = counts.get(k, 0) + 1
    print('ATTEMPTS=%d' % sum(counts.values()))
    print('RESULTS=%s' % ','.join('%s:%d' % kv for kv in sorted(counts.items())))
    print('ELAPSED_S=%.1f' % (time.monotonic() - t0))


def send_and_read(server, payload, t=8):
    s = socket.create_connection(addr_of(server), timeout=10)
    t0 = time.monotonic()
    try:
        s.sendall(HDR + payload)
    except OSError:
        pass
    buf = read_all(s, t)
    print('ERROR=%s' % error_of(buf))
    print('CLOSED=%s' % ('yes' if buf.endswith(b'[EOF]') or buf.endswith(b'[RESET]') else 'no'))
    print('ELAPSED_S=%.1f' % (time.monotonic() - t0))


def tls_garbage(server):
    s = socket.create_connection(addr_of(server), timeout=10)
    data = bytearray(os.urandom(4096))
    # never a record header OpenSSL waits on: with a second byte of 3 (a TLS
    # record's major version) or a first byte with the high bit set (an SSLv2
    # ClientHello) random bytes announce a record of up to 32 KiB, and the
    # server rightly waits for the rest until its handshake timeout (1 run in
    # a few hundred); any other header is refused at once
    data[0] &= 0x7f
    data[1] = 0
    s.sendall(bytes(data))
    buf = read_all(s, 5)
    print('CLOSED=%s' % ('yes' if buf.endswith(b'[EOF]') or buf.endswith(b'[RESET]') else 'no'))


def postauth_stanza(server, cafile, jid, password, n):
    """Logged in, one message of N bytes: what does the stream end with?"""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import raw_client
    s = raw_client.Session(jid, server, 'starttls', cafile, False, 30, log=lambda _l: None)
    s.connect()
    assert s.auth('PLAIN', password)[0] == 'success'
    s.restart_and_bind('big')
    t0 = time.monotonic()
    err, closed = 'none', 'no'
    try:
        s.send("<message to='%s' type='chat'><body>" % jid + 'A' * n + '</body></message>')
        while True:
            s.recv()
    except raw_client.StreamError as e:
        err, closed = e.condition, 'yes'
    except raw_client.Closed:
        closed = 'yes'
    except raw_client.Timeout:
        pass
    print('ERROR=%s' % err)
    print('CLOSED=%s' % closed)
    print('ENDED_AFTER_S=%.2f' % (time.monotonic() - t0))


def main():
    server, case = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    if case == 'idle-flood':
        idle_flood(server, int(args[0]), float(args[1]))
    elif case == 'slow-client':
        slow_client(server)
    elif case == 'failed-logins':
        failed_logins(server, int(args[0]), args[1], args[2])
    elif case == 'stanza':
        n = int(args[0])
        send_and_read(server, b"<x xmlns='urn:example'>" + b'A' * n + b'</x>')
    elif case == 'nesting':
        d = int(args[0])
        send_and_read(server, b'<a>' * d + b'</a>' * d)
    elif case == 'bytes':
        send_and_read(server, bytes.fromhex(args[0]))
    elif case == 'sasl-bad-base64':
        sasl_answer(server, args[0],
                    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                    b"not*base64!</auth>")
    elif case == 'sasl-bad-mechanism':
        # a mechanism name that would read as more fields in a log line
        sasl_answer(server, args[0],
                    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                    b"mechanism='PLAIN condition=ok user=root'>AGJvYgB4</auth>")
    elif case == 'sasl-oversized':
        payload = base64.b64encode(b'\0bob\0' + b'x' * int(args[1]))
        sasl_answer(server, args[0],
                    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
                    payload + b"</auth>")
    elif case == 'tls-garbage':
        tls_garbage(server)
    elif case == 'auth-before-tls':
        s = socket.create_connection(addr_of(server), timeout=10)
        s.sendall(HDR + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                  b"AGJvYgB4</auth>")
        buf = read_all(s, 3)
        m = re.search(rb"<failure[^>]*><([a-z-]+)", buf)
        print('FAILURE=%s' % (m.group(1).decode() if m else 'none'))
    elif case == 'postauth-stanza':
        postauth_stanza(server, args[0], args[1], args[2], int(args[3]))
    else:
        print('unknown case %s' % case)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
