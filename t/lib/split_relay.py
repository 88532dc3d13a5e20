#!/usr/bin/python3
"""split_relay.py LISTEN_PORT TARGET_PORT MARKER PAUSE [SECONDS]: a TCP relay on
127.0.0.1:LISTEN_PORT (or a unix socket, when LISTEN_PORT is a path starting
with '/') to 127.0.0.1:TARGET_PORT (a real backend) that passes
every byte unchanged, except that when the target's bytes contain MARKER it
sends them up to the marker, waits PAUSE seconds, then sends the rest: the
client side sees one of the target's stanzas stop in the middle for a while.
Prints READY once listening; exits after SECONDS (default 60)."""
import socket
import sys
import threading
import time

listen, target, marker, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), float(sys.argv[4])
limit = float(sys.argv[5]) if len(sys.argv) > 5 else 60.0


def pump(src, dst, split):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            i = data.find(marker) if split else -1
            if i >= 0:
                dst.sendall(data[:i])
                print('SPLIT at %d' % i, flush=True)
                time.sleep(pause)
                dst.sendall(data[i:])
            else:
                dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


if listen.startswith('/'):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(listen)
else:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(('127.0.0.1', int(listen)))
ls.listen(16)
ls.settimeout(limit)
print('READY', flush=True)
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        c, _ = ls.accept()
    except socket.timeout:
        break
    t = socket.create_connection(('127.0.0.1', target))
    threading.Thread(target=pump, args=(c, t, False), daemon=True).start()
    threading.Thread(target=pump, args=(t, c, True), daemon=True).start()
