// sasl2.mjs: xmpp.js 0.14 (@xmpp/client) through xedge with SASL2 (XEP-0388),
// Bind2 (XEP-0386) and FAST (XEP-0484), as a web or Node client of today
// does it (t/e2e-sasl2-xmppjs.t). @xmpp/client 0.14 bundles @xmpp/sasl2,
// client-core's bind2 and fast, and @xmpp/sasl-ht-sha-256-none: with no
// token stored, its first SASL2 login asks for one (<request-token
// mechanism='HT-SHA-256-NONE'/>); with one, it logs in with it.
//
// Two connections, one after the other, with the same user agent id:
//   1. the password (SASL2, Bind2 with --resource as the tag); the token
//      that comes in <success> is kept; a message to its own full JID
//      must come back (through xedge and the backend);
//   2. a new client with the token (and --password2 as the password, give
//      a wrong one to prove the token did it: xmpp.js falls back to the
//      password when the token is refused); the message round trip again,
//      and, with --peer JID, a message to PEER (another run of this script
//      or t/lib/sasl2_client.py expects it).
//
//   node sasl2.mjs --server HOST:PORT --domain D --username U --password P
//        [--password2 P2] [--resource TAG] [--peer JID] [--timeout SECONDS]
//
// Trust the sandbox's CA with NODE_EXTRA_CA_CERTS. Prints KEY=value lines:
//   SASL2_1=1|0           (the first login went through <authenticate>)
//   MECH1=SCRAM-SHA-1     (the mechanism of the first <authenticate>)
//   BIND2_1=1|0           (a <bind xmlns='urn:xmpp:bind:0'/> was in it)
//   REQUEST_TOKEN=1|0     (a <request-token/> was in it)
//   TOKEN=1|0  TOKEN_MECH=HT-SHA-256-NONE  TOKEN_EXPIRY=iso
//   JID1=full  MESSAGE1=ok
//   MECH2=HT-SHA-256-NONE  JID2=full  MESSAGE2=ok  PEER=sent
//   CONDITION=cond (of a SASL failure)  RESULT=ok|failure|error  RC=n
// exit 0 on success, 1 on a SASL failure, 2 on any other error.
import { client, xml } from "@xmpp/client";

const opt = { timeout: 15 };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (["--server", "--domain", "--username", "--password", "--password2", "--resource", "--peer",
       "--timeout"].includes(a) && i + 1 < args.length) opt[a.slice(2)] = args[++i];
  else usage();
}
if (!opt.server || !opt.domain || !opt.username || !opt.password) usage();
opt.password2 ??= opt.password;

function usage() {
  console.error("usage: node sasl2.mjs --server HOST:PORT --domain D --username U --password P " +
    "[--password2 P2] [--resource TAG] [--peer JID] [--timeout S]");
  process.exit(2);
}

const lines = [];
const say = (k, v) => lines.push(`${k}=${v}`);
let finished = false;
function finish(rc, why) {
  if (finished) return;
  finished = true;
  if (why) console.error(why);
  lines.push(`RESULT=${["ok", "failure", "error"][rc]}`, `RC=${rc}`);
  process.stdout.write(lines.join("\n") + "\n", () => process.exit(rc));
}
function failed(err) {
  if (err?.name === "SASLError") {
    say("CONDITION", err.condition);
    finish(1, `SASL failure: ${err.condition}`);
  } else {
    // name, condition and stack: an xmpp.js error can have an empty message
    finish(2, `error: ${err?.name ?? ""} ${err?.condition ?? ""} ${err?.message ?? err}\n${err?.stack ?? ""}`);
  }
}
setTimeout(() => finish(2, `timeout after ${opt.timeout} s`), Number(opt.timeout) * 1000).unref();

const uaId = globalThis.crypto.randomUUID();
const userAgent = () => xml("user-agent", { id: uaId },
  xml("software", {}, "xmpp.js 0.14 (xedge test)"), xml("device", {}, "sasl2.mjs"));

// one connection: log in, round trip a message to ourselves, stop
async function session(n, password, token) {
  const xmpp = client({
    service: `xmpp://${opt.server}`,
    domain: opt.domain,
    resource: opt.resource,
    username: opt.username,
    password,
    userAgent: userAgent(),
  });
  xmpp.reconnect.stop(); // one attempt: a failure must show, not be retried
  let saved = null;
  xmpp.fast.saveToken = async (t) => { saved = t; };
  xmpp.fast.fetchToken = async () => token;
  xmpp.on("send", (el) => {
    if (el.name === "authenticate") {
      say(`SASL2_${n}`, 1);
      say(`MECH${n}`, el.attrs.mechanism ?? "");
      if (n === 1) {
        say("BIND2_1", el.getChild("bind", "urn:xmpp:bind:0") ? 1 : 0);
        say("REQUEST_TOKEN", el.getChild("request-token", "urn:xmpp:fast:0") ? 1 : 0);
      }
    } else if (el.name === "auth") {
      say(`SASL2_${n}`, 0);
      say(`MECH${n}`, el.attrs.mechanism ?? "");
    }
  });
  const body = `xmppjs-sasl2-${n}-${process.pid}-${Date.now()}`;
  const back = new Promise((resolve) => {
    xmpp.on("stanza", (s) => {
      if (s.is("message") && s.getChildText("body") === body) resolve();
    });
  });
  const errored = new Promise((_, reject) => xmpp.on("error", reject));
  const online = new Promise((resolve) => xmpp.on("online", resolve));
  await Promise.race([xmpp.start(), errored]);
  const address = await Promise.race([online, errored]);
  say(`JID${n}`, address.toString());
  await xmpp.send(xml("presence"));
  await xmpp.send(xml("message", { to: address.toString(), type: "chat" }, xml("body", {}, body)));
  await Promise.race([back, errored]);
  say(`MESSAGE${n}`, "ok");
  if (n === 2 && opt.peer) {
    await xmpp.send(xml("message", { to: opt.peer, type: "chat" }, xml("body", {}, `xmppjs-to-peer-${process.pid}`)));
    say("PEER", "sent");
  }
  // see client.mjs: close without xmpp.js 0.14's late ack
  xmpp.streamManagement.enabled = false;
  await xmpp.stop().catch(() => {});
  return saved;
}

try {
  const t = await session(1, opt.password, undefined);
  say("TOKEN", t?.token ? 1 : 0);
  if (t) {
    say("TOKEN_MECH", t.mechanism);
    say("TOKEN_EXPIRY", t.expiry);
  }
  if (!t?.token) finish(2, "no FAST token after the first login");
  await session(2, opt.password2, t);
  finish(0);
} catch (err) {
  failed(err);
}
