#!/usr/bin/python3
"""preauth_hold.py SERVER: holds idle, unauthenticated TCP connections to an
XMPP server (no byte sent), driven by commands on stdin, one a line, each
answered by one line on stdout:

  open K   open K more connections, one after the other; a second later,
           see which the server closed at once
           -> OPENED k=K held=H closed=C total_held=T
  close    close every held connection
           -> CLOSED n=N
  quit     (or end of input) close everything and exit

For t/e2e-preauth.t: the pre-auth cap holds these while users log in."""
import resource
import selectors
import socket
import sys
import time


def main():
    host, _, port = sys.argv[1].rpartition(':')
    addr = (host.strip('[]'), int(port))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held = []
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == 'open':
            new = []
            for _ in range(int(words[1])):
                s = socket.socket(socket.AF_INET6 if ':' in addr[0] else socket.AF_INET)
                s.settimeout(5)
                try:
                    s.connect(addr)
                except OSError:
                    s.close()
                    continue
                s.setblocking(False)
                new.append(s)
            time.sleep(1.0)
            sel = selectors.DefaultSelector()
            for s in new:
                sel.register(s, selectors.EVENT_READ)
            closed = set()
            for key, _ in sel.select(timeout=0.2):
                try:
                    if not key.fileobj.recv(4096):
                        closed.add(key.fileobj)
                except OSError:
                    closed.add(key.fileobj)
            sel.close()
            for s in closed:
                s.close()
            kept = [s for s in new if s not in closed]
            held += kept
            print('OPENED k=%d held=%d closed=%d total_held=%d' % (
                len(new), len(kept), len(closed), len(held)), flush=True)
        elif words[0] == 'close':
            for s in held:
                s.close()
            print('CLOSED n=%d' % len(held), flush=True)
            held = []
        elif words[0] == 'quit':
            break
    for s in held:
        s.close()


if __name__ == '__main__':
    main()
