#!/usr/bin/python3
"""fed_send.py - one user sends messages to remote JIDs and reports bounces.

  /usr/bin/python3 t/lib/fed_send.py --jid alice@a.test --password PW \\
      --server 127.0.0.11:5222 [--cafile A.pem] [--to bob@nowhere.test]... \\
      [--echo j.test/echo]... [--ping e.test]... [--timeout 20]

Logs in (slixmpp, STARTTLS, the server's certificate checked against the CA
file), sends initial presence, then one chat message with a unique body to
each --to and --echo, and waits until each --to has bounced (a message of
type error from that JID) and each --echo has answered with the same body
(jabberd2's echo module), and each --ping (XEP-0199, to a server: ejabberd's
mod_ping) has answered, or the timeout. Prints:
  LOGIN jid=alice@a.test/r
  SENT to=bob@nowhere.test body=...
  BOUNCE from=bob@nowhere.test type=cancel condition=remote-server-not-found text=DNS:_no_server...
  ECHO from=j.test/echo body=...
  PONG from=e.test seconds=0.2          (or PING-FAILED from=e.test condition=...)
  RESULT=bounced n=1 seconds=0.4       (every --to bounced, every --echo answered)
  RESULT=timeout bounced=0 echoed=0 seconds=20.0
Spaces in the text are printed as '_'. Exit status: 0 when every --to
bounced and every --echo answered, 1 otherwise (timeout), 2 when the login
failed, 64 usage.
"""
import argparse
import asyncio
import logging
import os
import sys
import time
import xml.etree.ElementTree as ET

import slixmpp


class User(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        if cafile:
            self.ca_certs = cafile
        self.ready = asyncio.get_event_loop().create_future()
        self.bounced = {}
        self.echoed = {}
        self.got = asyncio.Event()
        self.add_event_handler('session_start', self._start)
        for ev in ('failed_auth', 'connection_failed', 'disconnected'):
            self.add_event_handler(ev, self._fail(ev))
        self.add_event_handler('message', self._message)
        self.add_event_handler('message_error', self._message)

    def _fail(self, why):
        def handler(_ev):
            if not self.ready.done():
                self.ready.set_result(why)
        return handler

    async def _start(self, _ev):
        self.send_presence()
        print('LOGIN jid=%s' % self.boundjid.full, flush=True)
        if not self.ready.done():
            self.ready.set_result('ok')

    def _message(self, msg):
        if msg['type'] != 'error':
            if msg['body']:
                print('ECHO from=%s body=%s' % (msg['from'], msg['body']), flush=True)
                self.echoed[(str(msg['from']), msg['body'])] = msg
                self.got.set()
            return
        err = msg['error']
        if msg['from'].bare in self.bounced:
            return  # the same bounce through both events
        cond = err['condition']
        if not cond:  # a condition slixmpp does not know (policy-violation, ...)
            xe = msg.xml.find('{jabber:client}error')
            for c in (list(xe) if xe is not None else []):
                if c.tag.startswith('{urn:ietf:params:xml:ns:xmpp-stanzas}') and not c.tag.endswith('}text'):
                    cond = c.tag.split('}', 1)[1]
        print('BOUNCE from=%s type=%s condition=%s text=%s' % (
            msg['from'], err['type'] or '-', cond or '-',
            (err['text'] or '-').replace(' ', '_')), flush=True)
        self.bounced[msg['from'].bare] = msg
        self.got.set()


async def run(a):
    u = User(a.jid, a.password, a.cafile)
    t0 = time.monotonic()
    host, _, port = a.server.rpartition(':')
    u.connect((host.strip('[]'), int(port)), force_starttls=True)
    try:
        state = await asyncio.wait_for(asyncio.shield(u.ready), a.timeout)
    except asyncio.TimeoutError:
        state = 'timeout'
    if state != 'ok':
        print('RESULT=login-failed reason=%s' % state, flush=True)
        return 2, u
    tag = '%d-%d' % (os.getpid(), time.time_ns())
    for to in a.to:
        u.send_message(mto=to, mbody='bounce-me-' + tag, mtype='chat')
        print('SENT to=%s body=bounce-me-%s' % (to, tag), flush=True)
    for to in a.echo:
        u.send_message(mto=to, mbody='echo-me-' + tag, mtype='chat')
        print('SENT to=%s body=echo-me-%s' % (to, tag), flush=True)
    end = t0 + a.timeout
    pings = []
    for to in a.ping:
        iq = u.make_iq_get(ito=to)
        iq.xml.append(ET.Element('{urn:xmpp:ping}ping'))
        print('SENT ping to=%s' % to, flush=True)
        pings.append((to, time.monotonic(), asyncio.ensure_future(iq.send(timeout=a.timeout))))
    for to, t1, fut in pings:
        try:
            await fut
            print('PONG from=%s seconds=%.1f' % (to, time.monotonic() - t1), flush=True)
        except slixmpp.exceptions.IqError as e:
            print('PING-FAILED from=%s condition=%s text=%s' % (
                to, e.iq['error']['condition'] or '-',
                (e.iq['error']['text'] or '-').replace(' ', '_')), flush=True)
            return 1, u
        except slixmpp.exceptions.IqTimeout:
            print('PING-FAILED from=%s condition=timeout' % to, flush=True)
            return 1, u

    def done():
        return all(to in u.bounced for to in a.to) and \
            all((to, 'echo-me-' + tag) in u.echoed for to in a.echo)
    while not done():
        left = end - time.monotonic()
        if left <= 0 or any(to in u.bounced for to in a.echo):
            print('RESULT=%s bounced=%d echoed=%d seconds=%.1f' % (
                'timeout' if left <= 0 else 'fail', len(u.bounced), len(u.echoed),
                time.monotonic() - t0), flush=True)
            return 1, u
        u.got.clear()
        try:
            await asyncio.wait_for(u.got.wait(), min(left, 0.5))
        except asyncio.TimeoutError:
            pass
    print('RESULT=%s n=%d seconds=%.1f' % ('bounced' if a.to else 'echoed' if a.echo else 'ponged',
                                           len(a.to) + len(a.echo) + len(a.ping),
                                           time.monotonic() - t0), flush=True)
    return 0, u


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--jid', required=True)
    p.add_argument('--password', required=True)
    p.add_argument('--server', required=True, help='HOST:PORT (STARTTLS)')
    p.add_argument('--cafile')
    p.add_argument('--to', action='append', default=[], help='a remote JID that bounces (repeatable)')
    p.add_argument('--echo', action='append', default=[], help='a remote JID that echoes (repeatable)')
    p.add_argument('--ping', action='append', default=[], help='a remote server to ping (repeatable)')
    p.add_argument('--timeout', type=float, default=20)
    p.add_argument('--debug', action='store_true')
    try:
        a = p.parse_args()
    except SystemExit as e:
        return 64 if e.code else 0
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.CRITICAL,
                        format='%(levelname)s %(message)s', stream=sys.stderr)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    rc, u = loop.run_until_complete(run(a))
    u.disconnect(wait=0.5)
    loop.run_until_complete(asyncio.sleep(0.3))
    return rc


if __name__ == '__main__':
    sys.exit(main())
