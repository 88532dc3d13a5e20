#!/usr/bin/python3
"""xmpp_client.py - a slixmpp (1.8.3) test client for xedge's end-to-end tests.

It logs in once (one TCP connection, never a reconnect), optionally does some
work in the session, and prints exactly one line starting with RESULT= that a
test can parse, plus informational lines (ROSTER=, RECEIVED, SENT, ATTEMPT).

  /usr/bin/python3 t/lib/xmpp_client.py --jid alice@example.test --password pw \\
      --server 127.0.0.1:5222 [--mode starttls|direct] [--mech SCRAM-SHA-256] \\
      [--cafile CA.pem | --insecure] [--timeout 10] [--resource res]
      [--retry-password PW]...          # on SASL failure, retry on the SAME stream
      [--roster] [--roster-add JID [--roster-name NAME]]
      [--ready-file F] [--wait-file F]
      [--send-to JID --body TEXT] [--expect-body TEXT [--expect-from BAREJID]]
      [--reply-after-expect] [--hold SECONDS]
      [--iq-auth]                       # non-SASL authentication (XEP-0078)
      [--register] [--change-password NEWPW] [--unregister]   # XEP-0077

Result lines (one of):
  RESULT=ok mech=SCRAM-SHA-256 tls=TLSv1.3 alpn=xmpp-client jid=a@d/r attempts=1 connections=1
  RESULT=failure condition=not-authorized text=... attempts=N connections=1
  RESULT=stream-error condition=remote-connection-failed text=... stage=...
  RESULT=disconnected stage=... reason=...
  RESULT=timeout stage=...
  RESULT=error reason=...                       (a check after login failed)

--iq-auth logs in with slixmpp's xep_0078 plugin instead of SASL. Two things
in slixmpp 1.8.3 stop the plugin from doing it as shipped, and are worked
around here: it defers to SASL whenever the features offer <mechanisms/>
(so feature_mechanisms is disabled and the plugin's feature handler
replaced), and its authenticate() does not await Iq.send() (it reads the
reply off an asyncio Future: TypeError), so the same steps, with the
plugin's stanzas, its field check (digest whenever the server lists
<digest/>) and its session setup, run in _iq_auth() below with the awaits;
and slixmpp holds back every stanza but a bind or session iq until the
session starts, so _iq_auth() lets its iqs out.
RESULT=ok then says mech=iq-auth-digest or mech=iq-auth-plain.

--register creates the account (--jid, --password) with slixmpp's xep_0077
plugin before SASL, on the same stream, as slixmpp's
examples/register_account.py does: force_registration, and a 'register'
event handler that sends the form back filled in. It prints (before RESULT):
  FORM fields=instructions+username+password     (what the server asked for)
  REGISTER result=ok | REGISTER result=error type=T condition=C
then logs in as usual (a failed registration does not stop the login). If
the server does not offer registration, the line is
  REGISTER result=error type=- condition=not-offered
slixmpp 1.8.3 holds back every stanza but a bind or session iq until the
session starts (later versions let register iqs out), so the plugin's iqs
would never leave: the plugin's feature handler is wrapped to let them out
while it runs. (force_registration only matters to a server that does not
announce the feature; xedge does. In 1.8.3 its STARTTLS check wants an
ssl.SSLSocket, which asyncio never gives, so it never adds the feature after
STARTTLS anyway.)
After login, --change-password NEWPW (xep_0077 change_password) prints
  PASSWD result=ok | PASSWD result=error type=T condition=C
and --unregister (xep_0077 cancel_registration) prints
  UNREGISTER result=ok | UNREGISTER result=error type=T condition=C
then waits for the server to end the stream, and RESULT=ok says how it
ended: close=stream-error:not-authorized (close=none if it stayed open).

Exit codes: 0 ok, 1 SASL failure, 2 stream error, 3 timeout, 4 disconnected /
connection failed, 5 a post-login check failed (roster, message), 64 usage,
70 internal error of this script.

Order of work after the session starts: send initial presence; roster
add/fetch; write --ready-file; wait for --wait-file; send --send-to (unless
--reply-after-expect); wait for --expect-body; then, with
--reply-after-expect, send --send-to; then --hold; then disconnect.
"""
import argparse
import asyncio
import logging
import os
import ssl
import sys
import time

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

EXIT_OK, EXIT_SASL, EXIT_STREAM, EXIT_TIMEOUT, EXIT_DISC, EXIT_CHECK, EXIT_USAGE = 0, 1, 2, 3, 4, 5, 64
EXIT_INTERNAL = 70


def q(s):
    """Make a value safe for a single-token KEY=value field."""
    s = '' if s is None else str(s)
    return s.replace(' ', '_').replace('\n', '_').replace('\t', '_') or '-'


class Client(slixmpp.ClientXMPP):
    def __init__(self, a):
        jid = a.jid + ('/' + a.resource if a.resource else '')
        super().__init__(jid, a.password, sasl_mech=a.mech,
                         plugin_config={'feature_mechanisms': {
                             # xedge requires TLS anyway; allow PLAIN under TLS only
                             'unencrypted_plain': False}})
        self.a = a
        self.loop_ = asyncio.get_event_loop()
        self.done = self.loop_.create_future()   # (exit code, result line)
        self.session = self.loop_.create_future()
        self.inbox = asyncio.Queue()
        self.stage = 'connect'
        self.connections = 0
        self.attempts = []          # conditions of failed attempts, then 'ok'
        self.retry_passwords = list(a.retry_password or [])
        self.stream_error = None
        self.register_plugin('xep_0199')  # ping, harmless; keeps the plugin set realistic
        self.iq_auth_kind = None
        if a.iq_auth:
            self.register_plugin('xep_0078')
            # SASL would be preferred; disabling the plugin leaves its
            # feature handler registered: remove that too
            self.plugin.disable('feature_mechanisms')
            for order, name in list(self._stream_feature_order):
                if name == 'mechanisms':
                    self.unregister_feature(name, order)
            order = self['xep_0078'].order
            self.unregister_feature('auth', order)
            self.register_feature('auth', self._iq_auth, restart=False, order=order)
        self.unregistering = False
        self.register_reported = False
        self.close_how = None
        if a.register or a.change_password or a.unregister:
            self.register_plugin('xep_0077')
        if a.register:
            self['xep_0077'].force_registration = True
            self.add_event_handler('register', self._on_register)
            order = self['xep_0077'].order
            plugin_handler = self['xep_0077']._handle_register_feature
            self.unregister_feature('register', order)

            async def register_feature(features):
                self.stage = 'register'
                self._always_send_everything = True
                try:
                    return await plugin_handler(features)
                except (IqError, IqTimeout) as e:  # the form could not be fetched
                    self.print_iq_error('REGISTER', e)
                    return False
                finally:
                    self._always_send_everything = False
            self.register_feature('register', register_feature, restart=False, order=order)
        if a.insecure:
            self.ssl_context.check_hostname = False   # must come before CERT_NONE
            self.ssl_context.verify_mode = ssl.CERT_NONE
        elif a.cafile:
            self.ca_certs = a.cafile
        if a.mode == 'direct':
            self.ssl_context.set_alpn_protocols(['xmpp-client'])
        if a.tls12:
            self.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        if a.certfile:  # a client certificate (SASL EXTERNAL)
            self.certfile, self.keyfile = a.certfile, a.keyfile
        # A test client must never reconnect on its own.
        self.add_event_handler('connected', self._on_connected)
        self.add_event_handler('connection_failed', self._on_connection_failed)
        self.add_event_handler('disconnected', self._on_disconnected)
        self.add_event_handler('stream_error', self._on_stream_error)
        self.add_event_handler('failed_auth', self._on_failed_auth)
        self.add_event_handler('failed_all_auth', self._on_failed_all_auth)
        self.add_event_handler('auth_success', self._on_auth_success)
        self.add_event_handler('session_start', self._on_session_start)
        self.add_event_handler('message', self._on_message)
        self.add_event_handler('ssl_invalid_chain', self._on_bad_cert)
        self.add_event_handler('ssl_invalid_cert', self._on_bad_cert)
        self.last_failure = None

    # -- helpers --------------------------------------------------------
    def finish(self, code, line):
        if not self.done.done():
            self.done.set_result((code, line))

    def tls_info(self):
        so = self.transport.get_extra_info('ssl_object') if self.transport else None
        if not so:
            return 'none', '-'
        return so.version(), so.selected_alpn_protocol() or '-'

    def print_iq_error(self, what, e):
        self.register_reported |= what == 'REGISTER'
        if isinstance(e, IqError):
            err = e.iq['error']
            print('%s result=error type=%s condition=%s' % (what, q(err['type']), q(err['condition'])), flush=True)
        else:
            print('%s result=error type=- condition=timeout' % what, flush=True)

    async def _on_register(self, form):
        """The 'register' event (xep_0077): fill in the form and send it."""
        reg = form['register']
        fields = [f for f in ('instructions', 'username', 'password', 'email') if reg.xml.find(
            '{jabber:iq:register}' + f) is not None]
        print('FORM fields=%s' % ('+'.join(fields) or '-'), flush=True)
        resp = self.Iq()
        resp['type'] = 'set'
        resp['register']['username'] = self.boundjid.user
        resp['register']['password'] = self.password
        try:
            await resp.send(timeout=self.a.timeout)
        except (IqError, IqTimeout) as e:
            self.print_iq_error('REGISTER', e)
            return
        self.register_reported = True
        print('REGISTER result=ok', flush=True)

    async def _iq_auth(self, features):
        """xep_0078's authenticate() (slixmpp 1.8.3) with Iq.send() awaited."""
        from slixmpp.exceptions import IqError, IqTimeout
        import hashlib
        import uuid
        if self.authenticated:
            return False
        self.stage = 'iq-auth'
        # slixmpp holds back every stanza but bind/session iqs until the
        # session starts: let the jabber:iq:auth iqs out
        self._always_send_everything = True
        try:
            return await self._iq_auth_steps()
        finally:
            self._always_send_everything = False

    async def _iq_auth_steps(self):
        from slixmpp.exceptions import IqError, IqTimeout
        import hashlib
        import uuid
        iq = self.Iq()
        iq['type'] = 'get'
        iq['to'] = self.requested_jid.host
        iq['auth']['username'] = self.requested_jid.user
        try:
            resp = await iq.send(timeout=self.a.timeout)
        except (IqError, IqTimeout) as e:
            self.finish(EXIT_SASL, 'RESULT=failure condition=%s stage=iq-auth-get attempts=0 connections=%d' % (
                q(e.iq['error']['condition'] if isinstance(e, IqError) else 'timeout'), self.connections))
            return True
        iq = self.Iq()
        iq['type'] = 'set'
        iq['auth']['username'] = self.requested_jid.user
        resource = self.requested_jid.resource or str(uuid.uuid4())
        iq['auth']['resource'] = resource
        if 'digest' in resp['auth']['fields']:
            self.iq_auth_kind = 'iq-auth-digest'
            iq['auth']['digest'] = hashlib.sha1(
                (self.stream_id + self.password).encode('utf-8')).hexdigest()
        else:
            self.iq_auth_kind = 'iq-auth-plain'
            iq['auth']['password'] = self.password
        try:
            await iq.send(timeout=self.a.timeout)
        except (IqError, IqTimeout) as e:
            cond = e.iq['error']['condition'] if isinstance(e, IqError) else 'timeout'
            self.attempts.append(cond)
            print('ATTEMPT n=%d result=failure condition=%s' % (len(self.attempts), q(cond)), flush=True)
            self.finish(EXIT_SASL, 'RESULT=failure condition=%s attempts=%d connections=%d' % (
                q(cond), len(self.attempts), self.connections))
            return True
        self.attempts.append('ok')
        print('ATTEMPT n=%d result=success' % len(self.attempts), flush=True)
        # what the plugin does on success
        self.features.add('auth')
        self.authenticated = True
        self.boundjid = slixmpp.JID(self.requested_jid)
        self.boundjid.resource = resource
        self.event('session_bind', self.boundjid)
        self.sessionstarted = True
        self.event('session_start')
        return True

    # -- event handlers -------------------------------------------------
    def _on_connected(self, _):
        self.connections += 1
        self.stage = 'stream'

    def _on_connection_failed(self, err):
        self.cancel_connection_attempt()
        self.finish(EXIT_DISC, 'RESULT=disconnected stage=connect reason=%s' % q(err))

    def _on_bad_cert(self, err):
        self.finish(EXIT_DISC, 'RESULT=disconnected stage=tls reason=certificate:%s' % q(err))

    def _on_stream_error(self, err):
        if self.unregistering:  # the expected end, reported by session_work
            self.close_how = 'stream-error:%s' % err['condition']
            return
        self.stream_error = err
        self.finish(EXIT_STREAM, 'RESULT=stream-error condition=%s text=%s stage=%s' % (
            q(err['condition']), q(err['text']), self.stage))

    def _on_failed_auth(self, failure):
        cond = failure['condition']
        self.last_failure = failure
        self.attempts.append(cond)
        print('ATTEMPT n=%d result=failure condition=%s text=%s' % (
            len(self.attempts), q(cond), q(failure['text'])), flush=True)
        if self.retry_passwords:
            # Retry on the same stream: slixmpp's _handle_fail calls
            # _send_auth() right after this (synchronous) handler, with the
            # failed mechanism in attempted_mechs; un-mark it and change the
            # password so the same mechanism is tried again.
            self.password = self.retry_passwords.pop(0)
            self['feature_mechanisms'].attempted_mechs.discard(self['feature_mechanisms'].mech.name)
            self.stage = 'sasl-retry'
        else:
            # Do not let slixmpp fall back to another mechanism on this stream.
            self['feature_mechanisms'].use_mechs = {self['feature_mechanisms'].mech.name}
            self.finish(EXIT_SASL, 'RESULT=failure condition=%s text=%s attempts=%d connections=%d' % (
                q(cond), q(failure['text']), len(self.attempts), self.connections))

    def _on_failed_all_auth(self, _):
        if self.last_failure is None:
            offered = ','.join(sorted(self['feature_mechanisms'].mech_list)) or '-'
            self.finish(EXIT_SASL, 'RESULT=failure condition=no-mechanism offered=%s attempts=0 connections=%d'
                        % (offered, self.connections))

    def _on_auth_success(self, _):
        self.attempts.append('ok')
        print('ATTEMPT n=%d result=success' % len(self.attempts), flush=True)
        self.stage = 'bind'

    def _on_session_start(self, _):
        self.stage = 'session'
        if not self.session.done():
            self.session.set_result(True)

    def _on_message(self, msg):
        if msg['type'] in ('chat', 'normal') and msg['body']:
            self.inbox.put_nowait(msg)

    def _on_disconnected(self, reason):
        if self.stream_error is not None:
            return
        if self.unregistering:
            self.close_how = self.close_how or 'disconnected'
            self.unregistering = 'closed'
            return
        self.finish(EXIT_DISC, 'RESULT=disconnected stage=%s reason=%s attempts=%s connections=%d' % (
            self.stage, q(reason), ','.join(self.attempts) or '-', self.connections))


async def wait_file(path, timeout):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


async def session_work(c, a):
    """Runs once the session is up. Returns (code, line)."""
    c.send_presence()
    extra = []
    if a.roster_add:
        c.stage = 'roster-add'
        iq = c.Iq()
        iq['type'] = 'set'
        item = iq['roster']
        item['items'] = {a.roster_add: {'name': a.roster_name or '', 'subscription': 'none',
                                        'groups': []}}
        try:
            await iq.send(timeout=a.timeout)
        except Exception as e:  # IqError / IqTimeout
            return EXIT_CHECK, 'RESULT=error stage=roster-add reason=%s' % q(getattr(e, 'iq', e))
    if a.roster or a.roster_add:
        c.stage = 'roster-get'
        iq = c.Iq()
        iq['type'] = 'get'
        iq.enable('roster')
        try:
            res = await iq.send(timeout=a.timeout)
        except Exception as e:
            return EXIT_CHECK, 'RESULT=error stage=roster-get reason=%s' % q(getattr(e, 'iq', e))
        items = res['roster']['items']
        names = sorted(str(j) for j in items)
        print('ROSTER=%s' % (','.join(names) or '-'), flush=True)
        for j in names:
            print('ROSTER_ITEM jid=%s name=%s subscription=%s' % (
                j, q(items[j]['name']), q(items[j]['subscription'])), flush=True)
        if a.roster_add and a.roster_add not in names:
            return EXIT_CHECK, 'RESULT=error stage=roster-get reason=added_item_%s_missing' % a.roster_add
        if a.roster_add and a.roster_name and items[slixmpp.JID(a.roster_add)]['name'] != a.roster_name:
            return EXIT_CHECK, 'RESULT=error stage=roster-get reason=item_name_mismatch'
        extra.append('roster=%d' % len(names))
    if a.ready_file:
        # One IQ round trip first: the server has then processed our initial
        # presence, so a peer that starts sending now finds us available.
        c.stage = 'sync'
        iq = c.Iq()
        iq['type'] = 'get'
        iq.enable('roster')
        try:
            await iq.send(timeout=a.timeout)
        except Exception as e:
            return EXIT_CHECK, 'RESULT=error stage=sync reason=%s' % q(getattr(e, 'iq', e))
        with open(a.ready_file, 'w') as f:
            f.write(str(c.boundjid) + '\n')
    if a.wait_file:
        c.stage = 'wait-file'
        if not await wait_file(a.wait_file, a.timeout):
            return EXIT_TIMEOUT, 'RESULT=timeout stage=wait-file'

    def send():
        c.send_message(mto=a.send_to, mbody=a.body, mtype='chat')
        print('SENT to=%s body=%s' % (a.send_to, q(a.body)), flush=True)

    if a.send_to and not a.reply_after_expect:
        send()
    if a.expect_body:
        c.stage = 'expect-message'
        end = time.monotonic() + a.timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return EXIT_TIMEOUT, 'RESULT=timeout stage=expect-message'
            try:
                m = await asyncio.wait_for(c.inbox.get(), left)
            except asyncio.TimeoutError:
                return EXIT_TIMEOUT, 'RESULT=timeout stage=expect-message'
            print('RECEIVED from=%s to=%s body=%s' % (m['from'], m['to'], q(m['body'])), flush=True)
            if m['body'] == a.expect_body:
                if a.expect_from and m['from'].bare != slixmpp.JID(a.expect_from).bare:
                    return EXIT_CHECK, 'RESULT=error stage=expect-message reason=from_%s' % m['from']
                break
    if a.send_to and a.reply_after_expect:
        send()
    if a.hold:
        c.stage = 'hold'
        await asyncio.sleep(a.hold)
    version, alpn = c.tls_info()   # before --unregister ends the stream
    if a.change_password:
        c.stage = 'change-password'
        try:
            await c['xep_0077'].change_password(a.change_password, timeout=a.timeout)
            print('PASSWD result=ok', flush=True)
        except (IqError, IqTimeout) as e:
            c.print_iq_error('PASSWD', e)
            return EXIT_CHECK, 'RESULT=error stage=change-password'
    if a.unregister:
        c.stage = 'unregister'
        c.unregistering = True
        try:
            await c['xep_0077'].cancel_registration(timeout=a.timeout)
            print('UNREGISTER result=ok', flush=True)
        except (IqError, IqTimeout) as e:
            c.unregistering = False
            c.print_iq_error('UNREGISTER', e)
            return EXIT_CHECK, 'RESULT=error stage=unregister'
        # the server ends the stream after the result
        end = time.monotonic() + a.timeout
        while c.unregistering != 'closed' and time.monotonic() < end:
            await asyncio.sleep(0.05)
        extra.append('close=%s' % (c.close_how or 'none'))
    if c.iq_auth_kind:
        mech = c.iq_auth_kind
    else:
        mech = c['feature_mechanisms'].mech.name if c['feature_mechanisms'].mech else '-'
    line = 'RESULT=ok mech=%s tls=%s alpn=%s jid=%s attempts=%d connections=%d' % (
        mech, version, alpn, c.boundjid, len(c.attempts), c.connections)
    if extra:
        line += ' ' + ' '.join(extra)
    return EXIT_OK, line


async def run(a):
    c = Client(a)
    host, _, port = a.server.rpartition(':')
    host = host.strip('[]')
    c.connect((host, int(port)), use_ssl=(a.mode == 'direct'),
              force_starttls=(a.mode == 'starttls'), disable_starttls=(a.mode == 'direct'))
    if ':' in host:
        # slixmpp 1.8 takes an IPv6 literal for a domain name: it "resolves"
        # it with its default port and checks the certificate against it.
        # Connect to the literal, and verify the certificate for the JID's
        # domain, as for IPv4.
        domain = c.boundjid.domain

        async def literal(_domain, _port=None):
            return [(domain, host, int(port))]
        c.get_dns_records = literal
        c.default_domain = domain
    start = time.monotonic()
    try:
        # Either the session starts, or login ends (failure, error, close).
        waiter = asyncio.ensure_future(asyncio.wait(
            [c.session, c.done], return_when=asyncio.FIRST_COMPLETED))
        await asyncio.wait_for(waiter, a.timeout)
    except asyncio.TimeoutError:
        c.finish(EXIT_TIMEOUT, 'RESULT=timeout stage=%s attempts=%s connections=%d' % (
            c.stage, ','.join(c.attempts) or '-', c.connections))
    if not c.done.done():
        work = asyncio.ensure_future(session_work(c, a))
        await asyncio.wait([work, c.done], return_when=asyncio.FIRST_COMPLETED)
        if work.done() and not c.done.done():
            c.finish(*work.result())
        elif not work.done():
            work.cancel()
    code, line = c.done.result()
    if a.register and not c.register_reported:
        print('REGISTER result=error type=- condition=not-offered', flush=True)
    print('%s elapsed=%.3f' % (line, time.monotonic() - start), flush=True)
    c.cancel_connection_attempt()
    if c.transport is not None:
        try:
            c.disconnect(wait=1.0)
            await asyncio.wait_for(c.disconnected, 3)
        except Exception:
            c.abort()
    return code


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--jid', required=True)
    p.add_argument('--password', required=True)
    p.add_argument('--retry-password', action='append',
                   help='after a SASL failure, retry with this password on the same stream (repeatable)')
    p.add_argument('--server', required=True, help='host:port')
    p.add_argument('--mode', choices=['starttls', 'direct'], default='starttls')
    p.add_argument('--mech', default=None, help='force one SASL mechanism')
    p.add_argument('--cafile')
    p.add_argument('--tls12', action='store_true', help='cap TLS at version 1.2')
    p.add_argument('--certfile', help='client certificate (PEM), for EXTERNAL')
    p.add_argument('--keyfile', help='its key (PEM)')
    p.add_argument('--insecure', action='store_true', help='do not verify the certificate')
    p.add_argument('--timeout', type=float, default=10.0)
    p.add_argument('--resource')
    p.add_argument('--roster', action='store_true', help='fetch the roster and print it')
    p.add_argument('--roster-add', metavar='JID', help='add JID to the roster, then fetch and check it')
    p.add_argument('--roster-name')
    p.add_argument('--ready-file', help='write the bound JID here once the session is ready')
    p.add_argument('--wait-file', help='wait for this file before sending')
    p.add_argument('--send-to', metavar='JID')
    p.add_argument('--body', default='hello')
    p.add_argument('--expect-body', help='wait until a message with this body arrives')
    p.add_argument('--expect-from', help='bare JID the expected message must come from')
    p.add_argument('--reply-after-expect', action='store_true',
                   help='send --send-to only after --expect-body arrived')
    p.add_argument('--hold', type=float, default=0, help='stay online this many seconds at the end')
    p.add_argument('--iq-auth', action='store_true',
                   help='non-SASL authentication (XEP-0078) with the xep_0078 plugin')
    p.add_argument('--register', action='store_true',
                   help='register the account (XEP-0077, xep_0077 plugin) before SASL, on the same stream')
    p.add_argument('--change-password', metavar='NEWPW', help='after login, change the password (XEP-0077)')
    p.add_argument('--unregister', action='store_true', help='after login, remove the account (XEP-0077)')
    p.add_argument('-d', '--debug', action='store_true')
    a = p.parse_args()
    if ':' not in a.server:
        p.error('--server must be host:port')
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.CRITICAL,
                        format='%(levelname)s %(name)s %(message)s', stream=sys.stderr)
    if not a.debug:
        logging.getLogger('asyncio').setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        code = loop.run_until_complete(run(a))
    except KeyboardInterrupt:
        code = EXIT_TIMEOUT
    except Exception as e:  # a bug here must not look like a SASL failure (exit 1)
        import traceback
        traceback.print_exc()
        print('RESULT=error reason=internal:%s' % q(repr(e)), flush=True)
        code = EXIT_INTERNAL
    sys.exit(code)


if __name__ == '__main__':
    main()
