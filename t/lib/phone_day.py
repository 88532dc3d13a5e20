#!/usr/bin/python3
"""phone_day.py - what a phone does all day, through xedge, with slixmpp 1.8.3.

One scenario per run; each prints informational lines and exactly one line
starting with RESULT= (RESULT=ok ... or RESULT=fail reason=...). Every wait
has a timeout. The clients log in with SCRAM over STARTTLS (a new login for
every connection, as through xedge it must be).

  /usr/bin/python3 t/lib/phone_day.py --server 127.0.0.1:5222 --cafile CA.pem \\
      --jid alice@example.test --password pw --friend bob@example.test \\
      --friend-password pw SCENARIO [--between CMD] [--expect resumed|fresh]

Scenarios:
  features   after login: which client features the server offers, as
             OFFERS sm=0|1 csi=0|1 carbons=0|1 mam=0|1 blocking=0|1
             vcard=0|1 pep=0|1 private=0|1 ping=0|1 (the post-login stream
             features and the server's disco#info); RESULT=ok
  resume     stream management (XEP-0198) with resumption: the phone enables
             it, gets a message, its TCP connection is cut (no close, no TLS
             close_notify); CMD runs (--between: e.g. a restart of xedge or
             of the backend); the friend sends three messages to the phone's
             full JID; the phone connects again (a new login through xedge)
             and resumes. --expect resumed: <resumed/>, the three messages
             arrive; --expect fresh: the backend answers <failed/> (it lost
             the session), the phone falls back to a new session (bind) and
             the three messages arrive from offline storage. Either way each
             message arrives exactly once and the one before the cut never
             again. With --no-cut the phone stays connected and --between
             must end the connection (e.g. xedge's graceful restart: the
             phone gets <system-shutdown/>). RESULT=ok resumed=yes|no got=3
  carbons    message carbons (XEP-0280) between two clients of one user: the
             friend writes to phone A; phone B gets a received carbon; A
             answers, B gets a sent carbon. RESULT=ok
  mam        message archive (XEP-0313): messages between phone and friend,
             then an archive query with the friend finds them. RESULT=ok
  csi        client state indication (XEP-0352): the phone says <inactive/>;
             a chat state notification (no body) from the friend is held
             back; <active/> lets it through. RESULT=ok
  blocking   blocking command (XEP-0191): the phone blocks the friend (the
             block list shows it); the friend's message does not arrive;
             unblocked, the next one does. RESULT=ok
"""
import argparse
import asyncio
import logging
import subprocess
import sys
import time

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
NS_CARBONS = 'urn:xmpp:carbons:2'


class Fail(Exception):
    pass


class Client(slixmpp.ClientXMPP):
    """A logged-in client; messages go to self.inbox as (kind, body, from)."""

    def __init__(self, jid, password, a, sm=False):
        super().__init__(jid, password)
        self.a = a
        self.ca_certs = a.cafile
        for p in ('xep_0030', 'xep_0085', 'xep_0199', 'xep_0280', 'xep_0313',
                  'xep_0191', 'xep_0352'):
            self.register_plugin(p)
        if sm:
            self.register_plugin('xep_0198')
            self['xep_0198'].window = 1  # ask for an ack after every stanza
        self.inbox = asyncio.Queue()
        self.started = asyncio.get_event_loop().create_future()
        self.gone = None
        self.sm_events = []
        self.sm = sm
        self.sm_ready = None
        self.stream_features = []  # the local names in the last <stream:features/>
        self.register_handler(Callback('phone_day features', MatchXPath(
            '{http://etherx.jabber.org/streams}features'), self._features))
        self.add_event_handler('session_start', self._started)
        self.add_event_handler('session_resumed', self._resumed)
        self.add_event_handler('sm_enabled', self._sm_enabled)
        self.add_event_handler('sm_failed', lambda s: self.sm_events.append(('failed', s)))
        self.add_event_handler('message', self._message)  # messages with a body
        self.add_event_handler('chatstate_composing', lambda m: self.inbox.put_nowait(
            ('composing', '', m['from'].bare)))
        self.add_event_handler('carbon_received',
                               lambda m: self._carbon('carbon-received', m['carbon_received']))
        self.add_event_handler('carbon_sent',
                               lambda m: self._carbon('carbon-sent', m['carbon_sent']))
        self.add_event_handler('failed_all_auth', lambda _e: self._fail('authentication failed'))
        self.add_event_handler('connection_failed', lambda e: self._fail('connection failed: %s' % e))
        self.stream_error = None
        self.add_event_handler('stream_error', self._stream_error)
        self.add_event_handler('disconnected', self._disconnected)

    def _stream_error(self, e):
        self.stream_error = e['condition']
        print('STREAM-ERROR %s jid=%s' % (e['condition'], self.boundjid), flush=True)

    def _features(self, f):
        self.stream_features = [c.tag.split('}')[-1] for c in f.xml]

    def _sm_enabled(self, s):
        self.sm_events.append(('enabled', s))
        if self.sm_ready and not self.sm_ready.done():
            self.sm_ready.set_result(s)

    def _fail(self, why):
        if not self.started.done():
            self.started.set_exception(Fail(why))

    def _started(self, _e):
        self.send_presence()
        if not self.started.done():
            self.started.set_result('session')

    def _resumed(self, _e):
        if not self.started.done():
            self.started.set_result('resumed')

    def _disconnected(self, _e):
        if self.gone and not self.gone.done():
            self.gone.set_result(True)

    def _message(self, m):
        if (m.xml.find('{%s}received' % NS_CARBONS) is not None or
                m.xml.find('{%s}sent' % NS_CARBONS) is not None):
            return  # a carbon (its own events)
        if m['type'] == 'error':
            self.inbox.put_nowait(('error', m['error']['condition'], m['from'].bare))
        else:
            self.inbox.put_nowait(('body', m['body'], m['from'].bare))

    def _carbon(self, kind, inner):
        self.inbox.put_nowait((kind, inner['body'], inner['from'].bare))

    async def login(self, timeout):
        host, _, port = self.a.server.rpartition(':')
        self.started = asyncio.get_event_loop().create_future()
        self.sm_ready = asyncio.get_event_loop().create_future()
        self.connect((host.strip('[]'), int(port)))
        try:
            how = await asyncio.wait_for(self.started, timeout)
        except asyncio.TimeoutError:
            raise Fail('%s: no session in %ss' % (self.boundjid.bare, timeout))
        if self.sm and how == 'session' and 'sm' in self.stream_features:
            # slixmpp enables stream management after session_start
            try:
                await asyncio.wait_for(self.sm_ready, timeout)
            except asyncio.TimeoutError:
                raise Fail('stream management offered, but not enabled in %ss' % timeout)
        return how

    async def cut(self):
        """End the TCP connection without a stream close or TLS close_notify."""
        self.gone = asyncio.get_event_loop().create_future()
        self.transport.abort()
        await asyncio.wait_for(self.gone, 5)

    async def close(self):
        self.gone = asyncio.get_event_loop().create_future()
        if self.transport:
            self.disconnect(wait=1.0)
            try:
                await asyncio.wait_for(self.gone, 5)
            except asyncio.TimeoutError:
                pass

    async def collect(self, seconds, until=None):
        """Inbox entries for up to SECONDS, or until until(entries) holds."""
        got = []
        end = time.monotonic() + seconds
        while until is None or not until(got):
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                got.append(await asyncio.wait_for(self.inbox.get(), left))
            except asyncio.TimeoutError:
                break
        return got


def token(tag):
    return '%s-%d-%d' % (tag, time.time_ns(), id(tag) % 1000)


async def friend_sends(a, to, bodies, mtype='chat', chatstate=None):
    f = Client(a.friend, a.friend_password, a)
    await f.login(a.timeout)
    for b in bodies:
        f.send_message(mto=to, mbody=b, mtype=mtype)
        print('SENT to=%s body=%s' % (to, b), flush=True)
    if chatstate:
        f.send_raw("<message to='%s' type='chat'><%s xmlns='%s'/></message>" % (
            to, chatstate, NS_CHATSTATES))
        print('SENT to=%s chatstate=%s' % (to, chatstate), flush=True)
    # a ping round trip: the server has taken the messages before we close
    await f['xep_0199'].ping(jid=a.domain, timeout=a.timeout)
    await f.close()


async def features(a):
    c = Client(a.jid, a.password, a, sm=True)
    await c.login(a.timeout)
    info = await c['xep_0030'].get_info(jid=a.domain, timeout=a.timeout)
    feats = set(info['disco_info']['features'])
    has = {
        'sm': 'stream_management' in c.features,
        'csi': 'csi' in c.stream_features,
        'carbons': 'urn:xmpp:carbons:2' in feats,
        'mam': 'urn:xmpp:mam:2' in feats,
        'blocking': 'urn:xmpp:blocking' in feats,
        'vcard': 'vcard-temp' in feats,
        'pep': False,
        'private': 'jabber:iq:private' in feats,
        'ping': 'urn:xmpp:ping' in feats,
    }
    acct = await c['xep_0030'].get_info(jid=c.boundjid.bare, timeout=a.timeout)
    has['pep'] = any(i[0] == 'pubsub' and i[1] == 'pep' for i in acct['disco_info']['identities'])
    has['mam'] = has['mam'] or 'urn:xmpp:mam:2' in acct['disco_info']['features']
    print('OFFERS ' + ' '.join('%s=%d' % (k, v) for k, v in has.items()), flush=True)
    await c.close()
    return 'RESULT=ok'


async def resume(a):
    phone = Client(a.jid, a.password, a, sm=True)
    phone.resource = 'phone'
    how = await phone.login(a.timeout)
    sm = phone['xep_0198']
    if not sm.sm_id:
        raise Fail('no stream management with resumption (sm_id=%r, events=%s)' %
                   (sm.sm_id, [e for e, _ in phone.sm_events]))
    full = str(phone.boundjid)
    print('ENABLED jid=%s id=%s' % (full, sm.sm_id), flush=True)
    m0 = token('before-cut')
    await friend_sends(a, full, [m0])
    got = await phone.collect(a.timeout, lambda g: any(b == m0 for _, b, _f in g))
    if not any(b == m0 for _, b, _f in got):
        raise Fail('the message before the cut did not arrive')
    await asyncio.sleep(0.3)  # let the ack of it go out
    if a.no_cut:
        phone.gone = asyncio.get_event_loop().create_future()
    else:
        await phone.cut()
        print('CUT', flush=True)
    if a.between:
        r = await asyncio.get_event_loop().run_in_executor(None, lambda: subprocess.run(
            a.between, shell=True, timeout=60, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
        print('BETWEEN rc=%d cmd=%s' % (r.returncode, a.between), flush=True)
        for line in r.stdout.splitlines()[-10:]:
            print('  ' + line, flush=True)
        if r.returncode != 0:
            raise Fail('--between failed (rc %d)' % r.returncode)
    if a.no_cut:
        try:
            await asyncio.wait_for(phone.gone, a.timeout)
        except asyncio.TimeoutError:
            raise Fail('--no-cut: the connection did not end')
        print('ENDED by the server condition=%s' % (phone.stream_error or '-'), flush=True)
    bodies = [token('while-cut-%d' % i) for i in range(3)]
    await friend_sends(a, full, bodies)
    how = await phone.login(a.timeout)
    failed = [e for e, _ in phone.sm_events if e == 'failed']
    print('RECONNECTED how=%s sm_failed=%d jid=%s' % (how, len(failed), phone.boundjid), flush=True)
    if a.expect == 'resumed' and how != 'resumed':
        raise Fail('not resumed (%s)' % how)
    if a.expect == 'fresh' and (how != 'session' or not failed):
        raise Fail('expected <failed/> and a new session, got %s' % how)
    got = await phone.collect(a.timeout, lambda g: all(
        any(b == x for _, b, _f in g) for x in bodies))
    # whatever else would come (a duplicate) comes now
    got += await phone.collect(1.5)
    seen = [b for k, b, _f in got if k == 'body']
    for b in seen:
        print('RECEIVED body=%s' % b, flush=True)
    missing = [b for b in bodies if b not in seen]
    dups = [b for b in set(seen) if seen.count(b) > 1]
    if m0 in seen:
        raise Fail('the message from before the cut came again')
    if missing or dups:
        raise Fail('missing=%s duplicated=%s' % (','.join(missing) or '-', ','.join(dups) or '-'))
    # the session works: a round trip
    await phone['xep_0199'].ping(jid=a.domain, timeout=a.timeout)
    await phone.close()
    return 'RESULT=ok resumed=%s got=%d' % ('yes' if how == 'resumed' else 'no', len(seen))


async def carbons(a):
    pa = Client(a.jid + '/phone', a.password, a)
    pb = Client(a.jid + '/laptop', a.password, a)
    await pa.login(a.timeout)
    await pb.login(a.timeout)
    for p in (pa, pb):
        await p['xep_0280'].enable(timeout=a.timeout)
    fr = Client(a.friend, a.friend_password, a)
    await fr.login(a.timeout)
    t1 = token('to-phone')
    fr.send_message(mto=str(pa.boundjid), mbody=t1, mtype='chat')
    ga = await pa.collect(a.timeout, lambda g: ('body', t1, a.friend) in g)
    gb = await pb.collect(a.timeout, lambda g: ('carbon-received', t1, a.friend) in g)
    if ('body', t1, a.friend) not in ga:
        raise Fail('phone A did not get the message: %s' % ga)
    if ('carbon-received', t1, a.friend) not in gb:
        raise Fail('phone B got no received carbon: %s' % gb)
    print('CARBON received ok', flush=True)
    t2 = token('from-phone')
    pa.send_message(mto=a.friend, mbody=t2, mtype='chat')
    gf = await fr.collect(a.timeout, lambda g: ('body', t2, a.jid) in g)
    gb = await pb.collect(a.timeout, lambda g: ('carbon-sent', t2, a.jid) in g)
    if ('body', t2, a.jid) not in gf:
        raise Fail('the friend did not get the answer: %s' % gf)
    if ('carbon-sent', t2, a.jid) not in gb:
        raise Fail('phone B got no sent carbon: %s' % gb)
    print('CARBON sent ok', flush=True)
    for c in (pa, pb, fr):
        await c.close()
    return 'RESULT=ok'


async def mam(a):
    phone = Client(a.jid, a.password, a)
    await phone.login(a.timeout)
    t_in = token('archived-in')
    await friend_sends(a, a.jid, [t_in])
    await phone.collect(a.timeout, lambda g: any(b == t_in for _, b, _f in g))
    t_out = token('archived-out')
    phone.send_message(mto=a.friend, mbody=t_out, mtype='chat')
    await phone['xep_0199'].ping(jid=a.domain, timeout=a.timeout)
    res = await phone['xep_0313'].retrieve(with_jid=slixmpp.JID(a.friend), timeout=a.timeout)
    bodies = [r['mam_result']['forwarded']['stanza']['body'] for r in res['mam']['results']]
    for b in bodies:
        print('ARCHIVED body=%s' % b, flush=True)
    if t_in not in bodies or t_out not in bodies:
        raise Fail('the archive query did not find both messages (%d results)' % len(bodies))
    await phone.close()
    return 'RESULT=ok archived=%d' % len(bodies)


async def csi(a):
    phone = Client(a.jid, a.password, a)
    phone.resource = 'phone'
    await phone.login(a.timeout)
    if 'csi' not in phone.stream_features:
        raise Fail('no <csi/> stream feature')
    full = str(phone.boundjid)
    phone.send_raw("<inactive xmlns='urn:xmpp:csi:0'/>")
    # nothing more from the phone now: any client activity (an iq, even an
    # ack) makes the server flush and stay active a while (Prosody: 5 s)
    await asyncio.sleep(0.3)
    await friend_sends(a, full, [], chatstate='composing')
    held = await phone.collect(2.0, lambda g: any(k == 'composing' for k, _b, _f in g))
    if any(k == 'composing' for k, _b, _f in held):
        raise Fail('inactive, yet the chat state arrived at once')
    print('HELD while inactive', flush=True)
    phone.send_raw("<active xmlns='urn:xmpp:csi:0'/>")
    got = await phone.collect(a.timeout, lambda g: any(k == 'composing' for k, _b, _f in g))
    if not any(k == 'composing' for k, _b, _f in got):
        raise Fail('active again, the held chat state did not arrive')
    print('FLUSHED on active', flush=True)
    await phone.close()
    return 'RESULT=ok'


async def blocking(a):
    phone = Client(a.jid, a.password, a)
    await phone.login(a.timeout)
    await phone['xep_0191'].block(slixmpp.JID(a.friend), timeout=a.timeout)
    bl = await phone['xep_0191'].get_blocked(timeout=a.timeout)
    items = [str(j) for j in bl['blocklist']['items']]
    print('BLOCKLIST %s' % (','.join(items) or '-'), flush=True)
    if a.friend not in items:
        raise Fail('the block list does not show the friend')
    t1 = token('blocked')
    await friend_sends(a, a.jid, [t1])
    got = await phone.collect(2.0, lambda g: any(b == t1 for _, b, _f in g))
    if any(b == t1 for _, b, _f in got):
        raise Fail('a message from a blocked contact arrived')
    print('NOT-DELIVERED while blocked', flush=True)
    await phone['xep_0191'].unblock(slixmpp.JID(a.friend), timeout=a.timeout)
    t2 = token('unblocked')
    await friend_sends(a, a.jid, [t2])
    got = await phone.collect(a.timeout, lambda g: any(b == t2 for _, b, _f in g))
    if not any(b == t2 for _, b, _f in got):
        raise Fail('unblocked, the message did not arrive')
    if any(b == t1 for _, b, _f in got):
        raise Fail('the message sent while blocked arrived after all')
    print('DELIVERED once unblocked', flush=True)
    await phone.close()
    return 'RESULT=ok'


SCENARIOS = {'features': features, 'resume': resume, 'carbons': carbons, 'mam': mam,
             'csi': csi, 'blocking': blocking}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('scenario', choices=sorted(SCENARIOS))
    ap.add_argument('--server', required=True)
    ap.add_argument('--cafile', required=True)
    ap.add_argument('--jid', required=True)
    ap.add_argument('--password', required=True)
    ap.add_argument('--friend', required=True)
    ap.add_argument('--friend-password', required=True)
    ap.add_argument('--between', help='a shell command run while the phone is cut')
    ap.add_argument('--no-cut', action='store_true',
                    help='resume: the phone stays connected while --between runs (which '
                    'must end its connection, e.g. by restarting xedge)')
    ap.add_argument('--expect', choices=('resumed', 'fresh'), default='resumed')
    ap.add_argument('--timeout', type=float, default=10)
    ap.add_argument('--debug', action='store_true')
    a = ap.parse_args()
    a.domain = a.jid.split('@')[1]
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.CRITICAL,
                        format='%(asctime)s %(name)s %(message)s', stream=sys.stderr)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        line = loop.run_until_complete(asyncio.wait_for(SCENARIOS[a.scenario](a), 90))
        rc = 0
    except Fail as e:
        line, rc = 'RESULT=fail reason=%s' % str(e).replace('\n', ' '), 1
    except (IqError, IqTimeout) as e:
        line, rc = 'RESULT=fail reason=iq-%s' % type(e).__name__, 1
    except asyncio.TimeoutError:
        line, rc = 'RESULT=fail reason=scenario-timeout', 1
    print(line, flush=True)
    sys.exit(rc)


if __name__ == '__main__':
    main()
