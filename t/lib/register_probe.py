#!/usr/bin/python3
"""register_probe.py - in-band registration (XEP-0077) at the byte level,
on raw_client.Session (stdlib only).

  register_probe.py --server H:P --cafile F [--timeout S] COMMAND ...

Commands (JID is localpart@domain):
  register JID PASSWORD [--login]
        TLS, then the registration form (iq get) and the account (iq set) on
        the stream; with --login, SCRAM-SHA-256 on the same stream, bind and
        a message to self through the backend.
  passwd JID OLD NEW [--after N]
                         log in with OLD, change the password to NEW (with
                         N messages to self in the same write: they come
                         back after the answer, in order: AFTER in_order=)
  remove JID PASSWORD    log in, remove the account, see the stream end
  big JID PASSWORD BYTES log in, send a message of BYTES bytes to self
  echo JID PASSWORD      log in, messages to self (quotes, '>' in attribute
                         values, many small writes) interleaved with
                         registration requests answered by xedge
  burst JID PASSWORD N [--drop]
                         log in, then N registrations at once on N other
                         streams (accounts burstI-PID; with --drop, one more
                         stream sends its registration and closes at once),
                         then a message to self: its round trip while the
                         registrations' jobs run, and each registration's

Output lines (stdout):
  FEATURES stage=... list=...     (from raw_client.Session)
  FORM fields=instructions+username+password
  REGISTER result=ok | REGISTER result=error type=T condition=C
  LOGIN result=ok jid=J | LOGIN result=failure condition=C
  MESSAGE result=ok | MESSAGE result=mismatch
  PASSWD result=ok | PASSWD result=error type=T condition=C
  REMOVE result=ok
  CLOSE how=stream-error:COND|stream-end|eof|reset|none
  ECHO sent=N received=N intact=N answers=N
  BURST ping_ms=N ok=N busy=N other=N fastest_ms=N slowest_ms=N
  RESULT=ok | RESULT=stream-error condition=C ... | RESULT=error reason=R
"""
import argparse
import os
import sys
import time
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from raw_client import (Session, StreamError, Closed, Timeout, ProtocolError,  # noqa: E402
                        local, ns, q)

NS_REG = 'jabber:iq:register'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'


def stanza_error(el):
    err = el.find('{jabber:client}error')
    if err is None:
        return '-', '-'
    cond = '-'
    for c in err:
        if ns(c.tag) == NS_STANZAS and local(c.tag) != 'text':
            cond = local(c.tag)
    return err.get('type', '-'), cond


def wait_iq(s, iq_id, seen=None):
    """The answer to iq IQ_ID; other stanzas go to SEEN (a list)."""
    while True:
        el = s.recv()
        if local(el.tag) == 'iq' and el.get('id') == iq_id:
            return el
        if seen is not None:
            seen.append(el)


def answer(el):
    if el.get('type') == 'result':
        return 'result=ok'
    t, c = stanza_error(el)
    return 'result=error type=%s condition=%s' % (t, c)


def login(s, password, resource='probe'):
    r = s.auth('SCRAM-SHA-256', password)
    if r[0] != 'success':
        print('LOGIN result=failure condition=%s' % r[1], flush=True)
        return False
    jid = s.restart_and_bind(resource)
    print('LOGIN result=ok jid=%s' % jid, flush=True)
    return True


def message_to_self(s, body, attr="it's > \"quoted\""):
    bare = s.bound_jid.split('/')[0]
    s.send("<message to='%s' type='chat' id='m1' xml:lang='en'><thread>%s</thread><body>%s</body></message>"
           % (escape(s.bound_jid, {"'": '&apos;'}), escape(attr), escape(body)))
    del bare
    while True:
        el = s.recv()
        if local(el.tag) == 'message':
            b = el.find('{jabber:client}body')
            t = el.find('{jabber:client}thread')
            return (b is not None and b.text == body and t is not None and t.text == attr)


def cmd_register(s, a):
    s.connect()
    s.send("<iq type='get' id='reg1'><query xmlns='%s'/></iq>" % NS_REG)
    el = wait_iq(s, 'reg1')
    qry = el.find('{%s}query' % NS_REG)
    fields = [local(c.tag) for c in qry] if qry is not None else []
    print('FORM fields=%s' % ('+'.join(fields) or '-'), flush=True)
    s.send("<iq type='set' id='reg2'><query xmlns='%s'><username>%s</username>"
           "<password>%s</password></query></iq>"
           % (NS_REG, escape(s.user), escape(a.args[0])))
    el = wait_iq(s, 'reg2')
    print('REGISTER %s' % answer(el), flush=True)
    if a.login and el.get('type') == 'result':
        if not login(s, a.args[0]):
            return 1
        body = 'hello <&> from a new account'
        print('MESSAGE result=%s' % ('ok' if message_to_self(s, body) else 'mismatch'), flush=True)
    return 0


def cmd_passwd(s, a):
    s.connect()
    if not login(s, a.args[0]):
        return 1
    after = ''.join("<message to='%s' type='chat' id='after%d'><body>after %d</body></message>"
                    % (escape(s.bound_jid, {"'": '&apos;'}), i, i) for i in range(a.after))
    # with --after N: N messages to self in the same write as the request
    s.send("<iq type='set' id='pw1'><query xmlns='%s'><username>%s</username>"
           "<password>%s</password></query></iq>%s"
           % (NS_REG, escape(s.user), escape(a.args[1]), after))
    seen = []
    print('PASSWD %s' % answer(wait_iq(s, 'pw1', seen)), flush=True)
    if a.after:
        bodies = [m.findtext('{jabber:client}body') for m in seen if local(m.tag) == 'message']
        while len(bodies) < a.after:
            el = s.recv()
            if local(el.tag) == 'message':
                bodies.append(el.findtext('{jabber:client}body'))
        print('AFTER in_order=%s' % ('yes' if bodies == ['after %d' % i for i in range(a.after)]
                                     else 'no:' + '|'.join(map(str, bodies))), flush=True)
    return 0


def cmd_remove(s, a):
    s.connect()
    if not login(s, a.args[0]):
        return 1
    s.send("<iq type='set' id='rm1' to='%s'><query xmlns='%s'><remove/></query></iq>"
           % (s.domain, NS_REG))
    el = wait_iq(s, 'rm1')
    print('REMOVE %s' % answer(el), flush=True)
    how, _ = s.wait_close(5)
    print('CLOSE how=%s' % (how or 'none'), flush=True)
    return 0


def cmd_big(s, a):
    s.connect()
    if not login(s, a.args[0]):
        return 1
    n = int(a.args[1])
    s.send("<message to='%s' type='chat'><body>%s</body></message>" % (s.bound_jid, 'x' * n))
    how, _ = s.wait_close(5)
    print('CLOSE how=%s' % (how or 'none'), flush=True)
    return 0


def cmd_echo(s, a):
    s.connect()
    if not login(s, a.args[0]):
        return 1
    sent = received = intact = answers = 0
    bodies = []
    for i in range(20):
        body = "m%d <'\"&> %s" % (i, 'y' * (i * 997 % 5000))
        bodies.append(body)
        data = ("<message to='%s' type='chat' id='e%d'><body>%s</body></message>"
                % (escape(s.bound_jid, {"'": '&apos;'}), i, escape(body))).encode()
        if i % 3 == 0:  # in small pieces
            for k in range(0, len(data), 7):
                s.send(data[k:k + 7])
        else:
            s.send(data)
        sent += 1
        if i % 4 == 0:  # a request xedge answers, among the backend's stanzas
            s.send("<iq type='get' id='g%d'><query xmlns='%s'/></iq>" % (i, NS_REG))
            answers -= 1  # counted when it comes back
    s.send(b' ')  # a white space keepalive goes through
    expected_answers = -answers
    answers = 0
    deadline = time.monotonic() + a.timeout
    while (received < sent or answers < expected_answers) and time.monotonic() < deadline:
        el = s.recv()
        if local(el.tag) == 'message':
            received += 1
            b = el.find('{jabber:client}body')
            if b is not None and b.text in bodies:
                intact += 1
        elif local(el.tag) == 'iq' and (el.get('id') or '').startswith('g'):
            qry = el.find('{%s}query' % NS_REG)
            if el.get('type') == 'result' and qry is not None and qry.find('{%s}registered' % NS_REG) is not None:
                answers += 1
    print('ECHO sent=%d received=%d intact=%d answers=%d/%d'
          % (sent, received, intact, answers, expected_answers), flush=True)
    return 0


def cmd_burst(s, a):
    n = int(a.args[1])
    s.connect()
    if not login(s, a.args[0]):
        return 1
    server = '%s:%d' % s.addr
    quiet = lambda line: None  # noqa: E731
    streams = []
    for i in range(n + (1 if a.drop else 0)):
        o = Session('burst%d-%d@%s' % (i, os.getpid(), s.domain), server, a.mode, a.cafile,
                    False, a.timeout, False, log=quiet)
        o.connect()
        streams.append(o)
    t_reg = time.monotonic()
    for o in streams:
        o.send("<iq type='set' id='reg'><query xmlns='%s'><username>%s</username>"
               "<password>pw-%s</password></query></iq>" % (NS_REG, escape(o.user), escape(o.user)))
    if a.drop:  # the last one goes away while its job runs
        streams.pop().close()
    t0 = time.monotonic()
    ok = message_to_self(s, 'while the registrations run')
    ping_ms = (time.monotonic() - t0) * 1000
    counts = {'ok': 0, 'busy': 0, 'other': 0}
    times = []
    for o in streams:
        el = wait_iq(o, 'reg')
        times.append((time.monotonic() - t_reg) * 1000)
        r = answer(el)
        key = ('ok' if r == 'result=ok' else
               'busy' if r == 'result=error type=wait condition=resource-constraint' else 'other')
        counts[key] += 1
        o.close()
    print('BURST ping_ms=%d ok=%d busy=%d other=%d fastest_ms=%d slowest_ms=%d message=%s'
          % (ping_ms, counts['ok'], counts['busy'], counts['other'], min(times), max(times),
             'ok' if ok else 'mismatch'), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--server', required=True)
    p.add_argument('--mode', choices=['starttls', 'direct'], default='starttls')
    p.add_argument('--cafile')
    p.add_argument('--timeout', type=float, default=10.0)
    p.add_argument('--login', action='store_true')
    p.add_argument('--drop', action='store_true')
    p.add_argument('--after', type=int, default=0)
    p.add_argument('-v', '--verbose', action='store_true')
    p.add_argument('command', choices=['register', 'passwd', 'remove', 'big', 'echo', 'burst'])
    p.add_argument('jid')
    p.add_argument('args', nargs='*')
    a = p.parse_args()
    s = Session(a.jid, a.server, a.mode, a.cafile, False, a.timeout, a.verbose)
    try:
        globals()['cmd_' + a.command](s, a)
        print('RESULT=ok', flush=True)
        return 0
    except StreamError as e:
        print('RESULT=stream-error condition=%s text=%s stage=%s' % (e.condition, q(e.text), s.stage),
              flush=True)
        return 2
    except Closed as e:
        print('RESULT=closed how=%s stage=%s' % (e.how, s.stage), flush=True)
        return 4
    except Timeout:
        print('RESULT=timeout stage=%s' % s.stage, flush=True)
        return 3
    except ProtocolError as e:
        print('RESULT=error reason=%s stage=%s' % (q(e), s.stage), flush=True)
        return 5
    finally:
        s.close()


if __name__ == '__main__':
    sys.exit(main())
