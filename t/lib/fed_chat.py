#!/usr/bin/python3
"""fed_chat.py - two users on two servers message each other (federation).

  /usr/bin/python3 t/lib/fed_chat.py \\
      --a alice@a.test --a-password PW --a-server 127.0.0.11:5222 --a-cafile A.pem \\
      --b bob@b.test   --b-password PW --b-server 127.0.0.12:5222 --b-cafile B.pem \\
      [--timeout 20] [--tag TEXT]

Both log in (slixmpp, STARTTLS, the server's certificate checked against its
CA file), send initial presence, then each sends the other (bare JID) one
chat message with a unique body, at the same time; both wait until the
other's message arrives. Prints:
  LOGIN who=a jid=alice@a.test/r mech=SCRAM-SHA-1
  SENT from=alice@a.test to=bob@b.test body=...
  RECEIVED to=bob@b.test from=alice@a.test/r body=...
  ERROR to=alice@a.test from=b.test condition=remote-server-not-found   (a bounce)
  RESULT=ok a2b=1 b2a=1 seconds=0.6
  RESULT=fail a2b=1 b2a=0 reason=timeout seconds=20.0
Exit status: 0 when both messages arrived, 1 when one did not (or bounced),
2 when a login failed, 64 usage.
"""
import argparse
import asyncio
import logging
import os
import sys
import time

import slixmpp


class User(slixmpp.ClientXMPP):
    def __init__(self, who, jid, password, cafile):
        super().__init__(jid, password)
        self.who = who
        if cafile:
            self.ca_certs = cafile
        self.ready = asyncio.get_event_loop().create_future()
        self.inbox = []
        self.errors = []
        self.got = asyncio.Event()
        self.add_event_handler('session_start', self._start)
        self.add_event_handler('failed_auth', self._fail('auth-failed'))
        self.add_event_handler('connection_failed', self._fail('connection-failed'))
        self.add_event_handler('stream_error', lambda e: self._fail('stream-error:' + e['condition'])(e))
        self.add_event_handler('disconnected', self._fail('disconnected'))
        self.add_event_handler('message', self._message)

    def _fail(self, why):
        def handler(_ev):
            if not self.ready.done():
                self.ready.set_result(why)
        return handler

    async def _start(self, _ev):
        self.send_presence()
        mech = getattr(self.plugin['feature_mechanisms'], 'mech', None)
        print('LOGIN who=%s jid=%s mech=%s' % (self.who, self.boundjid.full,
                                                getattr(mech, 'name', '?')), flush=True)
        if not self.ready.done():
            self.ready.set_result('ok')

    def _message(self, msg):
        if msg['type'] == 'error':
            self.errors.append(msg)
            print('ERROR to=%s from=%s condition=%s text=%s' % (
                self.boundjid.bare, msg['from'], msg['error']['condition'],
                (msg['error']['text'] or '-').replace(' ', '_')), flush=True)
            self.got.set()
            return
        if msg['body']:
            self.inbox.append(msg)
            print('RECEIVED to=%s from=%s body=%s' % (self.boundjid.bare, msg['from'], msg['body']),
                  flush=True)
            self.got.set()


async def run(a):
    users = [User('a', a.a, a.a_password, a.a_cafile), User('b', a.b, a.b_password, a.b_cafile)]
    t0 = time.monotonic()
    for u, server in zip(users, (a.a_server, a.b_server)):
        host, _, port = server.rpartition(':')
        u.connect((host.strip('[]'), int(port)), force_starttls=True)
    try:
        states = await asyncio.wait_for(asyncio.gather(*(u.ready for u in users)), a.timeout)
    except asyncio.TimeoutError:
        states = [u.ready.result() if u.ready.done() else 'timeout' for u in users]
    if states != ['ok', 'ok']:
        print('RESULT=login-failed a=%s b=%s' % tuple(states), flush=True)
        return 2, users
    tag = a.tag or '%d-%d' % (os.getpid(), time.time_ns())
    bodies = {'a': 'a2b-' + tag, 'b': 'b2a-' + tag}
    src = {'a': users[0], 'b': users[1]}
    for who, dst in (('a', users[1]), ('b', users[0])):
        src[who].send_message(mto=dst.boundjid.bare, mbody=bodies[who], mtype='chat')
        print('SENT from=%s to=%s body=%s' % (src[who].boundjid.bare, dst.boundjid.bare, bodies[who]),
              flush=True)

    def arrived(dst, sender, body):
        return any(m['body'] == body and m['from'].bare == sender.boundjid.bare for m in dst.inbox)

    def done():
        return (arrived(users[1], users[0], bodies['a']) and arrived(users[0], users[1], bodies['b'])) \
            or any(u.errors for u in users)

    end = t0 + a.timeout
    reason = 'bounced'
    while not done():
        left = end - time.monotonic()
        if left <= 0:
            reason = 'timeout'
            break
        for u in users:
            u.got.clear()
        waits = [asyncio.ensure_future(u.got.wait()) for u in users]
        await asyncio.wait(waits, timeout=min(left, 0.5), return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
    a2b = int(arrived(users[1], users[0], bodies['a']))
    b2a = int(arrived(users[0], users[1], bodies['b']))
    secs = time.monotonic() - t0
    if a2b and b2a:
        print('RESULT=ok a2b=1 b2a=1 seconds=%.1f' % secs, flush=True)
        return 0, users
    print('RESULT=fail a2b=%d b2a=%d reason=%s seconds=%.1f' % (a2b, b2a, reason, secs), flush=True)
    return 1, users


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for w in ('a', 'b'):
        p.add_argument('--' + w, required=True, help='JID')
        p.add_argument('--%s-password' % w, required=True)
        p.add_argument('--%s-server' % w, required=True, help='HOST:PORT (STARTTLS)')
        p.add_argument('--%s-cafile' % w, help="CA file for the server's certificate")
    p.add_argument('--timeout', type=float, default=20)
    p.add_argument('--tag', help='body suffix (default: pid and time)')
    p.add_argument('--debug', action='store_true')
    try:
        a = p.parse_args()
    except SystemExit as e:
        return 64 if e.code else 0
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.CRITICAL,
                        format='%(levelname)s %(message)s', stream=sys.stderr)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    rc, users = loop.run_until_complete(run(a))
    for u in users:
        u.disconnect(wait=0.5)
    loop.run_until_complete(asyncio.sleep(0.3))
    return rc


if __name__ == '__main__':
    sys.exit(main())
