#!/usr/bin/python3
"""proxy_relay.py LISTEN_PORT TARGET_PORT [SECONDS]: a TCP relay on
127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT (a real backend) for a pool
with proxy_protocol = true: each connection must start with a PROXY v2
header (haproxy's proxy-protocol.txt), which it reads and checks, prints
  PROXY version=2 command=PROXY|LOCAL src=ADDR:PORT dst=ADDR:PORT
(or BAD reason=... and closes), then relays the rest, unchanged, both ways.
Prints READY once listening; exits after SECONDS (default 60)."""
import socket
import struct
import sys
import threading
import time

SIG = b'\r\n\r\n\x00\r\nQUIT\n'
port, target = int(sys.argv[1]), int(sys.argv[2])
limit = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0


def read_exact(s, n):
    b = b''
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError('eof after %d bytes of the header' % len(b))
        b += d
    return b


def header(c):
    h = read_exact(c, 16)
    if h[:12] != SIG:
        raise ValueError('no v2 signature: %r' % h)
    if h[12] >> 4 != 2 or h[12] & 15 > 1:
        raise ValueError('version/command 0x%02x' % h[12])
    body = read_exact(c, struct.unpack('>H', h[14:16])[0])
    if h[12] & 15 == 0:
        return 'command=LOCAL'
    fam = h[13]
    if fam == 0x11 and len(body) >= 12:
        src = '%s:%d' % (socket.inet_ntop(socket.AF_INET, body[0:4]), struct.unpack('>H', body[8:10])[0])
        dst = '%s:%d' % (socket.inet_ntop(socket.AF_INET, body[4:8]), struct.unpack('>H', body[10:12])[0])
    elif fam == 0x21 and len(body) >= 36:
        src = '[%s]:%d' % (socket.inet_ntop(socket.AF_INET6, body[0:16]), struct.unpack('>H', body[32:34])[0])
        dst = '[%s]:%d' % (socket.inet_ntop(socket.AF_INET6, body[16:32]), struct.unpack('>H', body[34:36])[0])
    else:
        raise ValueError('family 0x%02x with %d bytes' % (fam, len(body)))
    return 'command=PROXY src=%s dst=%s' % (src, dst)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(c):
    c.settimeout(10)
    try:
        what = header(c)
    except (ValueError, EOFError, OSError) as e:
        print('BAD reason=%s' % str(e).replace(' ', '_'), flush=True)
        c.close()
        return
    print('PROXY version=2 %s' % what, flush=True)
    c.settimeout(None)
    t = socket.create_connection(('127.0.0.1', target))
    threading.Thread(target=pump, args=(c, t), daemon=True).start()
    pump(t, c)


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(('127.0.0.1', port))
ls.listen(16)
ls.settimeout(limit)
print('READY', flush=True)
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        c, _ = ls.accept()
    except socket.timeout:
        break
    threading.Thread(target=serve, args=(c,), daemon=True).start()
