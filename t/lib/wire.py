"""wire.py: the few lines of the wire the byte-level test tools share
(stdlib only): c2s and s2s stream headers, reading up to a marker, and a
STARTTLS negotiation that leaves a TLS socket on a fresh stream, its
features read."""
import socket
import ssl


def header(domain):
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>"
            % domain).encode()


def s2s_header(frm, to, stream_id=None):
    """A jabber:server stream header with the dialback namespace (XEP-0220)."""
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='http://etherx.jabber.org/streams' "
            "xmlns:db='jabber:server:dialback' from='%s' to='%s'%s version='1.0'>"
            % (frm, to, " id='%s'" % stream_id if stream_id else "")).encode()


def read_until(s, marker):
    """Read from S until MARKER (bytes) has been received; returns all read."""
    return _read_until(s, marker)


def _read_until(s, marker):
    buf = b''
    while marker not in buf:
        d = s.recv(65536)
        if not d:
            raise ConnectionError('closed while waiting for %r' % marker)
        buf += d
    return buf


def starttls(server, domain, cafile, cert=None, key=None, timeout=20):
    """Connect to SERVER (host:port), STARTTLS (verifying with CAFILE, with a
    client certificate when given), open the stream again; returns the TLS
    socket and the features it got."""
    host, _, port = server.rpartition(':')
    s = socket.create_connection((host.strip('[]'), int(port)), timeout=timeout)
    s.sendall(header(domain))
    _read_until(s, b'</stream:features>')
    s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    _read_until(s, b'<proceed')
    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    s = ctx.wrap_socket(s, server_hostname=domain)
    s.sendall(header(domain))
    return s, _read_until(s, b'</stream:features>')
