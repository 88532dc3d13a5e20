#!/usr/bin/python3
"""s2s_remote.py - a hostile remote server for xedge's OUTBOUND side.

Listens on ADDR:PORT as DOMAIN (a --peer static route of the sandbox points
there), accepts one connection, offers STARTTLS (CERT/KEY), then dialback;
answers xedge's <db:result> with type='valid' without checking anything (a
receiving server may), reads what xedge sends, and sends back on that
outbound stream, which must carry stanzas one way only (xedge -> us),
--inject XML (a stanza for xedge's users). Prints what happened:

  /usr/bin/python3 t/lib/s2s_remote.py --listen 127.0.0.13:5269 --domain c.test \\
      --cert C.pem --key C.key --inject "<message .../>" [--wait 5] [--ready-file F]

  READY                          (listening; also writes --ready-file)
  HEADER from=a.test to=c.test   (each stream header xedge sends)
  GOT <...>                      (each element xedge sends, compact XML)
  SENT <...>
  STREAM_ERROR condition=C       (if xedge sends one)
  CLOSE how=stream-error:C|stream-end|eof|reset|none after=SECONDS
  RESULT=ok | RESULT=error reason=...
"""
import argparse
import os
import socket
import ssl
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import NS_STREAM, NS_TLS, local, serialize  # noqa: E402

NS_DB = 'jabber:server:dialback'


class Conn:
    def __init__(self, sock, deadline):
        self.sock, self.deadline = sock, deadline
        self.new_parser()

    def new_parser(self):
        self.parser = ET.XMLPullParser(events=('start', 'end'))
        self.depth, self.queue = 0, []

    def send(self, s):
        self.sock.sendall(s.encode() if isinstance(s, str) else s)

    def next(self):
        """('header', attrs) | ('el', element) | ('end', None); raises on EOF/timeout."""
        while not self.queue:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError()
            self.parser.feed(data)
            for ev, el in self.parser.read_events():
                if ev == 'start':
                    self.depth += 1
                    if self.depth == 1:
                        self.queue.append(('header', dict(el.attrib)))
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.queue.append(('el', el))
                    elif self.depth == 0:
                        self.queue.append(('end', None))
        return self.queue.pop(0)


def header(domain, to, sid):
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='%s' xmlns:db='%s' from='%s' to='%s' id='%s' version='1.0'>"
            % (NS_STREAM, NS_DB, domain, to, sid))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--listen', required=True)
    ap.add_argument('--domain', required=True)
    ap.add_argument('--cert', required=True)
    ap.add_argument('--key', required=True)
    ap.add_argument('--inject', action='append', default=[])
    ap.add_argument('--wait', type=float, default=5, help='after the injection')
    ap.add_argument('--timeout', type=float, default=30, help='for xedge to connect and authenticate')
    ap.add_argument('--ready-file')
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(':')
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(4)
    print('READY', flush=True)
    if a.ready_file:
        open(a.ready_file, 'w').close()
    ls.settimeout(a.timeout)
    t0 = time.monotonic()
    try:
        s, _ = ls.accept()
    except socket.timeout:
        print('RESULT=error reason=no-connection', flush=True)
        return 1
    c = Conn(s, t0 + a.timeout)
    peer = '-'
    try:
        # plaintext stream: STARTTLS
        kind, hdr = c.next()
        peer = hdr.get('from', '-')
        print('HEADER from=%s to=%s' % (peer, hdr.get('to', '-')), flush=True)
        c.send(header(a.domain, peer, os.urandom(8).hex()))
        c.send("<stream:features><starttls xmlns='%s'/><dialback xmlns='urn:xmpp:features:dialback'/>"
               "</stream:features>" % NS_TLS)
        kind, el = c.next()
        print('GOT %s' % serialize(el), flush=True)
        if local(el.tag) != 'starttls':
            print('RESULT=error reason=no-starttls', flush=True)
            return 1
        c.send("<proceed xmlns='%s'/>" % NS_TLS)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        c.sock = ctx.wrap_socket(s, server_side=True)
        c.new_parser()
        kind, hdr = c.next()
        print('HEADER from=%s to=%s' % (hdr.get('from', '-'), hdr.get('to', '-')), flush=True)
        c.send(header(a.domain, peer, os.urandom(8).hex()))
        c.send("<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>")
        # dialback: whatever the key, valid
        while True:
            kind, el = c.next()
            if kind != 'el':
                raise EOFError()
            print('GOT %s' % serialize(el), flush=True)
            if el.tag == '{%s}result' % NS_DB:
                ans = "<db:result from='%s' to='%s' type='valid'/>" % (a.domain, el.get('from', peer))
                c.send(ans)
                print('SENT %s' % ans, flush=True)
                break
        # what xedge sends (its users' stanzas), then the injection
        c.deadline = time.monotonic() + 1
        try:
            while True:
                kind, el = c.next()
                if kind != 'el':
                    raise EOFError()
                print('GOT %s' % serialize(el), flush=True)
        except TimeoutError:
            pass
        for x in a.inject:
            c.send(x)
            print('SENT %s' % x, flush=True)
        c.deadline = time.monotonic() + a.wait
        how = 'none'
        t1 = time.monotonic()
        try:
            while True:
                kind, el = c.next()
                if kind == 'end':
                    how = how + '+stream-end' if how != 'none' else 'stream-end'
                    break
                if el.tag == '{%s}error' % NS_STREAM:
                    cond = next((local(e.tag) for e in el if local(e.tag) != 'text'), '-')
                    print('STREAM_ERROR condition=%s' % cond, flush=True)
                    how = 'stream-error:' + cond
                else:
                    print('GOT %s' % serialize(el), flush=True)
        except TimeoutError:
            pass
        except (EOFError, ConnectionError, ssl.SSLError, OSError):
            how = how if how != 'none' else 'eof'
        print('CLOSE how=%s after=%.2f' % (how, time.monotonic() - t1), flush=True)
        print('RESULT=ok', flush=True)
        return 0
    except TimeoutError:
        print('RESULT=error reason=timeout', flush=True)
        return 1
    except (EOFError, ConnectionError, ssl.SSLError, OSError, ET.ParseError) as e:
        print('RESULT=error reason=%s' % (type(e).__name__ + ':' + str(e)).replace(' ', '_')[:120], flush=True)
        return 1


if __name__ == '__main__':
    sys.exit(main())
