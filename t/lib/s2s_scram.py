#!/usr/bin/python3
"""s2s_scram.py - a peer server that authenticates to an s2s listener with
SASL SCRAM and a pre-shared secret (doc/federation.md), written by hand
(stdlib only: socket, ssl, hashlib, hmac), with channel binding
tls-server-end-point (RFC 5929) computed from the certificate the server
showed: for what no Debian XMPP server does.

  /usr/bin/python3 t/lib/s2s_scram.py --server HOST:PORT --from peer.test
      --to example.test --secret-file FILE [--cafile F] [--mode starttls|direct]
      [--tls12] [--mech SCRAM-SHA-256-PLUS] [--cb tls-server-end-point|none]
      [--corrupt-cb] [--timeout S]

Output:
  TLS version=... cert_hash=sha256|sha384|sha512
  FEATURES mechanisms=A+B cb_types=X+Y
  RESULT=ok mech=... cb=...             (and the server's signature verified)
  RESULT=failure condition=COND
  RESULT=error reason=...
Exit: 0 ok, 1 SASL failure, 2 other errors.
"""
import argparse
import base64
import hashlib
import hmac
import os
import re
import socket
import ssl
import sys
import time

NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"

# the certificate's signatureAlgorithm (DER OID content) -> the hash of
# tls-server-end-point (RFC 5929 4.1: MD5 and SHA-1 -> SHA-256)
SIG_HASH = {
    "2a8648ce3d0401": "sha256",      # ecdsa-with-SHA1
    "2a8648ce3d040302": "sha256",    # ecdsa-with-SHA256
    "2a8648ce3d040303": "sha384",
    "2a8648ce3d040304": "sha512",
    "2a864886f70d010105": "sha256",  # sha1WithRSAEncryption
    "2a864886f70d010104": "sha256",  # md5WithRSAEncryption
    "2a864886f70d01010b": "sha256",  # sha256WithRSAEncryption
    "2a864886f70d01010c": "sha384",
    "2a864886f70d01010d": "sha512",
}


def der_tlv(b, i):
    """(tag, start of value, end of value) of the DER element at i."""
    tag = b[i]
    n = b[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(b[i:i + k], "big")
        i += k
    return tag, i, i + n


def cert_hash_name(der):
    _, v, _ = der_tlv(der, 0)           # Certificate SEQUENCE
    _, _, tbs_end = der_tlv(der, v)     # tbsCertificate
    _, a, _ = der_tlv(der, tbs_end)     # signatureAlgorithm SEQUENCE
    tag, o, oend = der_tlv(der, a)      # its OID
    if tag != 0x06:
        raise ValueError("no signature algorithm OID")
    oid = der[o:oend].hex()
    if oid not in SIG_HASH:
        raise ValueError("signature algorithm %s has no end-point hash" % oid)
    return SIG_HASH[oid]


class Fail(Exception):
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--from", dest="frm", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--cafile")
    ap.add_argument("--mode", choices=("starttls", "direct"), default="starttls")
    ap.add_argument("--tls12", action="store_true")
    ap.add_argument("--mech", default="SCRAM-SHA-256-PLUS")
    ap.add_argument("--cb", default="tls-server-end-point",
                    choices=("tls-server-end-point", "none"))
    ap.add_argument("--corrupt-cb", action="store_true")
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    deadline = time.monotonic() + a.timeout
    buf = [b""]

    def read_until(sock, pattern):
        while True:
            m = re.search(pattern, buf[0], re.S)
            if m:
                buf[0] = buf[0][m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("timeout waiting for %r" % pattern)
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                raise Fail("closed while waiting for %r" % pattern)
            buf[0] += data

    hdr = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
           "xmlns:stream='%s' from='%s' to='%s' version='1.0'>"
           % (NS_STREAMS, a.frm, a.to)).encode()
    host, port = a.server.rsplit(":", 1)
    with open(a.secret_file, "rb") as f:
        secret = f.read().rstrip()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if a.cafile:
        ctx.load_verify_locations(a.cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if a.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if a.mode == "direct":
        ctx.set_alpn_protocols(["xmpp-server"])
    try:
        raw = socket.create_connection((host, int(port)), timeout=a.timeout)
        if a.mode == "starttls":
            raw.sendall(hdr)
            read_until(raw, rb"</stream:features>")
            raw.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            read_until(raw, rb"<proceed[^>]*>")
            buf[0] = b""
        s = ctx.wrap_socket(raw, server_hostname=a.to)
        der = s.getpeercert(binary_form=True)
        hname = cert_hash_name(der)
        print("TLS version=%s cert_hash=%s" % (s.version(), hname), flush=True)
        s.sendall(hdr)
        feats = read_until(s, rb"<stream:features.*?</stream:features>").group(0)
        mechs = [m.decode() for m in re.findall(rb"<mechanism>([^<]*)</mechanism>", feats)]
        cbt = [t.decode() for t in re.findall(rb"<channel-binding type='([^']*)'", feats)]
        print("FEATURES mechanisms=%s cb_types=%s" % ("+".join(mechs) or "-",
                                                     "+".join(cbt) or "-"), flush=True)

        hname_scram = re.match(r"SCRAM-(SHA-(?:1|256|512))", a.mech)
        if not hname_scram:
            raise Fail("not a SCRAM mechanism: %s" % a.mech)
        h = hname_scram.group(1).replace("-", "").lower()
        if a.mech.endswith("-PLUS"):
            if a.cb == "none":
                raise Fail("a -PLUS mechanism needs --cb")
            gs2 = "p=%s,," % a.cb
            cbdata = hashlib.new(hname, der).digest()
            if a.corrupt_cb:
                cbdata = bytes([cbdata[0] ^ 0x5A]) + cbdata[1:]
        else:
            gs2, cbdata = "n,,", b""
        user = a.frm.replace("=", "=3D").replace(",", "=2C")
        cnonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = "n=%s,r=%s" % (user, cnonce)
        s.sendall(("<auth xmlns='%s' mechanism='%s'>%s</auth>" % (
            NS_SASL, a.mech, base64.b64encode((gs2 + first_bare).encode()).decode())).encode())
        m = read_until(s, rb"<(challenge|failure)[^>]*>(.*?)</(challenge|failure)>")
        if m.group(1) == b"failure":
            cond = re.search(rb"<([a-z-]+)/>", m.group(2))
            print("RESULT=failure condition=%s" % (cond.group(1).decode() if cond else "?"))
            return 1
        server_first = base64.b64decode(m.group(2)).decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        if not attrs["r"].startswith(cnonce):
            raise Fail("the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(h, secret, base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", h).digest()
        stored = hashlib.new(h, client_key).digest()
        final_bare = "c=%s,r=%s" % (base64.b64encode(gs2.encode() + cbdata).decode(), attrs["r"])
        auth_msg = ",".join((first_bare, server_first, final_bare)).encode()
        sig = hmac.new(stored, auth_msg, h).digest()
        proof = bytes(x ^ y for x, y in zip(client_key, sig))
        final = "%s,p=%s" % (final_bare, base64.b64encode(proof).decode())
        s.sendall(("<response xmlns='%s'>%s</response>" % (
            NS_SASL, base64.b64encode(final.encode()).decode())).encode())
        m = read_until(s, rb"<(success|failure)[^>]*(?:/>|>(.*?)</(?:success|failure)>)")
        if m.group(1) == b"failure":
            cond = re.search(rb"<([a-z-]+)/>", m.group(2) or b"")
            print("RESULT=failure condition=%s" % (cond.group(1).decode() if cond else "?"))
            return 1
        server_key = hmac.new(salted, b"Server Key", h).digest()
        want = base64.b64encode(hmac.new(server_key, auth_msg, h).digest()).decode()
        got = base64.b64decode(m.group(2) or b"").decode()
        if got != "v=" + want:
            raise Fail("the server's signature is wrong")
        print("RESULT=ok mech=%s cb=%s" % (a.mech, a.cb if a.mech.endswith("-PLUS") else "-"))
        try:
            s.sendall(b"</stream:stream>")
            s.close()
        except OSError:
            pass
        return 0
    except (Fail, OSError, ValueError, KeyError, ssl.SSLError) as e:
        print("RESULT=error reason=%s" % str(e).replace(" ", "_")[:200])
        return 2


if __name__ == "__main__":
    sys.exit(main())
