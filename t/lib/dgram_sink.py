#!/usr/bin/python3
"""dgram_sink.py PATH OUT [SECONDS]: bind a unix datagram socket at PATH (a
syslog /dev/log, the journal's socket, a NOTIFY_SOCKET) and append each
datagram received to OUT, one per line, newlines inside shown as '|'.
Creates PATH.ready once bound; exits after SECONDS (default 60) or SIGTERM."""
import os
import signal
import socket
import sys
import time

path, out = sys.argv[1], sys.argv[2]
limit = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
open(path + ".ready", "w").close()
end = time.monotonic() + limit
with open(out, "a", buffering=1) as f:
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        f.write(data.decode("utf-8", "replace").rstrip("\n").replace("\n", "|") + "\n")
