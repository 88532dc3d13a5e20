#!/usr/bin/python3
"""stream_probe.py HOST:PORT CASE [JID PASSWORD] -- byte-level probes of xedge's
stream handling (stdlib only). Prints what the server sent, then one line
`VERDICT=...` that the test checks; exit 0 when the probe itself ran.

Cases:
  host-unknown, doctype, billion-laughs, bad-namespace, no-version,
  stanza-before-tls, not-well-formed, comment, oversized, byte-by-byte,
  starttls-injection JID PW, pipelined-restart JID PW, tls-alert
"""
import base64, re, socket, ssl, sys, time

HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>")
DOMAIN = 'example.test'


def read_until(s, pat, t=15.0):
    buf, end = b'', time.time() + t
    s.settimeout(0.2)
    while time.time() < end:
        if pat and re.search(pat, buf):
            break
        try:
            d = s.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except (ConnectionResetError, ssl.SSLError):
            buf += b'[RESET]'
            break
        if not d:
            buf += b'[EOF]'
            break
        buf += d
    return buf


def stream_error(buf):
    m = re.search(rb'<stream:error><([a-z-]+) ', buf)
    return m.group(1).decode() if m else None


def connect(addr):
    host, port = addr.rsplit(':', 1)
    return socket.create_connection((host, int(port)), timeout=20)


def tls_wrap(s):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.settimeout(20)  # read_until left a short timeout on the socket
    return ctx.wrap_socket(s, server_hostname=DOMAIN)


def one_shot(addr, data, pat=rb'\[EOF\]'):
    s = connect(addr)
    s.sendall(data)
    buf = read_until(s, pat)
    s.close()
    return buf


def closed(buf):
    """the server ended its stream and closed the connection"""
    return buf.endswith(b'</stream:stream>[EOF]')


def main():
    addr, case = sys.argv[1], sys.argv[2]
    hdr = (HDR % DOMAIN).encode()
    verdict = 'none'
    if case == 'host-unknown':
        buf = one_shot(addr, (HDR % 'not-served.test').encode())
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'doctype':
        buf = one_shot(addr, b"<?xml version='1.0'?><!DOCTYPE stream:stream>" + hdr)
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'billion-laughs':
        doc = (b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
               b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>")
        buf = one_shot(addr, doc + hdr)
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'bad-namespace':
        buf = one_shot(addr, hdr.replace(b"xmlns='jabber:client'", b"xmlns='jabber:server'"))
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'no-version':
        buf = one_shot(addr, hdr.replace(b" version='1.0'>", b'>'))
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'stanza-before-tls':
        buf = one_shot(addr, hdr + b"<iq type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>")
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'not-well-formed':
        buf = one_shot(addr, hdr + b"<a><b></a>")
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'comment':
        buf = one_shot(addr, hdr + b"<!-- hello -->")
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'oversized':
        buf = one_shot(addr, hdr + b"<x xmlns='urn:example'>" + b"A" * 100000 + b"</x>")
        verdict = 'error=%s closed=%s' % (stream_error(buf), closed(buf))
    elif case == 'byte-by-byte':
        s = connect(addr)
        for b in hdr + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>":
            s.sendall(bytes([b]))
        buf = read_until(s, rb'<proceed')
        s = tls_wrap(s)
        s.sendall(hdr)
        buf2 = read_until(s, rb'</stream:features>')
        s.close()
        verdict = 'proceed=%s mechanisms=%s' % (b'<proceed' in buf,
                                                b'<mechanism>' in buf2)
    elif case == 'starttls-injection':
        jid, pw = sys.argv[3], sys.argv[4]
        local = jid.split('@')[0]
        auth = ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" %
                base64.b64encode(b'\0' + local.encode() + b'\0' + pw.encode()).decode()).encode()
        s = connect(addr)
        # the attacker's bytes ride in the same segment as <starttls/>
        s.sendall(hdr + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" + auth)
        buf = read_until(s, rb'<proceed')
        s = tls_wrap(s)
        s.sendall(hdr)
        buf2 = read_until(s, rb"</stream:features>", 10)
        extra = read_until(s, rb'<success', 1.5)  # anything beyond the features?
        s.close()
        verdict = 'proceed=%s features=%s success=%s' % (
            b'<proceed' in buf, b'<mechanism>' in buf2, b'<success' in buf2 + extra)
    elif case == 'pipelined-restart':
        jid, pw = sys.argv[3], sys.argv[4]
        local = jid.split('@')[0]
        s = connect(addr)
        s.sendall(hdr + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        read_until(s, rb'<proceed')
        s = tls_wrap(s)
        s.sendall(hdr)
        read_until(s, rb'</stream:features>')
        auth = ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" %
                base64.b64encode(b'\0' + local.encode() + b'\0' + pw.encode()).decode()).encode()
        bind = (b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                b"<resource>piped</resource></bind></iq>")
        # auth, the restarted stream and the bind request in one TLS record
        s.sendall(auth + hdr + bind)
        buf = read_until(s, rb"</iq>", 20)
        s.sendall(b'</stream:stream>')
        end = read_until(s, rb'</stream:stream>|\[EOF\]', 5)
        s.close()
        m = re.search(rb'<jid>([^<]+)</jid>', buf)
        verdict = 'success=%s bound=%s closed=%s' % (
            b'<success' in buf, m.group(1).decode() if m else None,
            b'</stream:stream>' in end or b'[EOF]' in end)
    elif case == 'tls-alert':
        # a broken ClientHello after <proceed/>: the TLS alert xedge writes
        # while it closes the connection (in the same read) reaches us first
        s = connect(addr)
        s.sendall(hdr + b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        read_until(s, rb'<proceed')
        s.sendall(b'\x16\x03\x01\x00\x04\x01\x00\x00\x00')
        buf = read_until(s, rb'\[EOF\]|\[RESET\]', 10)
        s.close()
        verdict = 'alert=%s closed=%s' % (buf[:1] == b'\x15', buf.endswith((b'[EOF]', b'[RESET]')))
        buf = buf.hex().encode()
    else:
        print('unknown case', case)
        return 2
    print(buf.decode('utf-8', 'replace')[:2000])
    print('VERDICT=' + verdict)
    return 0


if __name__ == '__main__':
    sys.exit(main())
