#!/usr/bin/python3
"""conn_probe.py - connections that do little, for e2e-reload-c2s.t (stdlib only).

  conn_probe.py idle SERVER SOURCE WAIT
      connect from SOURCE, send nothing, read until the server closes or WAIT
      seconds pass; prints CLOSED after=SECONDS or OPEN after=SECONDS
  conn_probe.py send SERVER WAIT stanza BYTES | nesting DEPTH | attrs N
      STARTTLS (the certificate is not checked), the stream header again,
      then one element of BYTES bytes (or DEPTH nested elements, or one
      element with N attributes), before
      authentication; read until close or WAIT seconds; prints
      ERROR=condition|none CLOSED=yes|no TEXT=text|-
  conn_probe.py hold SERVER SOURCE N TRIGGER TIMEOUT
      open N connections from SOURCE, print HELD=N (those still open after
      0.5 s), keep them until the file TRIGGER exists (or TIMEOUT seconds)
  conn_probe.py silent ADDR:PORT TRIGGER TIMEOUT
      a server that accepts connections and never answers (a hung backend),
      until the file TRIGGER exists (or TIMEOUT seconds); prints LISTENING

Exit 0, or 2 on a usage error.
"""
import os
import re
import socket
import ssl
import sys
import time

HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' "
       "version='1.0'>").encode()


def connect(server, source):
    host, _, port = server.rpartition(':')
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source != '-':
        s.bind((source, 0))
    s.settimeout(10)
    s.connect((host, int(port)))
    return s


def read_until_close(s, wait):
    """(bytes read, closed?) within wait seconds."""
    buf, end = b'', time.monotonic() + wait
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return buf, False
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return buf, False
        except OSError:
            return buf, True
        if not d:
            return buf, True
        buf += d


def idle(server, source, wait):
    t0 = time.monotonic()
    s = connect(server, source)
    _, closed = read_until_close(s, wait)
    print('%s after=%.2f' % ('CLOSED' if closed else 'OPEN', time.monotonic() - t0))


def read_until(s, pattern, wait):
    buf, end = b'', time.monotonic() + wait
    while not re.search(pattern, buf):
        s.settimeout(max(0.01, end - time.monotonic()))
        d = s.recv(65536)
        if not d:
            raise OSError('closed before %r' % pattern)
        buf += d
    return buf


def send(server, wait, kind, n):
    s = connect(server, '-')
    s.sendall(HDR)
    read_until(s, rb'</stream:features>|</features>', 10)
    s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    read_until(s, rb'<proceed', 10)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s, server_hostname='example.test')
    s.sendall(HDR)
    read_until(s, rb'</stream:features>|</features>', 10)
    if kind == 'stanza':
        payload = b"<x xmlns='urn:example'>" + b'A' * n + b'</x>'
    elif kind == 'attrs':
        payload = b'<x ' + b' '.join(b"a%d='1'" % i for i in range(n)) + b'/>'
    else:
        payload = b'<a>' * n + b'</a>' * n
    try:
        s.sendall(payload)
    except OSError:
        pass
    buf, closed = read_until_close(s, wait)
    m = re.search(rb'<stream:error><([a-z-]+)', buf) or re.search(
        rb"<error xmlns='http://etherx.jabber.org/streams'><([a-z-]+)", buf)
    t = re.search(rb'<text[^>]*>([^<]*)</text>', buf)
    print('ERROR=%s CLOSED=%s TEXT=%s' % (m.group(1).decode() if m else 'none',
                                          'yes' if closed else 'no',
                                          t.group(1).decode().replace(' ', '_') if t else '-'))


def hold(server, source, n, trigger, timeout):
    socks = [connect(server, source) for _ in range(n)]
    time.sleep(0.5)
    held = 0
    for s in socks:
        s.setblocking(False)
        try:
            d = s.recv(1)
            held += 0 if d == b'' else 1
        except BlockingIOError:
            held += 1
        except OSError:
            pass
    print('HELD=%d' % held, flush=True)
    end = time.monotonic() + timeout
    while not os.path.exists(trigger) and time.monotonic() < end:
        time.sleep(0.05)
    for s in socks:
        s.close()


def silent(addr, trigger, timeout):
    host, _, port = addr.rpartition(':')
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(64)
    ls.settimeout(0.05)
    print('LISTENING', flush=True)
    held, end = [], time.monotonic() + timeout
    while not os.path.exists(trigger) and time.monotonic() < end:
        try:
            held.append(ls.accept()[0])
        except socket.timeout:
            pass
    for s in held:
        s.close()


def main(a):
    if len(a) == 4 and a[0] == 'idle':
        idle(a[1], a[2], float(a[3]))
    elif len(a) == 5 and a[0] == 'send' and a[3] in ('stanza', 'nesting', 'attrs'):
        send(a[1], float(a[2]), a[3], int(a[4]))
    elif len(a) == 4 and a[0] == 'silent':
        silent(a[1], a[2], float(a[3]))
    elif len(a) == 6 and a[0] == 'hold':
        hold(a[1], a[2], int(a[3]), a[4], float(a[5]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
