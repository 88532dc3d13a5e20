#!/usr/bin/python3
"""raw_client.py - a byte-level XMPP c2s client (stdlib only: socket, ssl,
hashlib, hmac) for observing exactly what a server answers.

STARTTLS or Direct TLS (ALPN xmpp-client), then SASL (SCRAM-SHA-256,
SCRAM-SHA-1 or PLAIN, written by hand), every attempt on the SAME stream, then
stream restart and resource binding. Each SASL answer is printed verbatim.

  /usr/bin/python3 t/lib/raw_client.py --jid alice@example.test \\
      --password wrong --password right --server 127.0.0.1:5222 \\
      [--mode starttls|direct] [--mech SCRAM-SHA-256] [--cafile F | --insecure] \\
      [--timeout 10] [--no-bind] [--expect-close SECONDS] [--source ADDR] [-v]
      [--compress METHOD] [--send-self TOKEN] [--bomb MIB] [--hold SECONDS]
      [--proxy v1|v2 --proxy-src ADDR:PORT] [--gs2 n|y]

--gs2 n|y: the SCRAM gs2 channel-binding flag sent (default n; this client
binds nothing). With it, --mech may name a SCRAM-*-PLUS mechanism: the
client then claims -PLUS without binding, as a broken or hostile client
would (RFC 5802 section 6: the server must refuse it).

--password may be given several times: one SASL attempt each, in order, on one
stream, stopping at the first success. --source: the local address to connect
from (e.g. 127.0.0.2, to look like another host on loopback).

--proxy v1|v2 --proxy-src ADDR:PORT: start the connection with a PROXY
protocol header (haproxy's proxy-protocol.txt, v1 text or v2 binary) that
says the client is ADDR:PORT (IPv4, or IPv6 in brackets) and the
destination is --server, as a load balancer in front of xedge would.

--compress METHOD: after authentication, ask for XEP-0138 stream compression
with METHOD on the restarted stream (zlib: Python's zlib, a sync flush per
send) and, once <compressed/>, restart the stream again before binding.
--send-self TOKEN: after binding, send initial presence and a message with
body TOKEN to our own full JID, and wait for it to come back.
--bomb MIB: after binding, send MIB MiB of white space (compressed when the
stream is: a "zip bomb" of about 1000:1), then --send-self if given.

Output (stdout):
  FEATURES stage=pre-tls|post-tls|post-auth|post-compress list=starttls,mechanisms:...
  COMPRESS method=M result=compressed|failure condition=COND
  BOMB plain=BYTES sent=BYTES
  ECHO body=TOKEN after=SECONDS
  TLS version=TLSv1.3 alpn=xmpp-client cipher=...
  SASL n=1 mech=SCRAM-SHA-256 result=failure condition=not-authorized steps=1 raw=<failure .../>
      (steps = number of <challenge/>s the server sent in that attempt)
  TIMING n=1 took=0.012   (seconds from that attempt's <auth/> to the answer)
  READY jid=...  then  CLOSE how=stream-error:COND|stream-end|eof|reset|bad-xml|none
      after=SECONDS stanzas=N   (with --hold SECONDS, after the bind)
      then CLOSE-TEXT text=T    (the stream error's text, spaces as _, if any)
  CLOSE how=stream-end|eof|reset|stream-error:COND after=SECONDS   (with --expect-close)
  RESULT=ok mech=... tls=... jid=... attempts=N elapsed=S
  RESULT=failure condition=COND attempts=N closed=yes|no elapsed=S
  RESULT=stream-error condition=COND text=T stage=STAGE attempts=N elapsed=S
  RESULT=closed how=eof|stream-end|reset stage=STAGE attempts=N elapsed=S
  RESULT=timeout stage=STAGE attempts=N elapsed=S
  RESULT=error reason=... stage=STAGE

Exit codes as xmpp_client.py: 0 ok, 1 SASL failure, 2 stream error,
3 timeout, 4 closed / connection failed, 5 protocol error, 70 internal error.

Non-SASL authentication (XEP-0078) instead of SASL, with --iq-auth plain|digest:
the iq-auth get, then one set per --password on the same stream (--resource
is the resource), then a ping to the domain and a message to the bound full
JID, both of which must come back through the backend:
  IQAUTH get fields=username+password+digest+resource raw=<iq .../>
  IQAUTH n=1 result=error condition=not-authorized code=401 raw=<iq .../>
  IQAUTH n=2 result=ok raw=<iq .../>
  ECHO ping=ok message=ok jid=alice@example.test/res
  RESULT=ok mech=iq-auth tls=... jid=<full JID> attempts=N elapsed=S
--pipeline sends the ping in the same write as the (last) set, before its
result. A refused set that ends the stream shows as RESULT=stream-error or
RESULT=closed; the last refusal otherwise as RESULT=failure condition=COND.

Also importable (bench/login-bench uses Session).
"""
import argparse
import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import sys
import time
import unicodedata
import zlib
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

NS_STREAM = 'http://etherx.jabber.org/streams'
NS_CLIENT = 'jabber:client'
NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls'
NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl'
NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-streams'
NS_IQ_AUTH = 'jabber:iq:auth'
NS_FEATURE_IQ_AUTH = 'http://jabber.org/features/iq-auth'
NS_STANZA_ERRORS = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_COMPRESS_FEATURE = 'http://jabber.org/features/compress'
NS_COMPRESS = 'http://jabber.org/protocol/compress'

EXIT_OK, EXIT_SASL, EXIT_STREAM, EXIT_TIMEOUT, EXIT_CLOSED, EXIT_PROTO, EXIT_INTERNAL = 0, 1, 2, 3, 4, 5, 70


class StreamError(Exception):
    def __init__(self, condition, text, raw):
        super().__init__('stream error %s' % condition)
        self.condition, self.text, self.raw = condition, text, raw


class Closed(Exception):
    def __init__(self, how):
        super().__init__('closed: %s' % how)
        self.how = how


class Timeout(Exception):
    pass


class ProtocolError(Exception):
    pass


def local(tag):
    return tag.rsplit('}', 1)[-1]


def ns(tag):
    return tag[1:].split('}', 1)[0] if tag.startswith('{') else ''


def serialize(el, parent_ns=None):
    """Compact, deterministic XML: <name xmlns='..' a='..'>...</name>."""
    name, uri = local(el.tag), ns(el.tag)
    out = '<' + name
    if uri != parent_ns:
        out += " xmlns='%s'" % uri
    for k in sorted(el.attrib):
        kn = local(k) if not k.startswith('{http://www.w3.org/XML/1998/namespace}') else 'xml:' + local(k)
        out += " %s='%s'" % (kn, escape(el.attrib[k], {"'": '&apos;'}))
    if len(el) == 0 and not el.text:
        return out + '/>'
    out += '>' + escape(el.text or '')
    for c in el:
        out += serialize(c, uri) + escape(c.tail or '')
    return out + '</%s>' % name


def saslprep(s):
    # Good enough for tests: NFKC (RFC 4013's mapping is a superset of what we use).
    return unicodedata.normalize('NFKC', s)


class Scram:
    def __init__(self, hashname, user, password, gs2='n'):
        self.h = hashname
        self.gs2 = gs2 + ',,'
        self.user = user.replace('=', '=3D').replace(',', '=2C')
        self.password = saslprep(password).encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = 'n=%s,r=%s' % (self.user, self.nonce)
        self.server_sig = None

    def initial(self):
        return (self.gs2 + self.first_bare).encode()

    def _hmac(self, key, msg):
        return hmac.new(key, msg, self.h).digest()

    def respond(self, challenge):
        server_first = challenge.decode()
        attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
        if not attrs.get('r', '').startswith(self.nonce):
            raise ProtocolError('server nonce does not extend ours')
        salt = base64.b64decode(attrs['s'])
        iters = int(attrs['i'])
        salted = hashlib.pbkdf2_hmac(self.h, self.password, salt, iters)
        client_key = self._hmac(salted, b'Client Key')
        stored_key = hashlib.new(self.h, client_key).digest()
        without_proof = 'c=%s,r=%s' % (base64.b64encode(self.gs2.encode()).decode(), attrs['r'])
        auth_msg = ','.join((self.first_bare, server_first, without_proof)).encode()
        sig = self._hmac(stored_key, auth_msg)
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_sig = self._hmac(self._hmac(salted, b'Server Key'), auth_msg)
        return (without_proof + ',p=' + base64.b64encode(proof).decode()).encode()

    def verify(self, data):
        if not data:
            raise ProtocolError('SCRAM success without server signature')
        attrs = dict(kv.split('=', 1) for kv in data.decode().split(','))
        if 'v' not in attrs or base64.b64decode(attrs['v']) != self.server_sig:
            raise ProtocolError('bad SCRAM server signature')


class Session:
    """One c2s stream, driven synchronously. Every method raises StreamError,
    Closed, Timeout or ProtocolError instead of returning garbage."""

    def __init__(self, jid, server, mode='starttls', cafile=None, insecure=False,
                 timeout=10.0, verbose=False, log=None):
        self.jid = jid
        self.user, _, self.domain = jid.partition('@')
        self.domain = self.domain.split('/')[0]
        host, _, port = server.rpartition(':')
        self.addr = (host.strip('[]'), int(port))
        self.mode = mode
        self.cafile, self.insecure = cafile, insecure
        self.timeout = timeout
        self.deadline = None
        self.verbose = verbose
        self.log = log or (lambda line: print(line, flush=True))
        self.sock = None
        self.parser = None
        self.depth = 0
        self.queue = []
        self.stream_attrs = None
        self.features = None
        self.tls = '-'
        self.alpn = '-'
        self.stage = 'connect'
        self.mechanisms = []
        self.bound_jid = None
        self.server_closed = None
        self.challenges = 0
        self.source = None  # a local address to connect from (set before connect())
        self.proxy = None  # (version 'v1'|'v2', 'ADDR:PORT'): a PROXY header first
        self.zout = self.zin = None  # zlib streams, once compressed (XEP-0138)
        self.gs2 = None  # the SCRAM gs2 flag ('n' or 'y'; None: 'n', no -PLUS)

    # -- transport ----------------------------------------------------
    def _left(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        return left

    def _ssl_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.cafile:
            ctx.load_verify_locations(cafile=self.cafile)
        else:
            ctx.load_default_certs()
        if self.mode == 'direct':
            ctx.set_alpn_protocols(['xmpp-client'])
        return ctx

    def _wrap(self):
        self.stage = 'tls'
        self.sock.settimeout(self._left())
        try:
            self.sock = self._ssl_context().wrap_socket(self.sock, server_hostname=self.domain)
        except socket.timeout:
            raise Timeout()
        except (ConnectionError, ssl.SSLEOFError):
            raise Closed('reset')
        except ssl.SSLCertVerificationError:
            raise
        except ssl.SSLError as e:
            raise ProtocolError('TLS handshake: %s' % (e.reason or e))
        self.tls = self.sock.version()
        self.alpn = self.sock.selected_alpn_protocol() or '-'
        self.log('TLS version=%s alpn=%s cipher=%s' % (self.tls, self.alpn, self.sock.cipher()[0]))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.verbose:
            self.log('SEND %s' % data.decode(errors='replace')[:2000])
        if self.zout is not None:
            data = self.zout.compress(data) + self.zout.flush(zlib.Z_SYNC_FLUSH)
        try:
            self.sock.settimeout(self._left())
            self.sock.sendall(data)
        except socket.timeout:
            raise Timeout()
        except (ConnectionError, ssl.SSLError, OSError):
            raise Closed('reset')

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=('start', 'end'))
        self.depth = 0
        self.queue = []

    def _pump(self):
        for ev, el in self.parser.read_events():
            if ev == 'start':
                self.depth += 1
                if self.depth == 1:
                    if el.tag != '{%s}stream' % NS_STREAM:
                        raise ProtocolError('not a stream header: %s' % el.tag)
                    self.stream_attrs = dict(el.attrib)
                    if self.verbose:
                        self.log('RECV <stream:stream %s>' % ' '.join('%s=%r' % (local(k), v) for k, v in el.attrib.items()))
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.queue.append(el)
                elif self.depth == 0:
                    self.queue.append(None)  # </stream:stream>

    def recv(self):
        """Next top-level element of the stream (a stream:error raises)."""
        while not self.queue:
            try:
                self.sock.settimeout(self._left())
                data = self.sock.recv(65536)
            except socket.timeout:
                raise Timeout()
            except (ConnectionError, ssl.SSLError, OSError):
                raise Closed('reset')
            if not data:
                raise Closed('eof')
            if self.zin is not None:
                try:
                    data = self.zin.decompress(data)
                except zlib.error as e:
                    raise ProtocolError('zlib from the server: %s' % e)
            try:
                self.parser.feed(data)
                self._pump()
            except ET.ParseError as e:
                raise ProtocolError('XML: %s in %r' % (e, data[:200]))
        el = self.queue.pop(0)
        if el is None:
            raise Closed('stream-end')
        if self.verbose:
            self.log('RECV %s' % serialize(el))
        if el.tag == '{%s}error' % NS_STREAM:
            cond, text = '-', ''
            for c in el:
                if local(c.tag) == 'text':
                    text = c.text or ''
                elif ns(c.tag) == NS_STANZAS:
                    cond = local(c.tag)
            raise StreamError(cond, text, serialize(el))
        return el

    def open_stream(self):
        self._new_parser()
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  "xmlns:stream='http://etherx.jabber.org/streams' to='%s' from='%s' "
                  "version='1.0' xml:lang='en'>" % (self.domain, self.jid.split('/')[0]))
        el = self.recv()
        if el.tag != '{%s}features' % NS_STREAM:
            raise ProtocolError('expected features, got %s' % serialize(el))
        self.features = el
        return el

    def feature_list(self):
        out = []
        for f in self.features:
            if local(f.tag) == 'mechanisms':
                out.append('mechanisms:' + '+'.join(m.text for m in f))
            elif local(f.tag) == 'sasl-channel-binding':
                out.append('sasl-channel-binding:' + '+'.join(c.get('type', '?') for c in f))
            else:
                out.append(local(f.tag))
        return ','.join(out) or '-'

    # -- phases -------------------------------------------------------
    def connect(self):
        self.deadline = time.monotonic() + self.timeout
        self.stage = 'connect'
        try:
            self.sock = socket.create_connection(
                self.addr, timeout=self._left(),
                source_address=(self.source, 0) if self.source else None)
        except socket.timeout:
            raise Timeout()
        except OSError as e:
            raise Closed('connect-failed:%s' % (e.strerror or e).__str__().replace(' ', '_'))
        if self.proxy:
            self.sock.sendall(proxy_header(self.proxy[0], self.proxy[1], self.addr))
        if self.mode == 'direct':
            self._wrap()
            self.stage = 'stream'
            self.open_stream()
            self.log('FEATURES stage=post-tls list=%s' % self.feature_list())
        else:
            self.stage = 'stream'
            self.open_stream()
            self.log('FEATURES stage=pre-tls list=%s' % self.feature_list())
            if self.features.find('{%s}starttls' % NS_TLS) is None:
                raise ProtocolError('no starttls offered')
            self.stage = 'starttls'
            self.send("<starttls xmlns='%s'/>" % NS_TLS)
            el = self.recv()
            if el.tag != '{%s}proceed' % NS_TLS:
                raise ProtocolError('starttls answered with %s' % serialize(el))
            self._wrap()
            self.stage = 'stream'
            self.open_stream()
            self.log('FEATURES stage=post-tls list=%s' % self.feature_list())
        mechs = self.features.find('{%s}mechanisms' % NS_SASL)
        self.mechanisms = [m.text for m in mechs] if mechs is not None else []

    def auth(self, mech, password):
        """One SASL exchange. Returns ('success', raw) or ('failure', condition, raw);
        self.challenges counts the server's challenges in it."""
        self.stage = 'sasl'
        self.challenges = 0
        if mech == 'PLAIN':
            m = None
            initial = b'\0' + self.user.encode() + b'\0' + saslprep(password).encode()
        elif mech in ('SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-512') or (
                self.gs2 and mech.startswith('SCRAM-') and mech.endswith('-PLUS')):
            base = mech[len('SCRAM-'):-len('-PLUS') if mech.endswith('-PLUS') else None]
            m = Scram(base.replace('-', '').lower(), self.user, password, self.gs2 or 'n')
            initial = m.initial()
        else:
            raise ProtocolError('mechanism %s not implemented here' % mech)
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (
            NS_SASL, mech, base64.b64encode(initial).decode() or '='))
        while True:
            el = self.recv()
            name = local(el.tag)
            if ns(el.tag) != NS_SASL:
                raise ProtocolError('unexpected during SASL: %s' % serialize(el))
            if name == 'challenge':
                if m is None:
                    raise ProtocolError('challenge for PLAIN')
                data = base64.b64decode(el.text or '')
                self.challenges += 1
                self.send("<response xmlns='%s'>%s</response>" % (
                    NS_SASL, base64.b64encode(m.respond(data)).decode()))
            elif name == 'success':
                if m is not None:
                    m.verify(base64.b64decode(el.text or ''))
                return ('success', serialize(el))
            elif name == 'failure':
                cond = '-'
                for c in el:
                    if local(c.tag) != 'text':
                        cond = local(c.tag)
                return ('failure', cond, serialize(el))
            else:
                raise ProtocolError('unexpected SASL element %s' % serialize(el))

    def restart_and_bind(self, resource='raw', bind=True):
        self.stage = 'restart'
        self.open_stream()
        self.log('FEATURES stage=post-auth list=%s' % self.feature_list())
        if not bind:
            return None
        if self.features.find('{%s}bind' % NS_BIND) is None:
            raise ProtocolError('no bind feature after auth: %s' % serialize(self.features))
        return self.bind(resource)

    # -- non-SASL authentication (XEP-0078) ------------------------------
    def iq_auth_get(self):
        self.stage = 'iq-auth'
        self.send("<iq type='get' id='auth_get' to='%s'><query xmlns='%s'><username>%s</username>"
                  "</query></iq>" % (escape(self.domain), NS_IQ_AUTH, escape(self.user)))
        el = self.recv()
        if local(el.tag) != 'iq' or el.get('id') != 'auth_get':
            raise ProtocolError('iq-auth get answered with %s' % serialize(el))
        q = el.find('{%s}query' % NS_IQ_AUTH)
        fields = [local(c.tag) for c in q] if q is not None else []
        return el.get('type'), fields, serialize(el)

    def iq_auth_set(self, n, resource, password, digest=False, after=b''):
        """One set. Returns ('ok', raw) or ('error', condition, code, raw)."""
        self.stage = 'iq-auth'
        if digest:
            sid = (self.stream_attrs or {}).get('id', '')
            cred = '<digest>%s</digest>' % hashlib.sha1((sid + password).encode()).hexdigest()
        else:
            cred = '<password>%s</password>' % escape(password)
        iq_id = 'auth_%d' % n
        self.send(("<iq type='set' id='%s'><query xmlns='%s'><username>%s</username>%s"
                   "<resource>%s</resource></query></iq>" % (
                       iq_id, NS_IQ_AUTH, escape(self.user), cred, escape(resource))).encode() + after)
        el = self.recv()
        if local(el.tag) != 'iq' or el.get('id') != iq_id:
            raise ProtocolError('iq-auth set answered with %s' % serialize(el))
        if el.get('type') == 'result':
            return ('ok', serialize(el))
        err = el.find('{%s}error' % NS_CLIENT)
        cond, code = '-', '-'
        if err is not None:
            code = err.get('code', '-')
            for c in err:
                if ns(c.tag) == NS_STANZA_ERRORS and local(c.tag) != 'text':
                    cond = local(c.tag)
        return ('error', cond, code, serialize(el))

    def echo(self, full_jid, pipelined_ping=False):
        """A ping to the domain (sent already when pipelined) and a message to
        our own full JID: both must come back, addressed to full_jid."""
        self.stage = 'session'
        if not pipelined_ping:
            self.send(self.ping_xml())
        token = 'echo-%s' % base64.b16encode(os.urandom(6)).decode()
        self.send("<message type='chat' id='echo_1' to='%s'><body>%s</body></message>"
                  % (escape(full_jid), token))
        ping = message = 'missing'
        while ping == 'missing' or message == 'missing':
            el = self.recv()
            if local(el.tag) == 'iq' and el.get('id') == 'ping_1':
                ping = 'ok' if el.get('type') == 'result' and el.get('to') == full_jid else \
                    'bad:' + serialize(el).replace(' ', '_')
            elif local(el.tag) == 'message' and el.findtext('{%s}body' % NS_CLIENT) == token:
                message = 'ok' if el.get('to') == full_jid else 'bad:' + serialize(el).replace(' ', '_')
        return ping, message

    def ping_xml(self):
        return ("<iq type='get' id='ping_1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
                % escape(self.domain))
    def compress(self, method):
        """XEP-0138 on the current (authenticated) stream. Returns
        ('compressed',) after the compressed restart, or ('failure', cond)."""
        self.stage = 'compress'
        feat = self.features.find('{%s}compression' % NS_COMPRESS_FEATURE)
        if feat is None:
            raise ProtocolError('no compression feature: %s' % serialize(self.features))
        self.send("<compress xmlns='%s'><method>%s</method></compress>" % (NS_COMPRESS, escape(method)))
        el = self.recv()
        if el.tag == '{%s}failure' % NS_COMPRESS:
            return ('failure', local(el[0].tag) if len(el) else '-')
        if el.tag != '{%s}compressed' % NS_COMPRESS:
            raise ProtocolError('compress answered with %s' % serialize(el))
        if self.queue:
            raise ProtocolError('data after <compressed/>')
        self.zout = zlib.compressobj()
        self.zin = zlib.decompressobj()
        self.open_stream()
        self.log('FEATURES stage=post-compress list=%s' % self.feature_list())
        return ('compressed',)

    def bind(self, resource):
        self.stage = 'bind'
        self.send("<iq type='set' id='bind_1'><bind xmlns='%s'><resource>%s</resource></bind></iq>"
                  % (NS_BIND, escape(resource)))
        while True:
            el = self.recv()
            if local(el.tag) == 'iq' and el.get('id') == 'bind_1':
                break
        if el.get('type') != 'result':
            raise ProtocolError('bind failed: %s' % serialize(el))
        j = el.find('{%s}bind/{%s}jid' % (NS_BIND, NS_BIND))
        self.bound_jid = j.text if j is not None else '-'
        self.stage = 'session'
        return self.bound_jid

    def send_self(self, token):
        """Initial presence, then a message to our own full JID; returns the
        seconds until it came back."""
        self.stage = 'message'
        t0 = time.monotonic()
        self.send("<presence/><message to='%s' type='chat' id='m1'><body>%s</body></message>"
                  % (escape(self.bound_jid, {"'": '&apos;'}), escape(token)))
        while True:
            el = self.recv()
            if local(el.tag) == 'message':
                body = el.find('{%s}body' % NS_CLIENT)
                if body is not None and body.text == token:
                    return time.monotonic() - t0

    def bomb(self, mib):
        """MIB MiB of white space, compressed when the stream is."""
        self.stage = 'bomb'
        plain = mib << 20
        data = b' ' * plain
        if self.zout is not None:
            data = self.zout.compress(data) + self.zout.flush(zlib.Z_SYNC_FLUSH)
        try:
            self.sock.settimeout(self._left())
            self.sock.sendall(data)
        except socket.timeout:
            raise Timeout()
        except (ConnectionError, ssl.SSLError, OSError):
            raise Closed('reset')
        return plain, len(data)

    def wait_close(self, seconds):
        """After the last failure: does the server close the stream? Returns how, or None."""
        how, after, _n = self.hold(seconds)
        return (None if how == 'none' else how), after

    def hold(self, seconds):
        """Stay online, counting the stanzas that come, until the server ends
        the stream or SECONDS pass. Returns (how, seconds, stanzas)."""
        t0 = time.monotonic()
        saved = self.deadline
        self.deadline = t0 + seconds
        n = 0
        try:
            while True:
                self.recv()
                n += 1
        except Closed as e:
            return e.how, time.monotonic() - t0, n
        except StreamError as e:
            self.hold_error_text = e.text
            return 'stream-error:%s' % e.condition, time.monotonic() - t0, n
        except ProtocolError:
            return 'bad-xml', time.monotonic() - t0, n
        except Timeout:
            return 'none', time.monotonic() - t0, n
        finally:
            self.deadline = saved

    def close(self):
        if self.sock is None:
            return
        try:
            self.sock.settimeout(1)
            end = b'</stream:stream>'
            if self.zout is not None:
                end = self.zout.compress(end) + self.zout.flush(zlib.Z_SYNC_FLUSH)
            self.sock.sendall(end)
        except Exception:
            pass
        try:
            self.sock.close()
        except Exception:
            pass
        self.sock = None


def proxy_header(version, src, dst):
    """A PROXY protocol header (v1 or v2, TCP) from src ('ADDR:PORT', IPv6
    in brackets) to dst ((host, port))."""
    host, _, port = src.rpartition(':')
    sa, sp = host.strip('[]'), int(port)
    da, dp = dst[0], int(dst[1])
    six = ':' in sa or ':' in da
    if six:  # both IPv6: an IPv4 one as ::ffff:a.b.c.d
        sa, da = [a if ':' in a else '::ffff:' + a for a in (sa, da)]
    if version == 'v1':
        return ('PROXY %s %s %s %d %d\r\n' % ('TCP6' if six else 'TCP4', sa, da, sp, dp)).encode()
    fam = socket.AF_INET6 if six else socket.AF_INET
    body = socket.inet_pton(fam, sa) + socket.inet_pton(fam, da) + struct.pack('>HH', sp, dp)
    return (b'\r\n\r\n\x00\r\nQUIT\n' + bytes([0x21, 0x21 if six else 0x11])
            + struct.pack('>H', len(body)) + body)


def q(s):
    s = '' if s is None else str(s)
    return s.replace(' ', '_').replace('\n', '_') or '-'


def run_iq_auth(s, a, el):
    offered = s.features.find('{%s}auth' % NS_FEATURE_IQ_AUTH) is not None
    print('IQAUTH offered=%s' % ('yes' if offered else 'no'), flush=True)
    if offered:  # a client asks for the fields only when offered
        t, fields, raw = s.iq_auth_get()
        print('IQAUTH get type=%s fields=%s raw=%s' % (t, '+'.join(fields) or '-', raw.replace(' ', '_')),
              flush=True)
    last = None
    for n, pw in enumerate(a.password, 1):
        after = s.ping_xml().encode() if a.pipeline and n == len(a.password) else b''
        r = s.iq_auth_set(n, a.resource, pw, digest=a.iq_auth == 'digest', after=after)
        if r[0] == 'ok':
            print('IQAUTH n=%d result=ok raw=%s' % (n, r[1].replace(' ', '_')), flush=True)
            full = '%s@%s/%s' % (s.user, s.domain, a.resource)
            ping, message = s.echo(full, pipelined_ping=bool(after))
            print('ECHO ping=%s message=%s jid=%s' % (ping, message, full), flush=True)
            if ping != 'ok' or message != 'ok':
                print('RESULT=error reason=echo stage=session elapsed=%s' % el(), flush=True)
                return EXIT_PROTO
            print('RESULT=ok mech=iq-auth tls=%s jid=%s attempts=%d elapsed=%s' % (s.tls, full, n, el()),
                  flush=True)
            return EXIT_OK
        last = r
        print('IQAUTH n=%d result=error condition=%s code=%s raw=%s' % (n, r[1], r[2], r[3].replace(' ', '_')),
              flush=True)
    closed = 'no'
    if a.expect_close is not None:
        how, after = s.wait_close(a.expect_close)
        print('CLOSE how=%s after=%.3f' % (how or 'none', after), flush=True)
        closed = 'yes' if how else 'no'
    print('RESULT=failure condition=%s code=%s attempts=%d closed=%s elapsed=%s' % (
        last[1], last[2], len(a.password), closed, el()), flush=True)
    return EXIT_SASL


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--jid', required=True)
    p.add_argument('--password', action='append', required=True,
                   help='one SASL attempt per occurrence, on the same stream')
    p.add_argument('--server', required=True, help='host:port')
    p.add_argument('--mode', choices=['starttls', 'direct'], default='starttls')
    p.add_argument('--mech', default='SCRAM-SHA-256')
    p.add_argument('--gs2', choices=['n', 'y'],
                   help='the SCRAM gs2 flag (with it, a -PLUS name is sent unbound)')
    p.add_argument('--cafile')
    p.add_argument('--insecure', action='store_true')
    p.add_argument('--timeout', type=float, default=10.0)
    p.add_argument('--resource', default='raw')
    p.add_argument('--no-bind', action='store_true', help='stop after the restarted stream features')
    p.add_argument('--expect-close', type=float, metavar='SECONDS',
                   help='after the last failed attempt, wait this long for the server to close')
    p.add_argument('--source', metavar='ADDR', help='local address to connect from')
    p.add_argument('--proxy', choices=['v1', 'v2'], help='send a PROXY protocol header first')
    p.add_argument('--proxy-src', metavar='ADDR:PORT', default='203.0.113.7:4242',
                   help='the client address the PROXY header carries')
    p.add_argument('--hold', type=float, metavar='SECONDS', default=0,
                   help='after the bind: print READY, stay online counting stanzas until the '
                        'server ends the stream, print CLOSE how=... stanzas=N')
    p.add_argument('-v', '--verbose', action='store_true', help='print every element sent and received')
    p.add_argument('--iq-auth', choices=['plain', 'digest'],
                   help='non-SASL authentication (XEP-0078) instead of SASL')
    p.add_argument('--pipeline', action='store_true',
                   help='with --iq-auth: send a ping in the same write as the last set')
    p.add_argument('--compress', metavar='METHOD', help='XEP-0138 stream compression after authentication')
    p.add_argument('--send-self', metavar='TOKEN', help='after binding, a message to ourselves')
    p.add_argument('--bomb', type=int, metavar='MIB', help='after binding, MIB MiB of white space')
    p.add_argument('--send-garbage', action='store_true',
                   help='at the end, bytes that are not zlib on a compressed stream; then --expect-close')
    a = p.parse_args()

    s = Session(a.jid, a.server, a.mode, a.cafile, a.insecure, a.timeout, a.verbose)
    s.source = a.source
    s.gs2 = a.gs2
    if a.proxy:
        s.proxy = (a.proxy, a.proxy_src)
    t0 = time.monotonic()
    attempts = 0
    el = lambda: '%.3f' % (time.monotonic() - t0)
    try:
        try:
            s.connect()
            if a.iq_auth:
                return run_iq_auth(s, a, el)
            if a.mech not in s.mechanisms:
                print('RESULT=failure condition=mechanism-not-offered offered=%s attempts=0 elapsed=%s'
                      % ('+'.join(s.mechanisms) or '-', el()), flush=True)
                return EXIT_SASL
            last = None
            for pw in a.password:
                attempts += 1
                t_auth = time.monotonic()
                r = s.auth(a.mech, pw)
                took = time.monotonic() - t_auth
                if r[0] == 'success':
                    print('SASL n=%d mech=%s result=success steps=%d raw=%s' % (
                        attempts, a.mech, s.challenges, r[1]), flush=True)
                    print('TIMING n=%d took=%.3f' % (attempts, took), flush=True)
                    if a.compress:
                        s.restart_and_bind(a.resource, bind=False)
                        r = s.compress(a.compress)
                        print('COMPRESS method=%s result=%s%s' % (
                            q(a.compress), r[0], ' condition=' + r[1] if r[0] == 'failure' else ''),
                            flush=True)
                        jid = s.bind(a.resource) if not a.no_bind else None
                    else:
                        jid = s.restart_and_bind(a.resource, bind=not a.no_bind)
                    if a.bomb:
                        plain, sent = s.bomb(a.bomb)
                        print('BOMB plain=%d sent=%d' % (plain, sent), flush=True)
                    if a.send_self:
                        after = s.send_self(a.send_self)
                        print('ECHO body=%s after=%.3f' % (q(a.send_self), after), flush=True)
                    if a.send_garbage:
                        s.sock.sendall(b'<message>this is not zlib</message>' * 4)
                        how, after = s.wait_close(a.expect_close or 5)
                        print('CLOSE how=%s after=%.3f' % (how or 'none', after), flush=True)
                    if a.hold:
                        print('READY jid=%s' % jid, flush=True)
                        how, after, n = s.hold(a.hold)
                        print('CLOSE how=%s after=%.3f stanzas=%d' % (how, after, n), flush=True)
                        if getattr(s, 'hold_error_text', None):
                            print('CLOSE-TEXT text=%s' % q(s.hold_error_text), flush=True)
                    print('RESULT=ok mech=%s tls=%s alpn=%s jid=%s attempts=%d elapsed=%s' % (
                        a.mech, s.tls, s.alpn, jid or '-', attempts, el()), flush=True)
                    return EXIT_OK
                last = r
                print('SASL n=%d mech=%s result=failure condition=%s steps=%d raw=%s' % (
                    attempts, a.mech, r[1], s.challenges, r[2]), flush=True)
                print('TIMING n=%d took=%.3f' % (attempts, took), flush=True)
            closed = 'no'
            if a.expect_close is not None:
                how, after = s.wait_close(a.expect_close)
                print('CLOSE how=%s after=%.3f' % (how or 'none', after), flush=True)
                closed = 'yes' if how else 'no'
            print('RESULT=failure condition=%s attempts=%d closed=%s elapsed=%s' % (
                last[1], attempts, closed, el()), flush=True)
            return EXIT_SASL
        except StreamError as e:
            print('RESULT=stream-error condition=%s text=%s stage=%s attempts=%d elapsed=%s raw=%s' % (
                e.condition, q(e.text), s.stage, attempts, el(), e.raw.replace(' ', '_')), flush=True)
            return EXIT_STREAM
        except Closed as e:
            print('RESULT=closed how=%s stage=%s attempts=%d elapsed=%s' % (e.how, s.stage, attempts, el()),
                  flush=True)
            return EXIT_CLOSED
        except Timeout:
            print('RESULT=timeout stage=%s attempts=%d elapsed=%s' % (s.stage, attempts, el()), flush=True)
            return EXIT_TIMEOUT
        except ssl.SSLCertVerificationError as e:
            print('RESULT=error reason=certificate:%s stage=%s' % (q(e.verify_message), s.stage), flush=True)
            return EXIT_PROTO
        except ProtocolError as e:
            print('RESULT=error reason=%s stage=%s elapsed=%s' % (q(e), s.stage, el()), flush=True)
            return EXIT_PROTO
    except Exception as e:
        import traceback
        traceback.print_exc()
        print('RESULT=error reason=internal:%s stage=%s' % (q(repr(e)), s.stage), flush=True)
        return EXIT_INTERNAL
    finally:
        s.close()


if __name__ == '__main__':
    sys.exit(main())
