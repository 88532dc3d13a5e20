// strophe_ws.mjs: strophe.js 5 over XMPP-over-WebSocket (RFC 7395) in Node,
// for t/e2e-websocket.t (its Node entry installs `ws` and @xmldom/xmldom as
// the browser's WebSocket and DOMParser). Trust the sandbox's CA with
// NODE_EXTRA_CA_CERTS.
//
//   node strophe_ws.mjs --service wss://... --jid J --password P --peer JID
//        [--timeout S]
//
// Logs in, sends presence and a message to PEER (an echo bot), waits for
// "echo: <body>", then ends the stream itself without strophe's disconnect()
// (which reports DISCONNECTED at once, without waiting): a <close/> on the
// socket, and waits for the server's. Strophe recognises the server's
// <close/> only in one exact spelling (it compares the message as a
// string); then, and only then, it hands that very string to rawInput and
// disconnects. Prints CONNECTED=JID, MECH=, ECHO=ok, SERVER_CLOSE=exact
// (the exact string went through rawInput), DISCONNECTED=1, RESULT=ok|error.
import { Strophe, $msg, $pres } from "strophe.js";

const opt = { timeout: 15 };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (["--service", "--jid", "--password", "--peer", "--timeout"].includes(a) && i + 1 < args.length)
    opt[a.slice(2)] = args[++i];
  else { console.error(`unknown argument ${a}`); process.exit(2); }
}
const CLOSE = '<close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />';
const st = { jid: "", mech: "", echo: false, serverClose: "", disconnected: false };
let finished = false;
function finish(rc, why) {
  if (finished) return;
  finished = true;
  if (why) console.error(why);
  const lines = [];
  if (st.jid) lines.push(`CONNECTED=${st.jid}`);
  if (st.mech) lines.push(`MECH=${st.mech}`);
  if (st.echo) lines.push("ECHO=ok");
  if (st.serverClose) lines.push(`SERVER_CLOSE=${st.serverClose}`);
  if (st.disconnected) lines.push("DISCONNECTED=1");
  lines.push(`RESULT=${rc === 0 ? "ok" : "error"}`);
  process.stdout.write(lines.join("\n") + "\n", () => process.exit(rc));
}
Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const conn = new Strophe.Connection(opt.service);
conn.rawInput = (s) => {
  if (process.env.TRACE) console.error(`S->C ${s}`);
  if (s === CLOSE) st.serverClose = "exact";
};
if (process.env.TRACE) conn.rawOutput = (s) => console.error(`C->S ${s}`);
const token = `strophe-${process.pid}-${Date.now()}`;
let closing = false;
setTimeout(() => finish(2, "timeout"), Number(opt.timeout) * 1000);
conn.connect(opt.jid, opt.password, (status, cond) => {
  if (status === Strophe.Status.CONNECTED) {
    st.jid = conn.jid;
    st.mech = conn._sasl_mechanism?.mechname ?? "";
    conn.addHandler((m) => {
      const body = m.getElementsByTagName("body")[0]?.textContent;
      if (body === `echo: ${token}`) {
        st.echo = true;
        closing = true;
        conn._proto.socket.send('<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>');
        return false;
      }
      return true;
    }, null, "message", "chat");
    conn.send($pres());
    conn.send($msg({ to: opt.peer, type: "chat" }).c("body").t(token));
  } else if (status === Strophe.Status.DISCONNECTED) {
    st.disconnected = true;
    finish(closing && st.echo ? 0 : 2, closing ? "" : `disconnected early ${cond || ""}`);
  } else if ([Strophe.Status.CONNFAIL, Strophe.Status.AUTHFAIL, Strophe.Status.ERROR].includes(status)) {
    finish(2, `failed: status ${status} ${cond || ""}`);
  }
});
