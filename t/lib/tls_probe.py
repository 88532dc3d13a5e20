#!/usr/bin/python3
"""tls_probe.py - TLS session resumption and TLS parameters as a client sees
them (stdlib only: socket, ssl), for c2s and s2s listeners.

Makes --count connections one after the other; each offers the session of
the one before (TLS 1.2 session ID or ticket, TLS 1.3 ticket). Each one:
STARTTLS (or Direct TLS with ALPN xmpp-client / xmpp-server), a stream
restart, the features read (which takes a TLS 1.3 ticket), optionally SASL
EXTERNAL, then </stream:stream> and close_notify.

  /usr/bin/python3 t/lib/tls_probe.py --server 127.0.0.1:5222 --domain D
      [--mode starttls|direct] [--ns client|server] [--from DOMAIN]
      [--domain2 D2]          (the 2nd and later connections' domain: to+SNI)
      [--cafile F]...         (verify the server's certificate for the domain)
      [--cert F --key F]      (a client certificate, for a server that asks)
      [--tls12] [--ciphers LIST] [--no-ticket] [--count N] [--external]
      [--timeout S]           (--no-ticket: TLS 1.2 session IDs, the server's cache)

Output, one line per connection:
  CONN n=1 domain=D result=ok version=TLSv1.3 reused=no cipher=C cert=CN
       mechanisms=A+B external=success|failure|-
  CONN n=2 domain=D result=tls-error reason=...
  CONN n=2 domain=D result=error reason=...
Exit status: 0 when every connection got through TLS, 1 otherwise.
"""
import argparse
import re
import socket
import ssl
import sys
import time

NS_STREAMS = "http://etherx.jabber.org/streams"


def read_until(sock, marker, deadline, buf=b""):
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("waiting for %r" % marker)
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed while waiting for %r" % marker)
        buf += data
    return buf


def header(args, domain):
    ns = "jabber:%s" % args.ns
    frm = " from='%s'" % args.from_ if args.from_ else ""
    return ("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' "
            "to='%s'%s version='1.0'>" % (ns, NS_STREAMS, domain, frm)).encode()


def make_ctx(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.cafile:
        for f in args.cafile:
            ctx.load_verify_locations(f)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if args.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if args.ciphers:
        ctx.set_ciphers(args.ciphers)
    if args.no_ticket:
        ctx.options |= ssl.OP_NO_TICKET
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    if args.mode == "direct":
        ctx.set_alpn_protocols(["xmpp-%s" % args.ns])
    return ctx


def cert_name(tls):
    cert = tls.getpeercert()
    if not cert:
        return "-"
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return "?"


def one(args, n, domain, ctx, session):
    host, port = args.server.rsplit(":", 1)
    deadline = time.monotonic() + args.timeout
    out = {"n": n, "domain": domain}
    raw = socket.create_connection((host.strip("[]"), int(port)), timeout=args.timeout)
    tls = None
    try:
        if args.mode == "starttls":
            raw.sendall(header(args, domain))
            read_until(raw, b"</stream:features>", deadline)
            raw.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            read_until(raw, b"<proceed", deadline)
        try:
            tls = ctx.wrap_socket(raw, server_hostname=domain, session=session,
                                  do_handshake_on_connect=False)
            tls.settimeout(max(0.1, deadline - time.monotonic()))
            tls.do_handshake()
        except (ssl.SSLError, OSError) as e:
            out["result"] = "tls-error"
            out["reason"] = str(e).replace(" ", "_")[:120]
            return out, None
        tls.sendall(header(args, domain))
        feats = read_until(tls, b"</stream:features>", deadline)
        mechs = re.findall(rb"<mechanism>([^<]*)</mechanism>", feats)
        out.update(result="ok", version=tls.version(),
                   reused="yes" if tls.session_reused else "no",
                   cipher=tls.cipher()[0], cert=cert_name(tls),
                   mechanisms="+".join(m.decode() for m in mechs) or "-",
                   external="-")
        if args.external and b"EXTERNAL" in mechs:
            tls.sendall(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                        b"mechanism='EXTERNAL'>=</auth>")
            ans = b""
            while not re.search(rb"<success[^>]*/>|</success>|</failure>", ans):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("waiting for the SASL outcome")
                tls.settimeout(left)
                data = tls.recv(65536)
                if not data:
                    raise ConnectionError("closed before the SASL outcome")
                ans += data
            out["external"] = "success" if b"<success" in ans else "failure"
        session = tls.session
        try:
            tls.sendall(b"</stream:stream>")
            tls.settimeout(1)
            tls.unwrap()
        except (ssl.SSLError, OSError):
            pass
        return out, session
    except (OSError, TimeoutError, ConnectionError) as e:
        out["result"] = "error"
        out["reason"] = str(e).replace(" ", "_")[:120]
        return out, None
    finally:
        (tls or raw).close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--domain2")
    p.add_argument("--mode", choices=("starttls", "direct"), default="starttls")
    p.add_argument("--ns", choices=("client", "server"), default="client")
    p.add_argument("--from", dest="from_")
    p.add_argument("--cafile", action="append")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--tls12", action="store_true")
    p.add_argument("--ciphers")
    p.add_argument("--no-ticket", action="store_true")
    p.add_argument("--count", type=int, default=2)
    p.add_argument("--external", action="store_true")
    p.add_argument("--timeout", type=float, default=10)
    args = p.parse_args()

    ctx = make_ctx(args)
    session, status = None, 0
    for n in range(1, args.count + 1):
        domain = args.domain if n == 1 or not args.domain2 else args.domain2
        out, new = one(args, n, domain, ctx, session)
        if out.get("result") != "ok":
            status = 1
        print("CONN " + " ".join("%s=%s" % (k, v) for k, v in out.items()), flush=True)
        if new is not None:
            session = new
    return status


if __name__ == "__main__":
    sys.exit(main())
