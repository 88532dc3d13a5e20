#!/usr/bin/python3
"""s2s_peer.py - a hostile (byte-level) server-to-server peer.

Opens a jabber:server stream (with the dialback namespace) from FROM to TO on
an s2s listener, does STARTTLS (the server's certificate checked against
--cafile, SNI = TO), optionally authenticates with SASL EXTERNAL (XEP-0178:
--cert/--key, a certificate for FROM), then does one CASE and prints every
top-level element it gets back until the stream ends or --wait runs out.

  /usr/bin/python3 t/lib/s2s_peer.py --server 127.0.0.11:5269 --to a.test \\
      --from c.test --cafile CA.pem [--cert C.pem --key C.key] [--wait 10] CASE

CASE:
  result [--dbkey KEY] [--db-to D]
                           <db:result from=FROM to=TO|D>KEY</db:result> (KEY:
                           default a random, hence wrong, 64-hex key): a
                           forged dialback key for FROM
  verify [--stream-id ID] [--dbkey KEY]
                           <db:verify from=FROM to=TO id=ID>KEY</db:verify>
                           (ID: default a random, unknown stream id)
  stanza --stanza XML [--good-stanza XML]...
                           send each --good-stanza (a stanza the stream may
                           send; a second apart), then --stanza (one it may not)
  none                     nothing: just open (and authenticate) the stream

Output (stdout):
  FEATURES stage=pre-tls|post-tls|post-auth list=starttls,dialback,mechanisms:EXTERNAL
  TLS version=TLSv1.3 alpn=- cipher=...
  STREAM id=ID from=TO            (the stream header of the server, after TLS)
  SASL mech=EXTERNAL result=success|not-offered|failure condition=C
                                  (not offered: the CASE runs unauthenticated)
  SENT <...>
  GOT <...>                       (each element, compact XML)
  DB_RESULT type=T from=F to=T2   (a db:result answer)
  DB_ERROR condition=C            (its stanza error, with type='error')
  DB_VERIFY type=T id=ID          (a db:verify answer)
  STREAM_ERROR condition=C        (then the stream is over)
  CLOSE how=stream-error:C|stream-end|eof|reset|none after=SECONDS
  RESULT=ok case=CASE             (always, unless the script itself broke:
  RESULT=error reason=...          then exit status 70; connection/TLS
                                   failures: RESULT=error, exit status 4)
The test decides what is right; this script only reports.
"""
import argparse
import base64
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_client  # noqa: E402
from raw_client import NS_SASL, NS_STREAM, NS_TLS, local, ns, serialize  # noqa: E402

NS_DB = 'jabber:server:dialback'


class Peer(raw_client.Session):
    def __init__(self, a):
        super().__init__('x@' + a.to, a.server, 'starttls', a.cafile, False, a.timeout, a.verbose)
        self.domain, self.origin = a.to, getattr(a, 'from')
        self.cert, self.key = a.cert, a.key
        self.last_error = None

    def _ssl_context(self):
        ctx = super()._ssl_context()
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def open_stream(self):
        self._new_parser()
        frm = " from='%s'" % self.origin if self.origin else ''
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  "xmlns:stream='%s' xmlns:db='%s' to='%s'%s version='1.0'>"
                  % (NS_STREAM, NS_DB, self.domain, frm))
        el = self.recv()
        if el.tag != '{%s}features' % NS_STREAM:
            raise raw_client.ProtocolError('expected features, got %s' % serialize(el))
        self.features = el
        return el

    def external(self):
        if 'EXTERNAL' not in self.mechanisms:
            self.log('SASL mech=EXTERNAL result=not-offered')
            return None
        self.stage = 'sasl'
        self.send("<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>"
                  % (NS_SASL, base64.b64encode(self.origin.encode()).decode()))
        el = self.recv()
        if local(el.tag) == 'success':
            self.log('SASL mech=EXTERNAL result=success')
            self.stage = 'stream'
            self.open_stream()
            self.log('FEATURES stage=post-auth list=%s' % self.feature_list())
            return True
        cond = next((local(c.tag) for c in el if ns(c.tag) == NS_SASL and local(c.tag) != 'text'), '-')
        self.log('SASL mech=EXTERNAL result=failure condition=%s raw=%s' % (cond, serialize(el)))
        return False


def report(p, el):
    p.log('GOT %s' % serialize(el))
    if el.tag == '{%s}result' % NS_DB:
        p.log('DB_RESULT type=%s from=%s to=%s' % (el.get('type', '-'), el.get('from', '-'), el.get('to', '-')))
        for e in el.iter():
            if e is not el and ns(e.tag) == 'urn:ietf:params:xml:ns:xmpp-stanzas':
                p.log('DB_ERROR condition=%s' % local(e.tag))
    elif el.tag == '{%s}verify' % NS_DB:
        p.log('DB_VERIFY type=%s id=%s' % (el.get('type', '-'), el.get('id', '-')))


def read_until_close(p, wait):
    """Print what comes until the stream ends or WAIT seconds pass."""
    t0 = time.monotonic()
    p.deadline = t0 + wait
    how = 'none'
    try:
        while True:
            report(p, p.recv())
    except raw_client.StreamError as e:
        p.log('GOT %s' % e.raw)
        p.log('STREAM_ERROR condition=%s' % e.condition)
        how = 'stream-error:' + e.condition
        # after the error the server ends the stream and the connection
        try:
            while True:
                p.recv()
        except raw_client.Closed as c:
            how += '+' + c.how
        except Exception:
            pass
    except raw_client.Closed as c:
        how = c.how
    except raw_client.Timeout:
        how = 'none'
    p.log('CLOSE how=%s after=%.2f' % (how, time.monotonic() - t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('case', choices=['result', 'verify', 'stanza', 'none'])
    ap.add_argument('--server', required=True, help='HOST:PORT of the s2s listener (STARTTLS)')
    ap.add_argument('--to', required=True, help='the domain served there')
    ap.add_argument('--from', required=True,
                    help="the domain we claim ('' : a stream header without from)")
    ap.add_argument('--cafile', help="CA file for the server's certificate")
    ap.add_argument('--insecure', action='store_true')
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--dbkey', dest='dbkey', help='the dialback key (default: random)')
    ap.add_argument('--stream-id', help='db:verify id (default: random)')
    ap.add_argument('--db-to', help="result: the db:result's to (default: --to)")
    ap.add_argument('--stanza')
    ap.add_argument('--good-stanza', action='append', default=[])
    ap.add_argument('--timeout', type=float, default=10, help='connect, TLS and authentication')
    ap.add_argument('--wait', type=float, default=10, help='how long to wait for the answer')
    ap.add_argument('-v', '--verbose', action='store_true')
    a = ap.parse_args()
    if a.case == 'stanza' and not a.stanza:
        ap.error('stanza needs --stanza')
    p = Peer(a)
    if a.insecure:
        p.insecure = True
    try:
        try:
            p.connect()   # STARTTLS and the second stream header (raw_client)
        except ssl.SSLCertVerificationError as e:
            print('RESULT=error reason=tls-verify:%s' % str(e.verify_message).replace(' ', '_'))
            return 4
        p.log('STREAM id=%s from=%s' % (p.stream_attrs.get('id', '-'), p.stream_attrs.get('from', '-')))
        if a.cert:
            if p.external() is False:
                read_until_close(p, a.wait)
                print('RESULT=ok case=%s auth=failed' % a.case)
                return 0
        if a.case == 'result':
            key = a.dbkey or os.urandom(32).hex()
            x = "<db:result from='%s' to='%s'>%s</db:result>" % (p.origin, a.db_to or p.domain, key)
        elif a.case == 'verify':
            sid = a.stream_id or os.urandom(12).hex()
            key = a.dbkey or os.urandom(32).hex()
            x = "<db:verify from='%s' to='%s' id='%s'>%s</db:verify>" % (p.origin, p.domain, sid, key)
        elif a.case == 'stanza':
            for g in a.good_stanza:
                p.send(g)
                p.log('SENT %s' % g)
                p.deadline = time.monotonic() + 1
                try:
                    while True:
                        report(p, p.recv())
                except raw_client.Timeout:
                    pass
            x = a.stanza
        else:
            x = None
        if x:
            p.deadline = time.monotonic() + a.wait
            p.send(x)
            p.log('SENT %s' % x)
        read_until_close(p, a.wait)
        p.close()
        print('RESULT=ok case=%s' % a.case, flush=True)
        return 0
    except raw_client.StreamError as e:
        print('STREAM_ERROR condition=%s stage=%s' % (e.condition, p.stage))
        print('RESULT=error reason=stream-error:%s stage=%s' % (e.condition, p.stage))
        return 4
    except raw_client.Closed as e:
        print('RESULT=error reason=closed:%s stage=%s' % (e.how, p.stage))
        return 4
    except raw_client.Timeout:
        print('RESULT=error reason=timeout stage=%s' % p.stage)
        return 4
    except (raw_client.ProtocolError, OSError, socket.error) as e:
        print('RESULT=error reason=%s stage=%s' % (str(e).replace(' ', '_')[:200], p.stage))
        return 70


if __name__ == '__main__':
    sys.exit(main())
