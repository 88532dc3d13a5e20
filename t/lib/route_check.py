#!/usr/bin/python3
"""route_check.py - users of one domain on several servers reach each other
(doc/pool-routing.md), with slixmpp clients through xedge.

  /usr/bin/python3 t/lib/route_check.py --server HOST:PORT --cafile CA \\
      --password PW [--timeout S] [--domain D=HOST:PORT=CA]...
      [--via JID=HOST:PORT]... PHASE JID...

--domain: the users of domain D log in at HOST:PORT (trusting CA) instead
(another domain federating with the pool: it joins its room, say).
--via: JID logs in at HOST:PORT (another xedge node of a cluster).

PHASE:
  matrix        every user logs in; every ordered pair exchanges a chat
                message to the bare JID and one to the full JID. Prints
                  MISSING from=A to=B kind=bare|full   (per lost message)
                  RESULT=ok|fail got=N want=M
  subscribe     pairs (1st,2nd), (3rd,4th)...: the first asks the second
                for a subscription; every user approves and subscribes
                back. Prints per pair
                  PAIR a=A b=B a_sub=both b_sub=both a_saw_b=1 b_saw_a=1
                and RESULT=ok|fail.
  send BODY     the first user sends BODY (chat) to each other user's bare
                JID, waits 2 s for an error, logs out. Prints
                  ERROR to=B condition=C     (per error)
                  RESULT=ok errors=N
  receive BODY  each user logs in and waits for BODY from anyone (offline
                delivery at login). Prints RECEIVED to=B from=A, RESULT=ok|fail.
  vcard NICK    the first user publishes a vCard (NICKNAME=NICK); each other
                user asks for it (iq get to the bare JID). Prints
                  VCARD of=A asker=B nick=N
                and RESULT=ok|fail.
  muc ROOM      every user joins ROOM (nick: its localpart) and sees every
                other occupant; the first sends a groupchat message, all get
                it; the second sends a private message to the third through
                the room; all but the first leave, and the first sees them
                go. Prints JOINED/GROUPCHAT/PRIVATE/LEFT counts and
                RESULT=ok|fail.
  moved BODY CONTACT
                each user logs in and waits for BODY (offline delivery)
                and for CONTACT in its roster. Prints
                  MOVED jid=A body=0|1 contact=CONTACT sub=S
                and RESULT=ok (both there, sub both) or fail.
  twins         the one JID logs in twice (resources rc1 and rc2, at once:
                under least-conn one on each server); each session sees
                the other's presence and gets a message to its full JID
                from the other. Prints
                  TWINS jid=A saw=N/2 got=N/2
                and RESULT=ok|fail.
  pep NODE      the first user publishes a PEP item (XEP-0163, to NODE,
                its own bare JID); each other user asks for the item
                (iq get to the first user's bare JID). Prints
                  PEP of=A asker=B item=ID
                and RESULT=ok|fail.
Exit status 0 on RESULT=ok, 1 otherwise, 2 when a login failed.
"""
import argparse
import asyncio
import logging
import os
import sys
import time

import slixmpp
from slixmpp.xmlstream import ET


class User(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid if '/' in jid else jid + '/rc', password)
        self.ca_certs = cafile
        self.ready = asyncio.get_event_loop().create_future()
        self.inbox, self.errors, self.presences = [], [], set()
        self.presences_full = set()
        self.auto_authorize = True
        self.auto_subscribe = True
        self.register_plugin('xep_0054')
        self.register_plugin('xep_0060')
        self.register_plugin('xep_0045')
        self.muc_presence = []  # (from full JID, type)
        self.add_event_handler('session_start', self._start)
        for ev in ('failed_auth', 'connection_failed', 'disconnected'):
            self.add_event_handler(ev, self._fail(ev))
        self.add_event_handler('message', self._message)
        self.add_event_handler('message_error', self._message)
        self.add_event_handler('presence_available', self._presence)
        self.add_event_handler('groupchat_presence', self._any_presence)

    def _fail(self, why):
        def handler(_ev):
            if not self.ready.done():
                self.ready.set_result(why)
        return handler

    async def _start(self, _ev):
        await self.get_roster()
        self.send_presence()
        if not self.ready.done():
            self.ready.set_result('ok')

    def _message(self, msg):
        if msg['type'] == 'error':
            self.errors.append(msg)
            print('ERROR to=%s from=%s condition=%s type=%s' % (
                self.boundjid.bare, msg['from'], msg['error']['condition'], msg['error']['type']),
                flush=True)
        elif msg['body']:
            self.inbox.append(msg)

    def _presence(self, pres):
        self.presences.add(pres['from'].bare)
        self.presences_full.add(pres['from'].full)

    def _any_presence(self, pres):
        self.muc_presence.append((pres['from'].full, pres['type']))


def where(a, jid):
    """(host, port, cafile) for JID's login: its --via, its domain's --domain,
    else --server"""
    for spec in a.via or []:
        j, server = spec.split('=', 1)
        if j == jid:
            host, _, port = server.rpartition(':')
            return host, int(port), a.cafile
    dom = jid.rpartition('@')[2]
    for spec in a.domain or []:
        d, server, ca = spec.split('=', 2)
        if d == dom:
            host, _, port = server.rpartition(':')
            return host, int(port), ca
    host, _, port = a.server.rpartition(':')
    return host, int(port), a.cafile


async def login(a, jids):
    users = [User(j, a.password, where(a, j)[2]) for j in jids]
    for u in users:
        host, port, _ = where(a, u.boundjid.bare)
        u.connect((host, port), force_starttls=True)
    try:
        states = await asyncio.wait_for(asyncio.gather(*(u.ready for u in users)), a.timeout)
    except asyncio.TimeoutError:
        states = [u.ready.result() if u.ready.done() else 'timeout' for u in users]
    bad = [(u.boundjid.bare, s) for u, s in zip(users, states) if s != 'ok']
    for j, s in bad:
        print('LOGIN-FAILED jid=%s why=%s' % (j, s), flush=True)
    return users, not bad


async def wait_until(cond, timeout):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await asyncio.sleep(0.05)
    return cond()


async def matrix(a, users):
    tag = '%d' % time.time_ns()
    want = {}
    for s in users:
        for d in users:
            if s is d:
                continue
            for kind, to in (('bare', d.boundjid.bare), ('full', d.boundjid.full)):
                body = 'm-%s-%s-%s-%s' % (kind, s.boundjid.user, d.boundjid.user, tag)
                want[body] = (s, d, kind)
                s.send_message(mto=to, mbody=body, mtype='chat')

    def got(body):
        s, d, _ = want[body]
        return any(m['body'] == body and m['from'].bare == s.boundjid.bare for m in d.inbox)

    await wait_until(lambda: all(got(b) for b in want), a.timeout)
    n = 0
    for body, (s, d, kind) in want.items():
        if got(body):
            n += 1
        else:
            print('MISSING from=%s to=%s kind=%s' % (s.boundjid.bare, d.boundjid.bare, kind), flush=True)
    print('RESULT=%s got=%d want=%d' % ('ok' if n == len(want) else 'fail', n, len(want)), flush=True)
    return n == len(want)


async def subscribe(a, users):
    pairs = [(users[i], users[i + 1]) for i in range(0, len(users) - 1, 2)]
    for x, y in pairs:
        x.send_presence(pto=y.boundjid.bare, ptype='subscribe')

    def sub(x, y):
        return x.client_roster[y.boundjid.bare]['subscription'] \
            if y.boundjid.bare in x.client_roster else 'none'

    def done():
        return all(sub(x, y) == 'both' and sub(y, x) == 'both' and y.boundjid.bare in x.presences
                   and x.boundjid.bare in y.presences for x, y in pairs)

    await wait_until(done, a.timeout)
    okk = True
    for x, y in pairs:
        line = 'PAIR a=%s b=%s a_sub=%s b_sub=%s a_saw_b=%d b_saw_a=%d' % (
            x.boundjid.bare, y.boundjid.bare, sub(x, y), sub(y, x),
            y.boundjid.bare in x.presences, x.boundjid.bare in y.presences)
        okk = okk and sub(x, y) == 'both' and sub(y, x) == 'both' and \
            y.boundjid.bare in x.presences and x.boundjid.bare in y.presences
        print(line, flush=True)
    print('RESULT=%s' % ('ok' if okk else 'fail'), flush=True)
    return okk


async def twins(a, users):
    x, y = users
    tag = 'twin-%d' % time.time_ns()

    def saw():
        return (y.boundjid.full in x.presences_full) + (x.boundjid.full in y.presences_full)

    await wait_until(lambda: saw() == 2, a.timeout)
    x.send_message(mto=y.boundjid.full, mbody=tag + '-1', mtype='chat')
    y.send_message(mto=x.boundjid.full, mbody=tag + '-2', mtype='chat')

    def got():
        return (any(m['body'] == tag + '-1' for m in y.inbox) +
                any(m['body'] == tag + '-2' for m in x.inbox))

    await wait_until(lambda: got() == 2, a.timeout)
    print('TWINS jid=%s saw=%d/2 got=%d/2' % (x.boundjid.bare, saw(), got()), flush=True)
    okk = saw() == 2 and got() == 2
    print('RESULT=%s' % ('ok' if okk else 'fail'), flush=True)
    return okk


async def send(a, users, body):
    s = users[0]
    for d in a.jids[1:]:
        s.send_message(mto=d, mbody=body, mtype='chat')
    await asyncio.sleep(2)
    print('RESULT=ok errors=%d' % len(s.errors), flush=True)
    return True


async def receive(a, users, body):
    await wait_until(lambda: all(any(m['body'] == body for m in u.inbox) for u in users), a.timeout)
    okk = True
    for u in users:
        m = [m for m in u.inbox if m['body'] == body]
        if m:
            print('RECEIVED to=%s from=%s' % (u.boundjid.bare, m[0]['from'].bare), flush=True)
        okk = okk and len(m) == 1
    print('RESULT=%s' % ('ok' if okk else 'fail'), flush=True)
    return okk


async def vcard(a, users, nick):
    owner = users[0]
    vc = owner.plugin['xep_0054'].make_vcard()
    vc['NICKNAME'] = nick
    await owner.plugin['xep_0054'].publish_vcard(vc, timeout=a.timeout)
    okk = True
    for u in users[1:]:
        try:
            r = await u.plugin['xep_0054'].get_vcard(owner.boundjid.bare, cached=False, timeout=a.timeout)
            got = r['vcard_temp']['NICKNAME']
            got = got[0] if isinstance(got, list) and got else got
        except Exception as e:  # an error reply or a timeout
            got = 'error:%s' % type(e).__name__
        print('VCARD of=%s asker=%s nick=%s' % (owner.boundjid.bare, u.boundjid.bare, got), flush=True)
        okk = okk and got == nick
    print('RESULT=%s' % ('ok' if okk else 'fail'), flush=True)
    return okk


async def pep(a, users, node):
    owner = users[0]
    payload = ET.Element('{urn:xedge:test:0}note')
    payload.text = 'pep-' + node
    # an open node: the askers need no subscription to the owner
    opts = owner.plugin['xep_0004'].make_form(ftype='submit')
    opts.add_field(var='FORM_TYPE', ftype='hidden',
                   value='http://jabber.org/protocol/pubsub#publish-options')
    opts.add_field(var='pubsub#access_model', value='open')
    await owner.plugin['xep_0060'].publish(owner.boundjid.bare, node, id='item1', payload=payload,
                                           options=opts, timeout=a.timeout)
    okk = True
    for u in users[1:]:
        try:
            r = await u.plugin['xep_0060'].get_item(owner.boundjid.bare, node, 'item1', timeout=a.timeout)
            items = r['pubsub']['items']
            got = ','.join(i['id'] for i in items)
        except slixmpp.exceptions.IqError as e:
            got = 'error:%s' % e.iq['error']['condition']
        except Exception as e:
            got = 'error:%s' % type(e).__name__
        print('PEP of=%s asker=%s item=%s' % (owner.boundjid.bare, u.boundjid.bare, got), flush=True)
        okk = okk and got == 'item1'
    print('RESULT=%s' % ('ok' if okk else 'fail'), flush=True)
    return okk


async def muc(a, users, room):
    nick = {u: u.boundjid.user for u in users}
    for u in users:
        u.plugin['xep_0045'].join_muc(room, nick[u])

    def sees(u, n, t):
        return any(f == '%s/%s' % (room, n) and ty == t for f, ty in u.muc_presence)

    def joined():
        return all(sees(u, nick[v], 'available') for u in users for v in users)

    await wait_until(joined, a.timeout)
    j = sum(1 for u in users for v in users if sees(u, nick[v], 'available'))
    print('JOINED seen=%d want=%d' % (j, len(users) ** 2), flush=True)
    body = 'gc-%d' % time.time_ns()
    users[0].send_message(mto=room, mbody=body, mtype='groupchat')

    def got_gc(u):
        return any(m['type'] == 'groupchat' and m['body'] == body and
                   m['from'].full == '%s/%s' % (room, nick[users[0]]) for m in u.inbox)

    await wait_until(lambda: all(got_gc(u) for u in users), a.timeout)
    g = sum(1 for u in users if got_gc(u))
    print('GROUPCHAT got=%d want=%d' % (g, len(users)), flush=True)
    pbody = 'pm-%d' % time.time_ns()
    users[1].send_message(mto='%s/%s' % (room, nick[users[2]]), mbody=pbody, mtype='chat')

    def got_pm():
        return any(m['body'] == pbody and m['from'].full == '%s/%s' % (room, nick[users[1]])
                   for m in users[2].inbox)

    await wait_until(got_pm, a.timeout)
    print('PRIVATE got=%d' % got_pm(), flush=True)
    for u in users[1:]:
        u.plugin['xep_0045'].leave_muc(room, nick[u])

    def left():
        return all(sees(users[0], nick[u], 'unavailable') for u in users[1:])

    await wait_until(left, a.timeout)
    n = sum(1 for u in users[1:] if sees(users[0], nick[u], 'unavailable'))
    print('LEFT seen=%d want=%d' % (n, len(users) - 1), flush=True)
    okk = j == len(users) ** 2 and g == len(users) and got_pm() and n == len(users) - 1
    print('RESULT=%s' % ('ok' if okk else 'fail'), flush=True)
    return okk


async def moved(a, users, body, contact):
    def sub(u):
        return u.client_roster[contact]['subscription'] if contact in u.client_roster else 'none'

    def got(u):
        return any(m['body'] == body for m in u.inbox)

    await wait_until(lambda: all(got(u) and sub(u) == 'both' for u in users), a.timeout)
    okk = True
    for u in users:
        print('MOVED jid=%s body=%d contact=%s sub=%s' % (u.boundjid.bare, got(u), contact, sub(u)),
              flush=True)
        okk = okk and got(u) and sub(u) == 'both'
    print('RESULT=%s' % ('ok' if okk else 'fail'), flush=True)
    return okk


async def run(a):
    jids = a.jids if a.phase != 'send' else a.jids[:1]
    if a.phase == 'twins':
        jids = [a.jids[0] + '/rc1', a.jids[0] + '/rc2']
    users, okk = await login(a, jids)
    if not okk:
        return 2, users
    if a.settle:
        await asyncio.sleep(a.settle)
    if a.phase == 'matrix':
        r = await matrix(a, users)
    elif a.phase == 'subscribe':
        r = await subscribe(a, users)
    elif a.phase == 'send':
        r = await send(a, users, a.arg)
    elif a.phase == 'receive':
        r = await receive(a, users, a.arg)
    elif a.phase == 'vcard':
        r = await vcard(a, users, a.arg)
    elif a.phase == 'moved':
        r = await moved(a, users, a.arg, a.arg2)
    elif a.phase == 'muc':
        r = await muc(a, users, a.arg)
    elif a.phase == 'twins':
        r = await twins(a, users)
    else:
        r = await pep(a, users, a.arg)
    return (0 if r else 1), users


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--server', required=True)
    p.add_argument('--cafile', required=True)
    p.add_argument('--password', required=True)
    p.add_argument('--timeout', type=float, default=15)
    p.add_argument('--debug', action='store_true')
    p.add_argument('--domain', action='append',
                   help='D=HOST:PORT=CA: the users of domain D log in there')
    p.add_argument('--via', action='append',
                   help='JID=HOST:PORT: JID logs in there')
    p.add_argument('--settle', type=float, default=0,
                   help='seconds to wait after the logins (a cluster replicating sessions)')
    p.add_argument('phase', choices=['matrix', 'subscribe', 'send', 'receive', 'vcard', 'pep', 'muc', 'moved',
                                      'twins'])
    p.add_argument('rest', nargs='+')
    a = p.parse_args()
    a.arg2 = None
    if a.phase == 'moved':
        a.arg, a.arg2, a.jids = a.rest[0], a.rest[1], a.rest[2:]
    elif a.phase in ('send', 'receive', 'vcard', 'pep', 'muc'):
        a.arg, a.jids = a.rest[0], a.rest[1:]
    else:
        a.arg, a.jids = None, a.rest
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    rc, users = loop.run_until_complete(run(a))
    for u in users:
        u.disconnect()
    loop.run_until_complete(asyncio.sleep(0.3))
    return rc


if __name__ == '__main__':
    sys.exit(main())
