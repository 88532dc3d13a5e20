#!/usr/bin/python3
"""sasl2_client.py - a protocol-level XMPP client for SASL2 (XEP-0388), Bind2
(XEP-0386), FAST (XEP-0484) and inline stream resumption (XEP-0198 in SASL2),
stdlib only (socket, ssl, hashlib, hmac, xml.etree's XMLPullParser; ctypes
for the TLS exporter Python 3.11 does not expose; python3-cryptography for
the certificate's signature hash). The transport (STARTTLS or Direct TLS,
the certificate verified with --cafile, the incremental parser) is
raw_client.py's Session.

  /usr/bin/python3 t/lib/sasl2_client.py --server 127.0.0.1:5222 --cafile CA.pem \\
      --jid alice@example.test [--mode starttls|direct] [--tls12] [--timeout 10]
      [--features-only] [--sasl1]
      [--password PW | --try MECH:SECRET | --token TOKEN|@FILE]...
      [--fast-mech HT-SHA-256-NONE|-UNIQ|-EXPR|-ENDP] [--cb-type TYPE]
      [--ua-id ID [--software S] [--device D]]
      [--bind [--tag TAG] [--carbons] [--inactive] [--sm]]
      [--request-token HT-MECH] [--token-out FILE]
      [--fast-count N] [--invalidate]
      [--resume PREVID:H | --resume-file FILE] [--sm-save FILE]
      [--early] [--features-wait S] [--no-classic-bind]
      [--presence] [--send TO=BODY]... [--send-self N] [--ack]
      [--expect BODY]... [--expect-carbon sent|received:BODY]... [--read-for S]
      [--ready-file F] [--wait-file F]
      [--cut]  [-v]
  /usr/bin/python3 t/lib/sasl2_client.py --selftest    (TAP-like lines, then
      SELFTEST=ok or SELFTEST=failed:N)

Attempts (one <authenticate> each, in the order given, on ONE stream, until
one succeeds): --password PW is --try auto:PW (the strongest SCRAM the
server offers in SASL2, else PLAIN); --token T is --try fast:T (the -ENDP,
-EXPR, -UNIQ or -NONE variant per --fast-mech, default HT-SHA-256-NONE);
a SECRET of @FILE is read from FILE (first line; a token --token-out wrote).
MECH may be any of SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-512, their -PLUS
(tls-exporter on TLS 1.3, tls-unique on TLS 1.2; --cb-type overrides), PLAIN,
HT-SHA-256-NONE, -UNIQ, -EXPR, -ENDP. Every attempt carries the same
extensions: <user-agent id=--ua-id> with <software> and <device> (defaults
"sasl2_client.py", "xedge test"; no --ua-id: no user agent), <bind/>,
<request-token/>, <fast [count] [invalidate]/> (on HT attempts, always), <resume/>.

--sasl1 runs the attempts (SCRAM and PLAIN) over RFC 6120's <auth/> instead,
then restarts the stream, and resumes (--resume/--resume-file: a classic
<resume/>; on <failed/> it binds) or binds (and with --sm sends a classic
<enable resume='true'/>), then goes on as after a SASL2 login: to compare,
and to check this client against a server without SASL2 (its channel
bindings with SCRAM-PLUS, its stream management with the backend's).

--early writes the first <authenticate> right after the (post-TLS) stream
header, before reading the features. --features-only stops after the
features. After a success without inline bind the client binds classically
(RFC 6120) when the following features offer it (--tag is the resource).

Order of work after <success>: read the features that follow (up to
--features-wait seconds); classic bind if needed; --presence; write the
bound JID to --ready-file; --send TO=BODY (type chat); --send-self N (N
messages to our own full JID, each expected back); wait for every --expect
BODY and --expect-carbon sent|received:BODY (up to --timeout); --ack (an
SM <r/>, wait for <a h/>); --read-for S; with stream management on: an
unasked <a h=IN_H/> and --sm-save FILE ("PREVID IN_H", for --resume-file);
--wait-file F (nothing is read while waiting: what the server sends then
is in flight); then --cut (the socket closed: no </stream:stream>, no TLS
close_notify) or </stream:stream> and a read of whatever still comes.
The server's <r/> are answered with <a h/> whenever the client reads.

Output, one KEY=value per line (a key may repeat; a test takes the last or
all of them); values have no spaces:
  TLS=TLSv1.3  ALPN=xmpp-client|-
  CB=tls-exporter,tls-server-end-point   (bindings this client can compute)
  FEATURES=mechanisms,authentication,...  (post-TLS feature local names)
  SASL1_MECHS=...  CB_TYPES=tls-exporter,...|-  (classic; XEP-0440)
  SASL2=offered|absent   (then RESULT=check REASON=SASL2_not_offered, exit 5,
                          unless --features-only or --sasl1)
  MECHS=SCRAM-SHA-256,...       (SASL2's) INLINE=bind2,sm,fast|-
  BIND2_INLINE=carbons,csi,sm|- FAST_MECHS=HT-SHA-256-NONE,...|-
  EARLY=sent             (--early)
  per attempt:  ATTEMPT=N  MECH=M  CHALLENGES=N  CONTINUE=task,...
                AUTH=success|failure  FAILURE=condition  FAILURE_TEXT=t
                SERVER_SIG=ok|bad|absent   (SCRAM: v=; HT-*: the Responder HMAC)
  on success:   AUTHZID=jid  BOUND=yes|no  JID=full-jid  RESOURCE=r
                SM=enabled|failed|-  SM_ID=id  SM_RESUME=true|false
                SM_LOCATION=loc (there should be none)  SM_FAILED=condition
                RESUMED=yes|no  RESUME_H=h (the server's)  RESUME_FAILED=condition
                TOKEN=value  TOKEN_EXPIRY=iso  (TOKEN=- when none came)
                POSTFEATURES=bind,session,...|none   (features after <success>)
                CLASSIC_BIND=yes     (the client bound itself after them)
  afterwards:   SENT=BODY  MSG=BODY  FROM=jid  CARBON=sent:BODY|received:BODY
                ACK=h (answer to our <r/>)  OUT_H=n (stanzas we sent since SM)
                IN_H=n (stanzas we handled since SM)  MSGS=n (messages read)
                END=cut|close|eof|stream-end|stream-error:COND
  STREAM_ERROR=cond      (a <stream:error/> ended it)
  last:         RESULT=ok|failure|stream-error|closed|timeout|check|error
                REASON=... (not ok)
Exit: 0 ok, 1 last attempt failed, 2 stream error, 3 timeout, 4 closed,
5 a check failed (server signature, an expected message), 64 usage,
70 internal error.
"""
import argparse
import base64
import ctypes
import ctypes.util
import hashlib
import hmac
import os
import ssl
import sys
import time
import unicodedata
from xml.sax.saxutils import escape, quoteattr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import (Session, StreamError, Closed, Timeout, ProtocolError,  # noqa: E402
                        local, ns, serialize, NS_SASL, NS_BIND)

NS_SASL2 = 'urn:xmpp:sasl:2'
NS_BIND2 = 'urn:xmpp:bind:0'
NS_FAST = 'urn:xmpp:fast:0'
NS_SM = 'urn:xmpp:sm:3'
NS_CARBONS = 'urn:xmpp:carbons:2'
NS_CSI = 'urn:xmpp:csi:0'
NS_FWD = 'urn:xmpp:forward:0'
NS_SASL_CB = 'urn:xmpp:sasl-cb:0'
NS_CLIENT = 'jabber:client'
SHORT = {NS_CARBONS: 'carbons', NS_CSI: 'csi', NS_SM: 'sm'}
HT_CB = {'HT-SHA-256-NONE': None, 'HT-SHA-256-UNIQ': 'tls-unique',
         'HT-SHA-256-EXPR': 'tls-exporter', 'HT-SHA-256-ENDP': 'tls-server-end-point'}

EXIT_OK, EXIT_AUTH, EXIT_STREAM, EXIT_TIMEOUT, EXIT_CLOSED, EXIT_CHECK = 0, 1, 2, 3, 4, 5
EXIT_USAGE, EXIT_INTERNAL = 64, 70


def out(key, val):
    val = '-' if val is None or val == '' else str(val)
    print('%s=%s' % (key, val.replace(' ', '_').replace('\n', '_').replace('\t', '_')), flush=True)


class CheckFailed(Exception):
    pass


# ---------------------------------------------------------------- mechanisms
class Scram:
    """SCRAM client (RFC 5802, RFC 7677), with channel binding for -PLUS."""

    def __init__(self, hashname, user, password, cb_type=None, cb_data=b'', nonce=None):
        self.h = hashname
        self.gs2 = ('p=%s,,' % cb_type) if cb_type else 'n,,'
        self.cb_data = cb_data if cb_type else b''
        self.user = user.replace('=', '=3D').replace(',', '=2C')
        self.password = unicodedata.normalize('NFKC', password).encode()
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.first_bare = 'n=%s,r=%s' % (self.user, self.nonce)
        self.server_sig = None

    def initial(self):
        return (self.gs2 + self.first_bare).encode()

    def _hmac(self, key, msg):
        return hmac.new(key, msg, self.h).digest()

    def respond(self, challenge):
        server_first = challenge.decode()
        attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
        if not attrs.get('r', '').startswith(self.nonce) or attrs['r'] == self.nonce:
            raise ProtocolError('server nonce does not extend ours')
        salted = hashlib.pbkdf2_hmac(self.h, self.password, base64.b64decode(attrs['s']), int(attrs['i']))
        client_key = self._hmac(salted, b'Client Key')
        stored_key = hashlib.new(self.h, client_key).digest()
        cbind = base64.b64encode(self.gs2.encode() + self.cb_data).decode()
        without_proof = 'c=%s,r=%s' % (cbind, attrs['r'])
        auth_msg = ','.join((self.first_bare, server_first, without_proof)).encode()
        proof = bytes(a ^ b for a, b in zip(client_key, self._hmac(stored_key, auth_msg)))
        self.server_sig = self._hmac(self._hmac(salted, b'Server Key'), auth_msg)
        return (without_proof + ',p=' + base64.b64encode(proof).decode()).encode()

    def verify(self, data):
        """'ok', 'bad' or 'absent' for the server-final message DATA."""
        if not data:
            return 'absent'
        try:
            attrs = dict(kv.split('=', 1) for kv in data.decode().split(','))
            return 'ok' if hmac.compare_digest(base64.b64decode(attrs['v']), self.server_sig or b'') else 'bad'
        except (ValueError, KeyError, UnicodeDecodeError):
            return 'bad'


def ht_sha256(token, label, cb_data=b''):
    """HT-SHA-256 (draft-schmaus-kitten-sasl-ht, as XEP-0484 uses it):
    HMAC-SHA-256(key = the token, "Initiator"/"Responder" || cb-data)."""
    return hmac.new(token.encode(), label + (cb_data or b''), hashlib.sha256).digest()


def ht_initial(authcid, token, cb_data=b''):
    return authcid.encode() + b'\0' + ht_sha256(token, b'Initiator', cb_data)


# ---------------------------------------------------------------- channel bindings
_libssl = None


def tls_exporter(sock):
    """RFC 9266 tls-exporter (32 bytes, label EXPORTER-Channel-Binding, no
    context). Python 3.11's ssl has no export_keying_material: the SSL*
    is read from the _ssl._SSLSocket object (CPython 3.11's layout:
    PyObject_HEAD, PyObject *Socket, SSL *ssl) and checked before use:
    CPython stores the object itself as the SSL's app data (ex_data 0).
    None when it cannot be had."""
    global _libssl
    obj = getattr(sock, '_sslobj', None)
    if obj is None or sys.implementation.name != 'cpython':
        return None
    try:
        if _libssl is None:
            _libssl = ctypes.CDLL(ctypes.util.find_library('ssl') or 'libssl.so.3')
            _libssl.SSL_get_ex_data.restype = ctypes.c_void_p
            _libssl.SSL_get_ex_data.argtypes = [ctypes.c_void_p, ctypes.c_int]
            _libssl.SSL_export_keying_material.argtypes = [
                ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        ptr = ctypes.c_void_p.from_address(id(obj) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
        if not ptr or _libssl.SSL_get_ex_data(ptr, 0) != id(obj):
            return None
        buf = ctypes.create_string_buffer(32)
        label = b'EXPORTER-Channel-Binding'
        if _libssl.SSL_export_keying_material(ptr, buf, 32, label, len(label), None, 0, 0) != 1:
            return None
        return buf.raw
    except (OSError, AttributeError, ValueError):
        return None


def tls_server_end_point(sock):
    """RFC 5929 4.1: the server certificate's hash with its signature's hash
    (SHA-256 for MD5 and SHA-1); None without one (Ed25519)."""
    der = sock.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        from cryptography import x509
        alg = x509.load_der_x509_certificate(der).signature_hash_algorithm
    except Exception:  # noqa: BLE001 (unsupported signature: no binding)
        return None
    if alg is None:
        return None
    name = alg.name if alg.name not in ('md5', 'sha1') else 'sha256'
    return hashlib.new(name, der).digest()


def channel_binding(sock, cb_type):
    if cb_type == 'tls-unique':
        return sock.get_channel_binding('tls-unique') if sock.version() != 'TLSv1.3' else None
    if cb_type == 'tls-exporter':
        return tls_exporter(sock) if sock.version() == 'TLSv1.3' else None
    if cb_type == 'tls-server-end-point':
        return tls_server_end_point(sock)
    return None


# ---------------------------------------------------------------- the client
class Client(Session):
    def __init__(self, a):
        super().__init__(a.jid, a.server, mode=a.mode, cafile=a.cafile, insecure=a.insecure,
                         timeout=a.timeout, verbose=a.verbose, log=lambda line: print(line, flush=True) if a.verbose else None)
        self.a = a
        self.sm_on = False
        self.in_h = 0       # stanzas we handled since SM started
        self.out_h = 0      # stanzas we sent since SM started
        self.sm_id = None
        self.inbox = []     # stanzas read while waiting for something else
        self.msgs = []
        self.carbons = []
        self.ack = None
        self.bound = None

    def _wrap(self):
        if self.a.tls12:
            orig = self._ssl_context

            def ctx():
                c = orig()
                c.maximum_version = ssl.TLSVersion.TLSv1_2
                return c
            self._ssl_context = ctx
        Session._wrap(self)

    # features
    def report_features(self):
        f = self.features
        out('TLS', self.tls)
        out('ALPN', self.alpn)
        cbs = [t for t in ('tls-exporter', 'tls-unique', 'tls-server-end-point')
               if channel_binding(self.sock, t)]
        out('CB', ','.join(cbs))
        out('FEATURES', ','.join(local(c.tag) for c in f))
        mechs = f.find('{%s}mechanisms' % NS_SASL)
        out('SASL1_MECHS', ','.join(m.text or '' for m in mechs) if mechs is not None else '')
        cbt = f.find('{%s}sasl-channel-binding' % NS_SASL_CB)
        out('CB_TYPES', ','.join(c.get('type', '?') for c in cbt) if cbt is not None else '')
        s2 = f.find('{%s}authentication' % NS_SASL2)
        self.sasl2_mechs, self.fast_mechs, inline, b2 = [], [], [], []
        if s2 is None:
            out('SASL2', 'absent')
            return False
        out('SASL2', 'offered')
        self.sasl2_mechs = [m.text or '' for m in s2.findall('{%s}mechanism' % NS_SASL2)]
        out('MECHS', ','.join(self.sasl2_mechs))
        inl = s2.find('{%s}inline' % NS_SASL2)
        if inl is not None:
            for c in inl:
                if c.tag == '{%s}bind' % NS_BIND2:
                    inline.append('bind2')
                    for feat in c.iter('{%s}feature' % NS_BIND2):
                        b2.append(SHORT.get(feat.get('var'), feat.get('var')))
                elif c.tag == '{%s}sm' % NS_SM:
                    inline.append('sm')
                elif c.tag == '{%s}fast' % NS_FAST:
                    inline.append('fast')
                    self.fast_mechs = [m.text or '' for m in c.findall('{%s}mechanism' % NS_FAST)]
                else:
                    inline.append(local(c.tag))
        out('INLINE', ','.join(inline))
        out('BIND2_INLINE', ','.join(b2))
        out('FAST_MECHS', ','.join(self.fast_mechs))
        return True

    # <authenticate>
    def pick(self, mech):
        if mech != 'auto':
            return mech
        for m in ('SCRAM-SHA-512', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'):
            if m in self.sasl2_mechs:
                return m
        raise ProtocolError('no usable SASL2 mechanism offered: %s' % ','.join(self.sasl2_mechs))

    def extensions(self, is_ht):
        a = self.a
        x = ''
        if a.ua_id is not None:
            x += "<user-agent id=%s>" % quoteattr(a.ua_id)
            if a.software:
                x += '<software>%s</software>' % escape(a.software)
            if a.device:
                x += '<device>%s</device>' % escape(a.device)
            x += '</user-agent>'
        if a.bind:
            x += "<bind xmlns='%s'>" % NS_BIND2
            if a.tag:
                x += '<tag>%s</tag>' % escape(a.tag)
            if a.carbons:
                x += "<enable xmlns='%s'/>" % NS_CARBONS
            if a.inactive:
                x += "<inactive xmlns='%s'/>" % NS_CSI
            if a.sm:
                x += "<enable xmlns='%s' resume='true'/>" % NS_SM
            x += '</bind>'
        if a.request_token:
            x += "<request-token xmlns='%s' mechanism=%s/>" % (NS_FAST, quoteattr(a.request_token))
        if is_ht:  # XEP-0484: a token login says so with <fast/>
            x += "<fast xmlns='%s'%s%s/>" % (
                NS_FAST, " count='%d'" % a.fast_count if a.fast_count is not None else '',
                " invalidate='true'" if a.invalidate else '')
        if self.resume:
            x += "<resume xmlns='%s' previd=%s h='%d'/>" % (NS_SM, quoteattr(self.resume[0]), self.resume[1])
        return x

    def start_attempt(self, mech, secret):
        """The <authenticate> element and the state to finish the exchange."""
        user = self.user
        st = {'mech': mech, 'scram': None, 'ht': None}
        if mech == 'PLAIN':
            initial = b'\0' + user.encode() + b'\0' + unicodedata.normalize('NFKC', secret).encode()
        elif mech.startswith('SCRAM-'):
            plus = mech.endswith('-PLUS')
            base = mech[len('SCRAM-'):-len('-PLUS') if plus else None]
            cbt, cbd = None, b''
            if plus:
                cbt = self.a.cb_type or ('tls-exporter' if self.tls == 'TLSv1.3' else 'tls-unique')
                cbd = channel_binding(self.sock, cbt)
                if cbd is None:
                    raise ProtocolError('channel binding %s unavailable here' % cbt)
            st['scram'] = Scram(base.replace('-', '').lower(), user, secret, cbt, cbd)
            initial = st['scram'].initial()
        elif mech in HT_CB:
            cbd = b''
            if HT_CB[mech]:
                cbd = channel_binding(self.sock, HT_CB[mech])
                if cbd is None:
                    raise ProtocolError('channel binding %s unavailable here' % HT_CB[mech])
            st['ht'] = (secret, cbd)
            initial = ht_initial(user, secret, cbd)
        else:
            raise ProtocolError('mechanism %s not implemented here' % mech)
        xml = "<authenticate xmlns='%s' mechanism=%s><initial-response>%s</initial-response>%s</authenticate>" % (
            NS_SASL2, quoteattr(mech), base64.b64encode(initial).decode() or '=', self.extensions(mech in HT_CB))
        return xml, st

    def finish_attempt(self, st):
        """Read the exchange to its end. Returns the <success> element or None."""
        challenges = 0
        while True:
            el = self.recv_sasl()
            name = local(el.tag)
            if name == 'challenge':
                challenges += 1
                data = base64.b64decode(el.text or '')
                if st['scram'] is None or challenges > 1:
                    raise ProtocolError('unexpected challenge %s' % serialize(el))
                self.send("<response xmlns='%s'>%s</response>" % (
                    NS_SASL2, base64.b64encode(st['scram'].respond(data)).decode()))
            elif name == 'continue':
                tasks = [t.text or '' for t in el.iter('{%s}task' % NS_SASL2)]
                out('CHALLENGES', challenges)
                out('CONTINUE', ','.join(tasks))
                raise ProtocolError('<continue/> with tasks this client does not do')
            elif name == 'failure':
                out('CHALLENGES', challenges)
                out('AUTH', 'failure')
                cond, text = '-', ''
                for c in el:
                    if ns(c.tag) == NS_SASL and local(c.tag) != 'text':
                        cond = local(c.tag)
                    elif local(c.tag) == 'text':
                        text = c.text or ''
                out('FAILURE', cond)
                if text:
                    out('FAILURE_TEXT', text)
                self.last_failure = cond
                return None
            elif name == 'success':
                out('CHALLENGES', challenges)
                out('AUTH', 'success')
                self.success(el, st)
                return el
            else:
                raise ProtocolError('unexpected during SASL2: %s' % serialize(el))

    def sasl1_attempt(self, mech, secret):
        """--sasl1: the same mechanism over RFC 6120's <auth/> (to compare,
        and to check this client's channel bindings against a server that
        has SCRAM-PLUS but no SASL2). Returns True on success."""
        xml, st = self.start_attempt(mech, secret)
        initial = xml.split('<initial-response>')[1].split('<')[0]
        self.send("<auth xmlns='%s' mechanism=%s>%s</auth>" % (NS_SASL, quoteattr(mech), initial))
        challenges = 0
        while True:
            el = self.recv()
            name = local(el.tag)
            if ns(el.tag) != NS_SASL:
                raise ProtocolError('expected a SASL element, got %s' % serialize(el))
            if name == 'challenge' and st['scram'] and challenges == 0:
                challenges += 1
                self.send("<response xmlns='%s'>%s</response>" % (NS_SASL, base64.b64encode(
                    st['scram'].respond(base64.b64decode(el.text or ''))).decode()))
            elif name == 'success':
                out('CHALLENGES', challenges)
                out('AUTH', 'success')
                data = base64.b64decode(el.text or '') if (el.text or '=') != '=' else b''
                self.server_sig = st['scram'].verify(data) if st['scram'] else ('absent' if not data else 'unexpected')
                out('SERVER_SIG', self.server_sig)
                return True
            elif name == 'failure':
                out('CHALLENGES', challenges)
                out('AUTH', 'failure')
                self.last_failure = next((local(c.tag) for c in el if local(c.tag) != 'text'), '-')
                out('FAILURE', self.last_failure)
                return False
            else:
                raise ProtocolError('unexpected during SASL: %s' % serialize(el))

    def recv_sasl(self):
        el = self.recv()
        if ns(el.tag) != NS_SASL2:
            raise ProtocolError('expected a SASL2 element, got %s' % serialize(el))
        return el

    def success(self, el, st):
        ad = el.find('{%s}additional-data' % NS_SASL2)
        data = base64.b64decode(ad.text or '') if ad is not None else b''
        if st['scram']:
            sig = st['scram'].verify(data)
        elif st['ht']:
            sig = 'absent' if not data else (
                'ok' if hmac.compare_digest(data, ht_sha256(st['ht'][0], b'Responder', st['ht'][1])) else 'bad')
        else:
            sig = 'absent' if not data else 'unexpected'
        out('SERVER_SIG', sig)
        self.server_sig = sig
        az = el.findtext('{%s}authorization-identifier' % NS_SASL2)
        out('AUTHZID', az)
        bound = el.find('{%s}bound' % NS_BIND2)
        out('BOUND', 'yes' if bound is not None else 'no')
        if bound is not None and az and '/' in az:
            self.bound = az
        # SM: in <bound/> (Bind2's enable), or at the top (inline resume)
        sm_enabled = sm_failed = resumed = resume_failed = None
        for c in el.iter():
            if c.tag == '{%s}enabled' % NS_SM:
                sm_enabled = c
            elif c.tag == '{%s}resumed' % NS_SM:
                resumed = c
            elif c.tag == '{%s}failed' % NS_SM:
                # a <failed/> inside <bound/> is the enable's; beside it, the resume's
                if bound is not None and c in list(bound):
                    sm_failed = c
                else:
                    resume_failed = c
        if self.resume:
            out('RESUMED', 'yes' if resumed is not None else 'no')
            if resumed is not None:
                out('RESUME_H', resumed.get('h'))
                self.sm_on, self.sm_id = True, self.resume[0]
                self.in_h = self.resume[1]
                self.out_h = int(resumed.get('h') or 0)
            if resume_failed is not None:
                out('RESUME_FAILED', next((local(x.tag) for x in resume_failed), '-'))
        if sm_enabled is not None:
            out('SM', 'enabled')
            out('SM_ID', sm_enabled.get('id'))
            out('SM_RESUME', sm_enabled.get('resume', 'false'))
            if sm_enabled.get('location'):
                out('SM_LOCATION', sm_enabled.get('location'))
            self.sm_on, self.sm_id, self.in_h, self.out_h = True, sm_enabled.get('id'), 0, 0
        elif sm_failed is not None:
            out('SM', 'failed')
            out('SM_FAILED', next((local(x.tag) for x in sm_failed), '-'))
        elif self.a.sm:
            out('SM', '-')
        tok = el.find('{%s}token' % NS_FAST)
        if tok is not None:
            out('TOKEN', tok.get('token'))
            out('TOKEN_EXPIRY', tok.get('expiry'))
            if self.a.token_out:
                with open(self.a.token_out, 'w') as fh:
                    fh.write((tok.get('token') or '') + '\n')
        elif self.a.request_token:
            out('TOKEN', '-')

    # after the login
    def post_login(self):
        """The features that follow <success> (none: after a short wait)."""
        keep = self.deadline
        self.deadline = min(keep, time.monotonic() + self.a.features_wait)
        try:
            while True:
                el = self.recv()
                if el.tag == '{http://etherx.jabber.org/streams}features':
                    out('POSTFEATURES', ','.join(local(c.tag) for c in el) or '-')
                    self.features = el
                    break
                self.inbox.append(el)
        except Timeout:
            out('POSTFEATURES', 'none')
            self.features = None
        finally:
            self.deadline = keep
        if self.bound is None and self.features is not None and \
                self.features.find('{%s}bind' % NS_BIND) is not None and not self.a.no_classic_bind:
            self.classic_bind()
        if self.bound:
            out('JID', self.bound)
            out('RESOURCE', self.bound.split('/', 1)[1])

    def classic_bind(self):
        res = "<resource>%s</resource>" % escape(self.a.tag) if self.a.tag else ''
        self.send("<iq type='set' id='bind1'><bind xmlns='%s'>%s</bind></iq>" % (NS_BIND, res))
        while True:
            el = self.recv()
            if local(el.tag) == 'iq' and el.get('id') == 'bind1':
                if el.get('type') != 'result':
                    raise ProtocolError('bind refused: %s' % serialize(el))
                self.bound = el.findtext('{%s}bind/{%s}jid' % (NS_BIND, NS_BIND))
                out('CLASSIC_BIND', 'yes')
                if self.features.find('{urn:ietf:params:xml:ns:xmpp-session}session') is not None:
                    self.send_stanza("<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
                    while True:
                        el = self.recv()
                        if local(el.tag) == 'iq' and el.get('id') == 'sess1':
                            break
                        self.inbox.append(el)
                return
            self.inbox.append(el)

    def classic_sm(self, what):
        """--sasl1: XEP-0198 the classic way (<enable/> after the bind, or
        <resume/> instead of it), with the same KEY=value lines as inline."""
        if what == 'resume':
            self.send("<resume xmlns='%s' previd=%s h='%d'/>" % (NS_SM, quoteattr(self.resume[0]), self.resume[1]))
        else:
            self.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
        while True:
            el = self.recv()
            if ns(el.tag) == NS_SM and local(el.tag) in ('enabled', 'resumed', 'failed'):
                break
            self.inbox.append(el)
        # what came before the answer is not counted (XEP-0198 counts from
        # <enabled/> on): handle it now, with stream management still off
        early, self.inbox = self.inbox, []
        for e in early:
            self.handle(e)
        name = local(el.tag)
        if what == 'resume':
            out('RESUMED', 'yes' if name == 'resumed' else 'no')
            if name == 'resumed':
                out('RESUME_H', el.get('h'))
                self.sm_on, self.sm_id, self.in_h = True, self.resume[0], self.resume[1]
                self.out_h = int(el.get('h') or 0)
            else:
                out('RESUME_FAILED', next((local(x.tag) for x in el), '-'))
        elif name == 'enabled':
            out('SM', 'enabled')
            out('SM_ID', el.get('id'))
            out('SM_RESUME', el.get('resume', 'false'))
            if el.get('location'):
                out('SM_LOCATION', el.get('location'))
            self.sm_on, self.sm_id, self.in_h, self.out_h = True, el.get('id'), 0, 0
        else:
            out('SM', 'failed')
            out('SM_FAILED', next((local(x.tag) for x in el), '-'))

    def send_stanza(self, xml):
        self.send(xml)
        if self.sm_on:
            self.out_h += 1

    def handle(self, el):
        """One element after the login; returns True for what it consumed."""
        if el.tag == '{%s}r' % NS_SM:
            self.send("<a xmlns='%s' h='%d'/>" % (NS_SM, self.in_h))
            return
        if el.tag == '{%s}a' % NS_SM:
            self.ack = int(el.get('h', '-1'))
            out('ACK', self.ack)
            return
        if ns(el.tag) == NS_CLIENT and local(el.tag) in ('message', 'presence', 'iq'):
            if self.sm_on:
                self.in_h += 1
            if local(el.tag) == 'iq' and el.get('type') in ('get', 'set'):
                self.send_stanza("<iq type='error' id=%s to=%s><error type='cancel'><service-unavailable "
                                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % (
                                     quoteattr(el.get('id', '')), quoteattr(el.get('from', ''))))
            if local(el.tag) == 'message':
                body = el.findtext('{%s}body' % NS_CLIENT)
                for kind in ('sent', 'received'):
                    c = el.find('{%s}%s' % (NS_CARBONS, kind))
                    if c is not None:
                        inner = c.find('{%s}forwarded/{%s}message' % (NS_FWD, NS_CLIENT))
                        b = inner.findtext('{%s}body' % NS_CLIENT) if inner is not None else None
                        self.carbons.append('%s:%s' % (kind, b))
                        out('CARBON', '%s:%s' % (kind, b))
                        return
                if body is not None:
                    self.msgs.append(body)
                    out('MSG', body)
                    out('FROM', el.get('from'))
            return
        if self.a.verbose:
            self.log('OTHER %s' % serialize(el))

    def read_for(self, seconds, want=lambda: False):
        """Handle elements for SECONDS, or until want() holds."""
        end = time.monotonic() + seconds
        keep = self.deadline
        try:
            while not want():
                if self.inbox:
                    self.handle(self.inbox.pop(0))
                    continue
                self.deadline = min(keep, end)
                if time.monotonic() >= self.deadline:
                    break
                try:
                    self.handle(self.recv())
                except Timeout:
                    break
        finally:
            self.deadline = keep


def wait_file(path, deadline):
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise Timeout()
        time.sleep(0.05)


def run(a):
    c = Client(a)
    c.resume = None
    c.last_failure = '-'
    if a.resume:
        p, _, h = a.resume.rpartition(':')
        c.resume = (p, int(h))
    elif a.resume_file:
        try:
            with open(a.resume_file) as fh:
                p, h = fh.read().split()
        except (OSError, ValueError) as e:
            raise ProtocolError('no stream management state: %s' % e)
        c.resume = (p, int(h))
    tries = a.tries or []
    if a.early and not tries:
        raise ProtocolError('--early needs an attempt')
    # connect; --early sends the first <authenticate> before reading features
    early = None
    if a.early:
        c.deadline = time.monotonic() + c.timeout
        mech, secret = tries[0]
        if mech == 'auto' or mech.endswith('-PLUS') or (mech in HT_CB and HT_CB[mech]):
            raise ProtocolError('--early needs a mechanism without binding, named')
        orig_open = c.open_stream

        def open_early():
            if c.mode == 'direct' or c.tls != '-':
                c._new_parser()
                xml, st = c.start_attempt(mech, secret)
                c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>%s"
                       % (c.domain, xml))
                out('EARLY', 'sent')
                nonlocal early
                early = (mech, st)
                el = c.recv()
                if el.tag != '{http://etherx.jabber.org/streams}features':
                    raise ProtocolError('expected features, got %s' % serialize(el))
                c.features = el
                return el
            return orig_open()
        c.open_stream = open_early
    c.connect()
    sasl2 = c.report_features()
    if a.features_only:
        return EXIT_OK, 'ok', ''
    if a.sasl1:
        for n, (mech, secret) in enumerate(tries, 1):
            out('ATTEMPT', n)
            mech = 'SCRAM-SHA-256' if mech == 'auto' else mech
            if secret.startswith('@'):
                with open(secret[1:]) as fh:
                    secret = fh.readline().strip()
            out('MECH', mech)
            if c.sasl1_attempt(mech, secret):
                break
        else:
            return EXIT_AUTH, 'failure', 'condition=%s' % c.last_failure
        if c.server_sig in ('bad', 'unexpected'):
            return EXIT_CHECK, 'check', 'server signature %s' % c.server_sig
        c.open_stream()
        out('POSTFEATURES', ','.join(local(x.tag) for x in c.features) or '-')
        if c.resume:
            c.classic_sm('resume')
        if not c.sm_on and c.features.find('{%s}bind' % NS_BIND) is not None:
            c.classic_bind()
            if a.sm:
                c.classic_sm('enable')
        if c.bound:
            out('JID', c.bound)
        return after_login(c, a)
    if not sasl2:
        return EXIT_CHECK, 'check', 'SASL2 not offered'
    ok = None
    n = 0
    for i, (mech, secret) in enumerate(tries):
        n += 1
        out('ATTEMPT', n)
        if i == 0 and early:
            mech, st = early
        else:
            mech = c.pick(mech) if mech != 'fast' else a.fast_mech
            if secret.startswith('@'):
                try:
                    with open(secret[1:]) as fh:
                        secret = fh.readline().strip()
                except OSError as e:
                    raise ProtocolError('no token: %s' % e)
            xml, st = c.start_attempt(mech, secret)
            c.send(xml)
        out('MECH', mech)
        ok = c.finish_attempt(st)
        if ok is not None:
            break
    if ok is None:
        return EXIT_AUTH, 'failure', 'condition=%s' % getattr(c, 'last_failure', '-')
    if c.server_sig in ('bad', 'unexpected'):
        return EXIT_CHECK, 'check', 'server signature %s' % c.server_sig
    c.post_login()
    return after_login(c, a)


def after_login(c, a):
    if a.presence:
        c.send_stanza('<presence/>')
    if a.ready_file:
        with open(a.ready_file + '.tmp', 'w') as fh:
            fh.write((c.bound or '-') + '\n')
        os.rename(a.ready_file + '.tmp', a.ready_file)
    for spec in a.send or []:
        to, _, body = spec.partition('=')
        c.send_stanza("<message type='chat' to=%s><body>%s</body></message>" % (quoteattr(to), escape(body)))
        out('SENT', body)
    if a.send_self:
        if not c.bound:
            return EXIT_CHECK, 'check', 'no full JID to send to'
        for k in range(a.send_self):
            body = 'self-%d-%d-%d' % (os.getpid(), k, int(time.time() * 1000))
            c.send_stanza("<message type='chat' to=%s><body>%s</body></message>" % (quoteattr(c.bound), escape(body)))
            out('SENT', body)
            a.expect = (a.expect or []) + [body]
    want_msgs = list(a.expect or [])
    want_carbons = list(a.expect_carbon or [])

    def satisfied():
        return all(w in c.msgs for w in want_msgs) and all(w in c.carbons for w in want_carbons)
    if want_msgs or want_carbons:
        c.read_for(max(a.read_for, a.timeout), satisfied)
    if a.ack:
        if not c.sm_on:
            return EXIT_CHECK, 'check', 'no stream management to ask an ack of'
        c.ack = None
        c.send("<r xmlns='%s'/>" % NS_SM)
        c.read_for(a.timeout, lambda: c.ack is not None)
    if a.read_for:
        c.read_for(a.read_for)
    if c.sm_on:
        # acknowledge what we handled, unasked (XEP-0198 allows it), so that
        # the server's queue holds exactly what we did not get
        c.send("<a xmlns='%s' h='%d'/>" % (NS_SM, c.in_h))
        out('OUT_H', c.out_h)
        out('IN_H', c.in_h)
        if a.sm_save:
            with open(a.sm_save + '.tmp', 'w') as fh:
                fh.write('%s %d\n' % (c.sm_id, c.in_h))
            os.rename(a.sm_save + '.tmp', a.sm_save)
    if a.wait_file:
        # nothing is read from here on: what arrives now is in flight
        wait_file(a.wait_file, time.monotonic() + a.timeout)
    out('MSGS', len(c.msgs))
    if a.cut:
        c.sock.close()  # no </stream:stream>, no close_notify
        out('END', 'cut')
    else:
        c.send('</stream:stream>')
        try:
            c.read_for(3)
            c.recv()
            out('END', 'close')
        except Closed as e:
            out('END', e.how)
        except Timeout:
            out('END', 'close')
        except StreamError as e:
            out('END', 'stream-error:' + e.condition)
    missing = [w for w in want_msgs if w not in c.msgs] + [w for w in want_carbons if w not in c.carbons]
    if missing:
        return EXIT_CHECK, 'check', 'missing=%s' % ','.join(missing)
    if a.ack and c.ack is None:
        return EXIT_CHECK, 'check', 'no ack'
    return EXIT_OK, 'ok', ''


# ---------------------------------------------------------------- self-test
def selftest():
    """RFC 5802 (SHA-1) and RFC 7677 (SHA-256) examples; the HT-SHA-256
    vectors of t/unit/fast.c; the GS2 header of -PLUS."""
    fails = 0

    def check(cond, what):
        nonlocal fails
        print('%s - %s' % ('ok' if cond else 'not ok', what))
        fails += 0 if cond else 1
    for h, nonce, sfirst, cfinal, sfinal in (
        ('sha1', 'fyko+d2lbbFgONRv9qkxdawL',
         'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
         'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
         'v=rmF9pqV8S7suAoZWja4dJRkFsKQ='),
        ('sha256', 'rOprNGfwEbeRWgbNEkqO',
         'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
         'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
         'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')):
        s = Scram(h, 'user', 'pencil', nonce=nonce)
        check(s.initial() == ('n,,n=user,r=' + nonce).encode(), 'SCRAM-%s client-first' % h)
        check(s.respond(sfirst.encode()) == cfinal.encode(), 'SCRAM-%s client-final (RFC %s)' % (h, '5802' if h == 'sha1' else '7677'))
        check(s.verify(sfinal.encode()) == 'ok', 'SCRAM-%s server signature verified' % h)
        check(s.verify(b'v=' + base64.b64encode(b'\0' * 20)) == 'bad', 'SCRAM-%s wrong server signature refused' % h)
    s = Scram('sha512', 'user', 'pencil', 'tls-exporter', b'\1' * 32, nonce='abc')
    check(s.initial() == b'p=tls-exporter,,n=user,r=abc', 'SCRAM -PLUS gs2 header')
    r = s.respond(b'r=abcdef,s=QSXCR+Q6sek8bf92,i=4096')
    check(r.startswith(b'c=' + base64.b64encode(b'p=tls-exporter,,' + b'\1' * 32) + b',r=abcdef,p='),
          'SCRAM -PLUS c= carries the gs2 header and the binding')
    check(len(base64.b64decode(r.split(b',p=')[1])) == 64, 'SCRAM-SHA-512 proof is 64 bytes')
    tok = 'secret-token:fast-Iu7Hs2yTxk4-LkeO'
    cb = bytes(range(1, 33))
    want = ['d7692e76b4000dcb805ee9b33276a17ce94b8df597b9cc4b93674ebe788ecb2a',
            '05006ff9830330239464236948b0772e125e4b013cbdbe0b8dafc346d3c69c1f',
            '4edc64c807f0ccfb7e90ace44ea53d69914b1a5347ca7207d44774e036c143e7',
            '0f1a1f1ef1f5b17bd48a5c2fe19f24a36a2797440c64122e909e3570189317df']
    got = [ht_sha256(tok, lab, c).hex() for lab in (b'Initiator', b'Responder') for c in (b'', cb)]
    for i in range(4):
        check(got[i] == want[i], 'HT-SHA-256 vector %d (t/unit/fast.c)' % (i + 1))
    ir = ht_initial('alice', tok)
    check(ir.split(b'\0', 1) == [b'alice', bytes.fromhex(want[0])], 'HT initial response: authcid NUL proof')
    print('SELFTEST=%s' % ('ok' if fails == 0 else 'failed:%d' % fails))
    return 0 if fails == 0 else 1


# ---------------------------------------------------------------- main
class AddTry(argparse.Action):
    def __call__(self, parser, ns_, value, option):
        tries = getattr(ns_, 'tries', None) or []
        if option == '--password':
            tries.append(('auto', value))
        elif option == '--token':
            tries.append(('fast', value))
        else:
            m, sep, s = value.partition(':')
            if not sep:
                parser.error('--try MECH:SECRET')
            tries.append((m, s))
        ns_.tries = tries


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--selftest', action='store_true')
    p.add_argument('--server')
    p.add_argument('--mode', choices=('starttls', 'direct'), default='starttls')
    p.add_argument('--cafile')
    p.add_argument('--insecure', action='store_true')
    p.add_argument('--tls12', action='store_true')
    p.add_argument('--timeout', type=float, default=10.0)
    p.add_argument('--jid')
    p.add_argument('--features-only', action='store_true')
    p.add_argument('--password', action=AddTry, dest='tries')
    p.add_argument('--token', action=AddTry, dest='tries')
    p.add_argument('--try', action=AddTry, dest='tries')
    p.add_argument('--fast-mech', default='HT-SHA-256-NONE', choices=sorted(HT_CB))
    p.add_argument('--cb-type', choices=('tls-exporter', 'tls-unique', 'tls-server-end-point'))
    p.add_argument('--ua-id')
    p.add_argument('--software', default='sasl2_client.py')
    p.add_argument('--device', default='xedge test')
    p.add_argument('--bind', action='store_true')
    p.add_argument('--tag')
    p.add_argument('--carbons', action='store_true')
    p.add_argument('--inactive', action='store_true')
    p.add_argument('--sm', action='store_true')
    p.add_argument('--request-token', metavar='HT-MECH')
    p.add_argument('--token-out')
    p.add_argument('--fast-count', type=int)
    p.add_argument('--invalidate', action='store_true')
    p.add_argument('--resume', metavar='PREVID:H')
    p.add_argument('--resume-file')
    p.add_argument('--sm-save')
    p.add_argument('--early', action='store_true')
    p.add_argument('--sasl1', action='store_true')
    p.add_argument('--no-classic-bind', action='store_true')
    p.add_argument('--features-wait', type=float, default=3.0)
    p.add_argument('--presence', action='store_true')
    p.add_argument('--send', action='append', metavar='TO=BODY')
    p.add_argument('--send-self', type=int, default=0)
    p.add_argument('--ack', action='store_true')
    p.add_argument('--expect', action='append', metavar='BODY')
    p.add_argument('--expect-carbon', action='append', metavar='sent|received:BODY')
    p.add_argument('--read-for', type=float, default=0.0)
    p.add_argument('--ready-file')
    p.add_argument('--wait-file')
    p.add_argument('--cut', action='store_true')
    p.add_argument('-v', '--verbose', action='store_true')
    a = p.parse_args()
    if a.selftest:
        return selftest()
    if not a.server or not a.jid or '@' not in a.jid:
        p.error('--server and --jid user@domain are needed')
    if not a.features_only and not a.tries:
        p.error('no attempt: --password, --token or --try')
    try:
        code, res, why = run(a)
    except StreamError as e:
        out('STREAM_ERROR', e.condition)
        code, res, why = EXIT_STREAM, 'stream-error', 'condition=%s' % e.condition
    except Closed as e:
        code, res, why = EXIT_CLOSED, 'closed', e.how
    except Timeout:
        code, res, why = EXIT_TIMEOUT, 'timeout', ''
    except ProtocolError as e:
        code, res, why = EXIT_CHECK, 'error', str(e)
    except ssl.SSLCertVerificationError as e:
        code, res, why = EXIT_CHECK, 'error', 'certificate: %s' % e.verify_message
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        code, res, why = EXIT_INTERNAL, 'error', '%s: %s' % (type(e).__name__, e)
    out('RESULT', res)
    if why:
        out('REASON', why)
    return code


if __name__ == '__main__':
    sys.exit(main())
