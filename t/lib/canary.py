#!/usr/bin/python3
"""canary.py SERVER CAFILE JID PASSWORD SOURCE STOPFILE OUTFILE

A logged-in user that keeps exchanging messages (with itself, through xedge
and the backend) while a hostile test runs elsewhere: one message every
100 ms, each waited for. Connects from SOURCE (a local address, so that
per-address limits on the attacker's address do not apply to it). Writes
READY to OUTFILE once logged in; when STOPFILE appears, writes the figures:
SENT, RECEIVED, MAX_RTT_MS, P50_RTT_MS, ERROR (none|...).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_client  # noqa: E402


def main():
    server, cafile, jid, pw, source, stopfile, outfile = sys.argv[1:8]
    s = raw_client.Session(jid, server, 'starttls', cafile, False, 3600, log=lambda _l: None)
    s.source = source
    rtts, sent, error = [], 0, 'none'
    try:
        s.connect()
        assert s.auth('SCRAM-SHA-256', pw)[0] == 'success'
        me = s.restart_and_bind('canary')
        with open(outfile, 'w') as f:
            f.write('READY\n')
        while not os.path.exists(stopfile):
            t0 = time.monotonic()
            sent += 1
            s.send("<message to='%s' type='chat' id='c%d'><body>ping %d</body></message>"
                   % (me, sent, sent))
            while True:
                el = s.recv()
                if el is not None and el.get('id') == 'c%d' % sent:
                    break
            rtts.append((time.monotonic() - t0) * 1000)
            time.sleep(0.1)
        s.close()
    except Exception as e:  # report what broke, not a traceback
        error = type(e).__name__ + ':' + str(e).replace(' ', '_')[:80]
    rtts.sort()
    with open(outfile, 'w') as f:
        f.write('SENT=%d\nRECEIVED=%d\nMAX_RTT_MS=%.1f\nP50_RTT_MS=%.1f\nERROR=%s\n' % (
            sent, len(rtts), rtts[-1] if rtts else -1, rtts[len(rtts) // 2] if rtts else -1, error))
    return 0


if __name__ == '__main__':
    sys.exit(main())
