#!/usr/bin/python3
"""digest_seed.py SERVER CAFILE JID PASSWORD -- replays the seed's DIGEST-MD5
login (shared/seeds: steps 8 to 13) byte by byte and checks each element:

  8  <auth mechanism='DIGEST-MD5'/>                    (no initial response)
  9  <challenge>: realm, nonce, qop="auth", charset=utf-8, algorithm=md5-sess
 10  <response>: username, realm, nonce, cnonce, nc, qop, digest-uri, response
 11  <challenge>: rspauth=... (checked against the password)
 12  <response/>                                       (empty)
 13  <success/>

Prints STEP lines and VERDICT=ok, or VERDICT=fail:<step>:<why>; exit 0 when
the replay ran (the test checks the verdict).
"""
import base64
import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

NS = "urn:ietf:params:xml:ns:xmpp-sasl"


def md5(b):
    return hashlib.md5(b).digest()


def hexmd5(b):
    return hashlib.md5(b).hexdigest()


def read_element(s, name):
    buf = b''
    s.settimeout(15)
    while not re.search(rb'<(failure|success|challenge)\b[^>]*(/>|>.*?</\1>)', buf, re.S):
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf.decode()


def parse_challenge(text):
    out = {}
    for m in re.finditer(r'([a-z-]+)=("([^"]*)"|[^,]*)', text):
        out[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def main():
    server, cafile, jid, pw = sys.argv[1:5]
    user, domain = jid.split('@')

    def fail(step, why):
        print('VERDICT=fail:%s:%s' % (step, why.replace(' ', '_')))
        sys.exit(0)

    s, buf = wire.starttls(server, domain, cafile)
    if b'<mechanism>DIGEST-MD5</mechanism>' not in buf:
        fail(7, 'DIGEST-MD5 not offered')
    print('STEP 7 DIGEST-MD5 offered')

    # 8: the mechanism, no initial response
    s.sendall(("<auth xmlns='%s' mechanism='DIGEST-MD5'/>" % NS).encode())
    print('STEP 8 sent <auth mechanism=DIGEST-MD5/>')
    # 9: the first challenge
    el = read_element(s, 'challenge')
    m = re.search(r'<challenge[^>]*>([^<]*)</challenge>', el)
    if not m:
        fail(9, 'no challenge: ' + el[:80])
    ch = base64.b64decode(m.group(1)).decode()
    print('STEP 9 challenge: %s' % ch)
    c = parse_challenge(ch)
    for k, want in (('realm', domain), ('qop', 'auth'), ('charset', 'utf-8'),
                    ('algorithm', 'md5-sess')):
        if c.get(k) != want:
            fail(9, '%s is %r, not %r' % (k, c.get(k), want))
    if not c.get('nonce'):
        fail(9, 'no nonce')
    # 10: the response (RFC 2831, md5-sess)
    cnonce = base64.b64encode(os.urandom(12)).decode()
    nc = '00000001'
    uri = 'xmpp/%s' % domain
    a1 = md5(('%s:%s:%s' % (user, domain, pw)).encode()) + (':%s:%s' % (c['nonce'], cnonce)).encode()
    ha1 = hexmd5(a1)
    ha2 = hexmd5(('AUTHENTICATE:%s' % uri).encode())
    resp = hexmd5(('%s:%s:%s:%s:auth:%s' % (ha1, c['nonce'], nc, cnonce, ha2)).encode())
    r = ('username="%s",realm="%s",nonce="%s",cnonce="%s",nc=%s,qop=auth,'
         'digest-uri="%s",response=%s,charset=utf-8' % (user, domain, c['nonce'], cnonce, nc, uri, resp))
    s.sendall(("<response xmlns='%s'>%s</response>" % (NS, base64.b64encode(r.encode()).decode())).encode())
    print('STEP 10 response sent')
    # 11: the second challenge, rspauth
    el = read_element(s, 'challenge')
    m = re.search(r'<challenge[^>]*>([^<]*)</challenge>', el)
    if not m:
        fail(11, 'no second challenge: ' + el[:120])
    ch2 = base64.b64decode(m.group(1)).decode()
    print('STEP 11 challenge: %s' % ch2)
    want_rsp = hexmd5(('%s:%s:%s:%s:auth:%s' % (ha1, c['nonce'], nc, cnonce,
                                                  hexmd5((':%s' % uri).encode()))).encode())
    if ch2 != 'rspauth=%s' % want_rsp:
        fail(11, 'rspauth does not prove the password: %r' % ch2)
    # 12: the empty response
    s.sendall(("<response xmlns='%s'/>" % NS).encode())
    print('STEP 12 empty response sent')
    # 13: success
    el = read_element(s, 'success')
    if not re.search(r'<success xmlns=.%s./>|<success xmlns=.%s.></success>' % (NS, NS), el):
        fail(13, 'not a bare <success/>: ' + el[:120])
    print('STEP 13 <success/>')
    print('VERDICT=ok')
    s.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
