// xmppjs_ws.mjs: xmpp.js (@xmpp/client 0.14) over XMPP-over-WebSocket
// (RFC 7395) for t/e2e-websocket.t. Node 20 has no global WebSocket: the
// `ws` package stands in (a subclass, to see the close code). Trust the
// sandbox's CA with NODE_EXTRA_CA_CERTS.
//
//   node xmppjs_ws.mjs --service wss://HOST:PORT/xmpp-websocket --domain D
//        --username U --password P [--resource R] [--peer JID] [--hold S]
//        [--timeout S]
//
// Logs in (the mechanism xmpp.js picks: SCRAM-SHA-1 before PLAIN), sends
// presence and, with --peer, a message to PEER (an echo bot) and waits for
// "echo: <body>"; stays online --hold seconds; then xmpp.stop() (our <close/>, the server's <close/>,
// the close frame). Prints MECH=, JID=, SECURED=, ECHO=ok, CLOSE_CODE=,
// RESULT=ok|failure|error; exit 0, 1 (SASL failure) or 2.
import { client, xml } from "@xmpp/client";
import { WebSocket as WS } from "ws";

const opt = { timeout: 15, resource: "xmppjs-ws" };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (["--service", "--domain", "--username", "--password", "--resource", "--peer", "--hold", "--timeout"].includes(a) &&
      i + 1 < args.length) opt[a.slice(2)] = args[++i];
  else { console.error(`unknown argument ${a}`); process.exit(2); }
}

const st = { mech: "", jid: "", secured: false, echo: false, closeCode: "", condition: "" };
globalThis.WebSocket = class extends WS {
  constructor(url, protocols) {
    super(url, protocols);
    this.on("close", (code) => { st.closeCode = String(code); });
    if (process.env.TRACE) {
      this.on("message", (d) => console.error(`S->C ${d}`));
      const send = this.send.bind(this);
      this.send = (d, ...r) => { console.error(`C->S ${d}`); return send(d, ...r); };
    }
  }
};

let finished = false;
function finish(rc, why) {
  if (finished) return;
  finished = true;
  if (why) console.error(why);
  const lines = [];
  if (st.mech) lines.push(`MECH=${st.mech}`);
  if (st.condition) lines.push(`CONDITION=${st.condition}`);
  if (st.jid) lines.push(`JID=${st.jid}`, `SECURED=${st.secured ? 1 : 0}`);
  if (st.echo) lines.push("ECHO=ok");
  if (st.closeCode) lines.push(`CLOSE_CODE=${st.closeCode}`);
  lines.push(`RESULT=${["ok", "failure", "error"][rc]}`);
  process.stdout.write(lines.join("\n") + "\n", () => process.exit(rc));
}

const xmpp = client({ service: opt.service, domain: opt.domain, username: opt.username,
                      password: opt.password, resource: opt.resource });
xmpp.reconnect.stop();
xmpp.on("send", (el) => { if (el.name === "auth") st.mech = el.attrs.mechanism; });
xmpp.on("error", (err) => {
  if (err?.name === "SASLError") { st.condition = err.condition; finish(1, `SASL failure: ${err.condition}`); }
  else finish(2, `error: ${err?.message ?? err}`);
});
const token = `ws-${process.pid}-${Date.now()}`;
async function done() {
  if (opt.hold) {
    console.log("ONLINE=1");
    await new Promise((r) => setTimeout(r, Number(opt.hold) * 1000));
  }
  await xmpp.stop();
  // the close frame's code comes with the socket's close event
  for (let i = 0; i < 50 && !st.closeCode; i++) await new Promise((r) => setTimeout(r, 20));
  finish(0);
}
xmpp.on("stanza", (s) => {
  if (s.is("message") && s.getChildText("body") === `echo: ${token}`) {
    st.echo = true;
    done().catch((e) => finish(2, `stop: ${e.message}`));
  }
});
xmpp.on("online", async (address) => {
  st.jid = address.toString();
  st.secured = xmpp.isSecure();
  await xmpp.send(xml("presence"));
  if (opt.peer) await xmpp.send(xml("message", { to: opt.peer, type: "chat" }, xml("body", {}, token)));
  else await done();
});
setTimeout(() => finish(2, "timeout"), Number(opt.timeout) * 1000);
xmpp.start().catch((e) => {
  if (e?.name === "SASLError") { st.condition = e.condition; finish(1, `SASL failure: ${e.condition}`); }
  else finish(2, `start: ${e?.message ?? e}`);
});
