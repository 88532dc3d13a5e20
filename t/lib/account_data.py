#!/usr/bin/python3
"""account_data.py - what a backend keeps for a user, seen through xedge
(slixmpp 1.8.3), for t/e2e-purge.t.

  account_data.py seed  --jid J --password P --server H:P --cafile CA --contact C --token T
      adds C to J's roster and sets J's vCard (FN = T); prints SEED ok
  account_data.py send  --jid J --password P --server H:P --cafile CA --to U --token T
      sends U a chat message with body T (U being offline: stored); prints SENT ok
  account_data.py check --jid J --password P --server H:P --cafile CA [--presence]
      prints CHECK roster=N vcard=FN|- offline=N: the roster items, the vCard's
      FN, and (with --presence: initial presence, then 2 s of waiting) the
      messages delivered from offline storage

Any failure: RESULT=error reason=... and exit 1 (a login failure too).
"""
import argparse
import asyncio
import logging
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


class Client(slixmpp.ClientXMPP):
    def __init__(self, a):
        super().__init__(a.jid, a.password)
        self.a = a
        self.out = None
        self.messages = []
        self.register_plugin('xep_0030')
        self.register_plugin('xep_0054')
        self.add_event_handler('session_start', self.start)
        self.add_event_handler('message', self.on_message)
        self.add_event_handler('failed_auth', lambda *_: self.finish('RESULT=error reason=auth'))
        self.add_event_handler('disconnected', lambda *_: self.finish('RESULT=error reason=disconnected'))

    def finish(self, line):
        if self.out is None:
            self.out = line
        self.disconnect()

    def on_message(self, msg):
        if msg['type'] in ('chat', 'normal') and msg['body']:
            self.messages.append(msg['body'])

    async def start(self, _):
        a = self.a
        try:
            if a.mode == 'seed':
                await self.update_roster(a.contact, name='purge-test', subscription='none')
                vc = self['xep_0054'].make_vcard()
                vc['FN'] = a.token
                await self['xep_0054'].publish_vcard(vc)
                self.finish('SEED ok')
            elif a.mode == 'send':
                self.send_message(mto=a.to, mbody=a.token, mtype='chat')
                await asyncio.sleep(0.5)
                self.finish('SENT ok')
            else:
                if a.presence:
                    self.send_presence()
                    await asyncio.sleep(2)
                roster = await self.get_roster()
                items = len(roster['roster']['items'])
                fn = '-'
                try:
                    r = await self['xep_0054'].get_vcard(self.boundjid.bare, local=False, cached=False)
                    fn = r['vcard_temp']['FN'] or '-'
                except IqError:
                    fn = '-'
                self.finish('CHECK roster=%d vcard=%s offline=%d' % (items, fn.replace(' ', '_'), len(self.messages)))
        except (IqError, IqTimeout) as e:
            self.finish('RESULT=error reason=%s' % type(e).__name__)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['seed', 'send', 'check'])
    p.add_argument('--jid', required=True)
    p.add_argument('--password', required=True)
    p.add_argument('--server', required=True)
    p.add_argument('--cafile', required=True)
    p.add_argument('--contact')
    p.add_argument('--to')
    p.add_argument('--token', default='')
    p.add_argument('--presence', action='store_true')
    p.add_argument('--timeout', type=float, default=20)
    a = p.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    c = Client(a)
    ctx = ssl.create_default_context(cafile=a.cafile)
    c.ssl_context = ctx
    host, port = a.server.rsplit(':', 1)
    c.connect(address=(host, int(port)), force_starttls=True, disable_starttls=False)
    loop = asyncio.get_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(c.disconnected, a.timeout))
    except asyncio.TimeoutError:
        c.out = c.out or 'RESULT=error reason=timeout'
    print(c.out or 'RESULT=error reason=none', flush=True)
    return 0 if c.out and not c.out.startswith('RESULT=error') else 1


if __name__ == '__main__':
    sys.exit(main())
