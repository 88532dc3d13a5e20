#!/usr/bin/python3
"""backends_check.py: helpers of t/e2e-backends.t.

  backends_check.py hash NAMES USERS...
      one line per user: "HASH jid server" (the rendezvous hash choice over the
      comma-separated server NAMES, weights 1; see pool_check.py)
  backends_check.py login SERVER CAFILE PASSWORD USERS...
      log every user in, one after the other, keeping each session open until
      all are done; one line per user: "USER jid ok" or "USER jid error=COND
      text=TEXT" (a stream error) or "USER jid fail=WHAT"
  backends_check.py spread SERVER CAFILE PASSWORD LOG NAME=WEIGHT,... USERS...
      log every user in (PLAIN), one after the other, each closed at once;
      then, from xedge's LOG, each user's backend against its weighted hash
      choice: "COUNT name n expected_share" lines, "MISMATCH n", "FAILED n"
  backends_check.py keep SERVER CAFILE PASSWORD JID FLAGFILE
      log in, print READY, wait (40 s at most) until FLAGFILE exists, then
      ping the domain and message ourselves: "PING ok" or "PING fail=WHAT"
"""
import hashlib
import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pool_check  # noqa: E402
import raw_client  # noqa: E402


def session(jid, server, cafile, pw):
    s = raw_client.Session(jid, server, 'starttls', cafile, False, 15, log=lambda _l: None)
    s.connect()
    if s.auth('SCRAM-SHA-256', pw)[0] != 'success':
        raise raw_client.ProtocolError('authentication failed')
    s.restart_and_bind('backends')
    return s


def weighted_choice(servers, jid):
    """The documented weighted rendezvous hashing; servers: [(name, weight)]."""
    best, best_score = None, -1.0
    for name, weight in servers:
        h = hashlib.sha256(name.encode() + b'\0' + jid.encode()).digest()
        u = ((int.from_bytes(h[:8], 'big') >> 11) + 0.5) / 9007199254740992.0
        score = weight / -math.log(u)
        if score > best_score:
            best, best_score = name, score
    return best


def spread(server, cafile, pw, log, spec, users):
    servers = [(n, int(w)) for n, w in (x.split('=') for x in spec.split(','))]
    failed = 0
    for jid in users:
        try:
            s = raw_client.Session(jid, server, 'starttls', cafile, False, 15, log=lambda _l: None)
            s.connect()
            if s.auth('PLAIN', pw)[0] != 'success':
                raise raw_client.ProtocolError('auth')
            s.restart_and_bind('spread')
            s.close()
        except Exception as e:  # noqa: BLE001 - counted, the test decides
            failed += 1
            print('FAIL %s %s' % (jid, e), flush=True)
    seen = {}
    with open(log) as f:
        for line in f:
            m = re.search(r'event=session .*jid=(\S+) .*backend=(\S+)', line)
            if m:
                seen[m.group(1)] = m.group(2)
    total = sum(w for _, w in servers)
    counts = {n: 0 for n, _ in servers}
    mismatch = 0
    for jid in users:
        got = seen.get(jid)
        if got in counts:
            counts[got] += 1
        if got != weighted_choice(servers, jid):
            mismatch += 1
    for n, w in servers:
        print('COUNT %s %d %.4f' % (n, counts[n], w / total))
    print('MISMATCH %d' % mismatch)
    print('FAILED %d' % failed)
    return 0


def main():
    mode = sys.argv[1]
    if mode == 'hash':
        names = sys.argv[2].split(',')
        for jid in sys.argv[3:]:
            print('HASH %s %s' % (jid, pool_check.expected(names, jid)))
        return 0
    server, cafile, pw = sys.argv[2:5]
    if mode == 'spread':
        return spread(server, cafile, pw, sys.argv[5], sys.argv[6], sys.argv[7:])
    if mode == 'login':
        open_ = []
        for jid in sys.argv[5:]:
            try:
                open_.append(session(jid, server, cafile, pw))
                print('USER %s ok' % jid, flush=True)
            except raw_client.StreamError as e:
                print('USER %s error=%s text=%s' % (jid, e.condition, (e.text or '-').replace(' ', '_')),
                      flush=True)
            except Exception as e:  # noqa: BLE001 - reported, the test decides
                print('USER %s fail=%s' % (jid, type(e).__name__), flush=True)
        for s in open_:
            s.close()
        return 0
    if mode == 'keep':
        jid, flag = sys.argv[5:7]
        s = session(jid, server, cafile, pw)
        print('READY', flush=True)
        end = time.monotonic() + 40
        while not os.path.exists(flag) and time.monotonic() < end:
            time.sleep(0.1)
        try:
            ping, message = s.echo(s.bound_jid)
            print('PING %s' % ('ok' if ping == 'ok' and message == 'ok' else 'fail=%s,%s' % (ping, message)))
        except Exception as e:  # noqa: BLE001
            print('PING fail=%s' % type(e).__name__)
        s.close()
        return 0
    return 2


if __name__ == '__main__':
    sys.exit(main())
