#!/usr/bin/python3
"""echo_bot.py JID PASSWORD HOST:PORT CAFILE TIMEOUT_S - a slixmpp (TCP,
STARTTLS, certificate verified) user for the WebSocket tests: prints READY
once its session is up, then 'GOT <from> <body>' per chat message, answers
each with 'echo: <body>', and exits after TIMEOUT_S seconds."""
import asyncio, logging, sys
import slixmpp

logging.getLogger('asyncio').setLevel(logging.CRITICAL)
jid, pw, hostport, cafile, timeout = sys.argv[1:6]
host, port = hostport.rsplit(':', 1)
c = slixmpp.ClientXMPP(jid, pw)
c.ca_certs = cafile


def start(_):
    c.send_presence()
    print('READY', c.boundjid, flush=True)


def on_message(m):
    if m['type'] in ('chat', 'normal') and m['body']:
        print('GOT', m['from'], m['body'], flush=True)
        m.reply('echo: %s' % m['body']).send()


c.add_event_handler('session_start', start)
c.add_event_handler('message', on_message)
c.connect((host, int(port)), force_starttls=True)
asyncio.get_event_loop().run_until_complete(asyncio.sleep(float(timeout)))
c.disconnect()
