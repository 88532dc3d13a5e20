#!/usr/bin/python3
"""external_probe.py SERVER CAFILE DOMAIN [--cert PEM --key PEM] [--authzid JID]

STARTTLS (with a client certificate when given), prints the mechanisms
offered (MECHS=a,b,c), then, if EXTERNAL is offered, tries it with the
authzid given (or none: "=") and prints RESULT=success or
RESULT=failure:<condition>. Exit 0 when the probe ran."""
import argparse
import base64
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

NS = 'urn:ietf:params:xml:ns:xmpp-sasl'


def read_until(s, pat):
    buf = b''
    s.settimeout(15)
    while not re.search(pat, buf):
        d = s.recv(65536)
        if not d:
            break
        buf += d
    return buf


def main():
    p = argparse.ArgumentParser()
    p.add_argument('server')
    p.add_argument('cafile')
    p.add_argument('domain')
    p.add_argument('--cert')
    p.add_argument('--key')
    p.add_argument('--authzid')
    a = p.parse_args()
    s, f = wire.starttls(a.server, a.domain, a.cafile, a.cert, a.key)
    f = f.decode()
    mechs = re.findall(r'<mechanism>([^<]+)</mechanism>', f)
    print('MECHS=' + ','.join(mechs))
    if 'EXTERNAL' in mechs:
        payload = base64.b64encode(a.authzid.encode()).decode() if a.authzid else '='
        s.sendall(("<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (NS, payload)).encode())
        r = read_until(s, rb'</failure>|<success').decode()
        m = re.search(r'<failure[^>]*><([a-z-]+)', r)
        print('RESULT=' + ('success' if '<success' in r else 'failure:' + (m.group(1) if m else '?')))
    s.close()
    return 0


if __name__ == '__main__':
    main()
