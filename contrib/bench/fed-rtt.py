#!/usr/bin/python3
"""fed-rtt.py - message round trips between a remote domain's user and
users of a routed pool, one message in flight at a time (contrib/bench/fed-rtt).

  fed-rtt.py --remote JID=HOST:PORT=CA --password PW --count N JID=HOST:PORT=CA...

The remote user sends each pool user N chat messages, one at a time; the
pool user answers each at once; the round trip (remote -> pool user -> remote,
one clock) is timed. Prints per pool user:
  RTT jid=J n=N p50_us=.. p90_us=.. p99_us=.. lost=L
"""
import argparse
import asyncio
import logging
import sys
import time

import slixmpp


class User(slixmpp.ClientXMPP):
    def __init__(self, jid, pw, ca, echo):
        super().__init__(jid + '/bench', pw)
        self.ca_certs = ca
        self.echo = echo
        self.ready = asyncio.get_event_loop().create_future()
        self.waiting = {}
        self.add_event_handler('session_start', self._start)
        self.add_event_handler('failed_auth', lambda e: self._done('auth-failed'))
        self.add_event_handler('message', self._message)

    def _done(self, why):
        if not self.ready.done():
            self.ready.set_result(why)

    async def _start(self, _ev):
        self.send_presence()
        self._done('ok')

    def _message(self, msg):
        if msg['type'] not in ('chat', 'normal'):
            return
        if self.echo:
            self.send_message(mto=msg['from'], mbody='re:' + msg['body'], mtype='chat')
            return
        f = self.waiting.pop(msg['body'][3:], None)
        if f is not None and not f.done():
            f.set_result(time.perf_counter_ns())


def spec(s):
    jid, server, ca = s.split('=', 2)
    host, _, port = server.rpartition(':')
    return jid, host, int(port), ca


async def run(a):
    rj, rh, rp, rca = spec(a.remote)
    remote = User(rj, a.password, rca, False)
    remote.connect((rh, rp), force_starttls=True)
    users = []
    for s in a.users:
        j, h, p, ca = spec(s)
        u = User(j, a.password, ca, True)
        u.connect((h, p), force_starttls=True)
        users.append(u)
    states = await asyncio.wait_for(asyncio.gather(remote.ready, *(u.ready for u in users)), 30)
    if any(s != 'ok' for s in states):
        print('LOGIN-FAILED %s' % states, flush=True)
        return 2
    await asyncio.sleep(1)
    loop = asyncio.get_event_loop()
    for u in users:
        rtts, lost = [], 0
        for i in range(a.count + a.warmup):
            body = 'b%d-%d' % (i, time.time_ns())
            f = loop.create_future()
            remote.waiting[body] = f
            t0 = time.perf_counter_ns()
            remote.send_message(mto=u.boundjid.bare, mbody=body, mtype='chat')
            try:
                t1 = await asyncio.wait_for(f, 5)
            except asyncio.TimeoutError:
                lost += 1
                continue
            if i >= a.warmup:
                rtts.append((t1 - t0) / 1000.0)
        rtts.sort()
        q = lambda p: rtts[min(len(rtts) - 1, int(p * len(rtts)))] if rtts else 0
        print('RTT jid=%s n=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f lost=%d' %
              (u.boundjid.bare, len(rtts), q(0.5), q(0.9), q(0.99), lost), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--remote', required=True)
    p.add_argument('--password', required=True)
    p.add_argument('--count', type=int, default=300)
    p.add_argument('--warmup', type=int, default=20)
    p.add_argument('users', nargs='+')
    a = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(run(a))


if __name__ == '__main__':
    sys.exit(main())
