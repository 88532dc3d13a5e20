#!/usr/bin/python3
"""flood.py SERVER CAFILE PASSWORD XEDGE_PID COUNT SIZE BACKEND_PORT -- backpressure probe.

alice logs in and stops reading; bob sends her COUNT messages of SIZE bytes
through xedge and the backend. While alice does not read, xedge must stop
reading the backend (high water mark) instead of buffering: its RSS is
sampled. Then alice reads everything: every message must arrive, in order,
intact. Prints KEY=value lines, among them XEDGE_BACKEND_UNREAD: the most
bytes left unread in xedge's receive queue of a backend connection while the
reader stalls (from `ss`): evidence that xedge stopped reading the backend.
"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_client  # noqa: E402


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return -1


def backend_unread(port):
    """Largest Recv-Q among established connections to the backend port
    (xedge's side of its backend links)."""
    out = subprocess.run(['ss', '-tnH', 'state', 'established', '( dport = :%d )' % port],
                         capture_output=True, text=True).stdout
    best = 0
    for line in out.splitlines():
        f = line.split()
        if f and f[0].isdigit():
            best = max(best, int(f[0]))
    return best


def main():
    server, cafile, pw, pid, count, size, bport = sys.argv[1:8]
    pid, count, size, bport = int(pid), int(count), int(size), int(bport)
    quiet = lambda _l: None  # noqa: E731
    alice = raw_client.Session('alice@example.test', server, 'starttls', cafile, False, 120, log=quiet)
    alice.connect()
    assert alice.auth('PLAIN', pw)[0] == 'success'
    alice.restart_and_bind('slow')
    bob = raw_client.Session('bob@example.test', server, 'starttls', cafile, False, 120, log=quiet)
    bob.connect()
    assert bob.auth('PLAIN', pw)[0] == 'success'
    bob.restart_and_bind('fast')

    before = rss_kib(pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.05)
    threading.Thread(target=sample, daemon=True).start()

    pad = 'x' * size
    t0 = time.monotonic()
    for i in range(count):
        bob.send("<message to='alice@example.test/slow' type='chat' id='m%d'><body>%d:%s</body></message>"
                 % (i, i, pad))
    sent = time.monotonic() - t0
    time.sleep(2.0)  # let everything that can move, move
    stalled = rss_kib(pid)
    peak_stalled = peak[0]
    unread = backend_unread(bport)

    # now alice reads it all
    got, in_order, intact = 0, True, True
    while got < count:
        el = alice.recv()
        if el is None or raw_client.local(el.tag) != 'message':
            continue
        body = el.find('{jabber:client}body')
        n, _, rest = (body.text or '').partition(':')
        if int(n) != got:
            in_order = False
        if len(rest) != size:
            intact = False
        got += 1
    done.set()
    bob.send("<iq type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>")
    pong = False
    while True:
        el = bob.recv()
        if el is not None and el.get('id') == 'ping1':
            pong = el.get('type') == 'result'
            break
    alice.close()
    bob.close()
    print('SENT_BYTES=%d' % (count * size))
    print('SEND_S=%.2f' % sent)
    print('XEDGE_RSS_KIB_BEFORE=%d' % before)
    print('XEDGE_RSS_KIB_STALLED=%d' % stalled)
    print('XEDGE_RSS_KIB_PEAK=%d' % max(peak_stalled, peak[0]))
    print('XEDGE_BACKEND_UNREAD=%d' % unread)
    print('RECEIVED=%d' % got)
    print('IN_ORDER=%s' % ('yes' if in_order else 'no'))
    print('INTACT=%s' % ('yes' if intact else 'no'))
    print('BOB_PONG=%s' % ('yes' if pong else 'no'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
