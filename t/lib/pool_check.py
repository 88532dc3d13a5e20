#!/usr/bin/python3
"""pool_check.py SERVER CAFILE PASSWORD LOG SERVER_NAMES USERS...

Logs every user in twice (one after the other), then reads xedge's log: for
each user, which backend served each session. Prints one line per user:
  USER jid first=<backend> second=<backend> expected=<backend>
where expected is computed here, independently, from the documented
algorithm (weighted rendezvous hashing, all weights 1):
  u = (first 8 bytes of SHA-256(server_name NUL jid) >> 11) + 0.5) / 2^53
  score = weight / -ln(u); the highest score wins.
"""
import hashlib
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_client  # noqa: E402


def expected(servers, jid):
    best, best_score = None, -1.0
    for name in servers:
        h = hashlib.sha256(name.encode() + b'\0' + jid.encode()).digest()
        v = int.from_bytes(h[:8], 'big') >> 11
        u = (v + 0.5) / 9007199254740992.0
        score = 1.0 / -math.log(u)
        if score > best_score:
            best, best_score = name, score
    return best


def main():
    server, cafile, pw, log, names = sys.argv[1:6]
    users = sys.argv[6:]
    servers = names.split(',')
    for _ in range(2):
        for jid in users:
            s = raw_client.Session(jid, server, 'starttls', cafile, False, 20, log=lambda _l: None)
            s.connect()
            assert s.auth('SCRAM-SHA-256', pw)[0] == 'success', jid
            s.restart_and_bind('pool')
            s.close()
    seen = {}
    with open(log) as f:
        for line in f:
            m = re.search(r'event=session .*jid=(\S+) .*backend=(\S+)', line)
            if m:
                seen.setdefault(m.group(1), []).append(m.group(2))
    for jid in users:
        got = seen.get(jid, []) + ['-', '-']
        print('USER %s first=%s second=%s expected=%s' % (jid, got[0], got[1], expected(servers, jid)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
