#!/usr/bin/python3
"""many_sessions.py: many c2s sessions held in one process, for the reload
test (t/e2e-reload.t), through raw_client.Session.

  hold: open --count sessions (PLAIN, spread over --users, resources r0,
        r1, ...; --workers at a time), print 'READY n' (n: how many are up),
        wait until the file --trigger exists, then ping the domain on each
        and print 'ALIVE ok/total' and one 'DEAD i how' line per session that
        did not answer; exit 0 when all answered.
  fingerprint: connect (no verification), print the SHA-256 of the
        certificate the server presented, and close.

Bounded: every wait has a deadline (--timeout for the whole run)."""
import argparse
import concurrent.futures
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_client  # noqa: E402


def quiet(_line):
    pass


def open_one(args, i):
    user = args.users[i % len(args.users)]
    s = raw_client.Session(user, args.server, 'starttls', args.cafile, False, 20, log=quiet)
    s.connect()
    if s.auth('PLAIN', args.password)[0] != 'success':
        raise raw_client.ProtocolError('auth failed')
    s.restart_and_bind('r%d' % i)
    return s


def ping(s):
    s.deadline = time.monotonic() + 15
    s.send(s.ping_xml())
    while True:
        el = s.recv()
        if el is None:
            raise raw_client.Closed('stream-end')
        if raw_client.local(el.tag) == 'iq' and el.get('id') == 'ping_1':
            if el.get('type') != 'result':
                raise raw_client.ProtocolError('ping: %s' % raw_client.serialize(el))
            return


def hold(args):
    end = time.monotonic() + args.timeout
    sessions = [None] * args.count
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as ex:
        futs = {ex.submit(open_one, args, i): i for i in range(args.count)}
        for f in concurrent.futures.as_completed(futs):
            i = futs[f]
            try:
                sessions[i] = f.result()
            except Exception as e:  # noqa: BLE001 (reported, counted)
                print('OPENFAIL %d %r' % (i, e), flush=True)
    up = sum(1 for s in sessions if s is not None)
    print('READY %d' % up, flush=True)
    while not os.path.exists(args.trigger):
        if time.monotonic() > end:
            print('TIMEOUT waiting for %s' % args.trigger, flush=True)
            return 1
        time.sleep(0.1)
    ok = 0
    for i, s in enumerate(sessions):
        if s is None:
            continue
        try:
            ping(s)
            ok += 1
        except Exception as e:  # noqa: BLE001
            how = e.how if isinstance(e, raw_client.Closed) else type(e).__name__
            print('DEAD %d %s' % (i, how), flush=True)
    print('ALIVE %d/%d' % (ok, args.count), flush=True)
    for s in sessions:
        if s is not None:
            try:
                s.sock.close()
            except OSError:
                pass
    return 0 if ok == args.count else 1


def fingerprint(args):
    s = raw_client.Session(args.users[0], args.server, args.mode, None, True, args.timeout,
                           log=quiet)
    s.connect()
    der = s.sock.getpeercert(binary_form=True)
    print(hashlib.sha256(der).hexdigest(), flush=True)
    s.sock.close()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('what', choices=['hold', 'fingerprint'])
    p.add_argument('--server', required=True, help='host:port')
    p.add_argument('--mode', choices=['starttls', 'direct'], default='starttls')
    p.add_argument('--cafile')
    p.add_argument('--users', default='user@example.test', help='bare JIDs, comma-separated')
    p.add_argument('--password', default='')
    p.add_argument('--count', type=int, default=200)
    p.add_argument('--workers', type=int, default=8)
    p.add_argument('--trigger', help='hold: ping once this file exists')
    p.add_argument('--timeout', type=float, default=60.0)
    args = p.parse_args()
    args.users = args.users.split(',')
    if args.what == 'hold':
        if not args.trigger:
            p.error('hold needs --trigger')
        return hold(args)
    return fingerprint(args)


if __name__ == '__main__':
    sys.exit(main())
