// xmppjs_ws.mjs: xmpp.js (@xmpp/client 0.14) over XMPP-over-WebSocket
// (RFC 7395) for t/e2e-websocket.t. Node 20 has no global WebSocket: the
// `ws` package stands in (a subclass, to see the close code). Trust the
// sandbox's CA with NODE_EXTRA_CA_CERTS.
//
//   node xmppjs_ws.mjs --service wss://HOST:PORT/xmpp-websocket --domain D
//        --username U --password P [--resource R] [--peer JID] [--hold S]
//        [--timeout S] [--local-address A] [--header 'Name: value']
//
// Logs in (the mechanism xmpp.js picks: SCRAM-SHA-1 before PLAIN), sends
// presence and, with --peer, a message to PEER (an echo bot) and waits for
// "echo: <body>"; stays online --hold seconds; then xmpp.stop() (our <close/>, the server's <close/>,
// the close frame). --local-address binds the client's socket to A (a
// distinct loopback address, for t/e2e-websocket-proxy.t); --header adds a
// header to the Upgrade request (repeatable). Prints MECHS= (the SASL
// mechanisms offered, space-separated), MECH=, JID=, SECURED=, ECHO=ok,
// CLOSE_CODE=, RESULT=ok|failure|error; exit 0, 1 (SASL failure) or 2.
import { client, xml } from "@xmpp/client";
import { WebSocket as WS } from "ws";

const opt = { timeout: 15, resource: "xmppjs-ws" };
const headers = {};
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--header" && i + 1 < args.length) {
    const h = args[++i], c = h.indexOf(":");
    if (c < 1) { console.error(`bad header ${h}`); process.exit(2); }
    headers[h.slice(0, c).trim()] = h.slice(c + 1).trim();
  } else if (["--service", "--domain", "--username", "--password", "--resource", "--peer", "--hold", "--timeout",
       "--local-address"].includes(a) &&
      i + 1 < args.length) opt[a.slice(2)] = args[++i];
  else { console.error(`unknown argument ${a}`); process.exit(2); }
}

const st = { mechs: null, mech: "", jid: "", secured: false, echo: false, closeCode: "", condition: "" };
globalThis.WebSocket = class extends WS {
  constructor(url, protocols) {
    const o = { headers };
    if (opt["local-address"]) o.localAddress = opt["local-address"];
    super(url, protocols, o);
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
  if (st.mechs) lines.push(`MECHS=${st.mechs.join(" ")}`);
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
xmpp.on("nonza", (el) => {
  const m = el.is("features") && el.getChild("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl");
  if (m) st.mechs = m.getChildren("mechanism").map((x) => x.text());
});
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
