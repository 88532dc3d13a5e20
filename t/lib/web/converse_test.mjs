// converse_test.mjs: Converse.js 14 in Debian's headless chromium, driven by
// puppeteer-core (no browser download), for t/e2e-websocket-browser.t.
//
//   node converse_test.mjs OUTDIR
//   env PAGE (http://127.0.0.1:N/converse.html), WS (wss://...), JID, PW,
//       PEER (an echo bot's JID), SPKI (base64 SHA-256 of the server
//       certificate's key: chromium trusts that key only,
//       --ignore-certificate-errors-spki-list), DISCOVER=1 (no websocket_url:
//       XEP-0156 host-meta from https://DOMAIN/, mapped to WS's host:port)
//
// Logs in, opens a chat with PEER, types a message and presses Enter, waits
// for "echo: <message>" in the DOM, logs out. Prints LOGGED_IN=1, SENT=,
// ECHO=ok, LOGGED_OUT=1, RESULT=ok|error; on failure a screenshot
// OUTDIR/failed.png; always the WebSocket frames (CDP) in OUTDIR/ws.json
// and the page's console in OUTDIR/console.log.
import puppeteer from 'puppeteer-core';
import fs from 'node:fs';

const out = process.argv[2] || '.';
const { PAGE, WS, JID, PW, PEER, SPKI } = process.env;
const t0 = Date.now(); const ms = () => `${Date.now() - t0} ms`;
const wsu = new URL(WS);
const domain = JID.split('@')[1];
const args = ['--no-sandbox', '--user-data-dir=' + fs.mkdtempSync(out + '/profile-'),
              '--ignore-certificate-errors-spki-list=' + SPKI];
if (process.env.DISCOVER) args.push(`--host-resolver-rules=MAP ${domain}:443 ${wsu.host}`);
const st = [];
let rc = 1, page, browser;
const frames = [];
const log = (line) => fs.appendFileSync(`${out}/console.log`, line + '\n');
const timer = setTimeout(() => { console.log('TIMEOUT=1'); process.exit(2); }, 80000);
try {
  browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true, args,
                                     defaultViewport: { width: 1200, height: 800 }, timeout: 30000 });
  log(`browser ${await browser.version()} up after ${ms()}`);
  page = await browser.newPage();
  // hermetic: loopback and the domain only (WebSockets are not intercepted)
  await page.setRequestInterception(true);
  const local = new RegExp(`^(https?://(127\\.0\\.0\\.1|\\[::1\\]|${domain.replace(/\./g, '\\.')})[:/]|data:|blob:)`);
  page.on('request', (r) => (local.test(r.url()) ? r.continue() : r.abort()));
  page.on('console', (m) => log(`[${m.type()}] ${m.text()}`));
  page.on('requestfailed', (r) => log(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
  page.on('pageerror', (e) => log(`[pageerror] ${e.message}`));
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  for (const e of ['webSocketCreated', 'webSocketHandshakeResponseReceived', 'webSocketFrameSent',
                   'webSocketFrameReceived', 'webSocketFrameError', 'webSocketClosed'])
    cdp.on('Network.' + e, (ev) => frames.push({ t: Date.now() - t0, kind: e, ev }));

  const url = `${PAGE}?jid=${encodeURIComponent(JID)}&pw=${encodeURIComponent(PW)}&ws=${encodeURIComponent(WS)}` +
    (process.env.DISCOVER ? '&discover=1' : '');
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => window.__connected, { timeout: Number(process.env.LOGIN_MS || 30000) });
  st.push('LOGGED_IN=1');
  log(`logged in after ${ms()}`);
  // a plain value back: returning the ChatBox hangs evaluate()
  await page.evaluate(async (peer) => { await window.__c.api.chats.open(peer); return true; }, PEER);
  const box = 'converse-chat textarea.chat-textarea';
  await page.waitForSelector(box, { visible: true, timeout: 15000 });
  const body = 'hello from converse ' + Date.now();
  await page.type(box, body);
  await page.keyboard.press('Enter');
  st.push(`SENT=${body}`);
  await page.waitForFunction((b) => [...document.querySelectorAll('.chat-msg__text')]
    .some((e) => e.textContent.includes('echo: ' + b)), { timeout: 15000 }, body);
  st.push('ECHO=ok');
  await page.screenshot({ path: `${out}/chat.png` });
  await page.evaluate(() => window.__c.api.user.logout());
  await page.waitForFunction(() => window.__disconnected, { timeout: 15000 });
  st.push('LOGGED_OUT=1');
  rc = 0;
} catch (e) {
  console.error(`failed after ${ms()}: ${e.message}`);
  await page?.screenshot({ path: `${out}/failed.png` }).catch(() => {});
} finally {
  fs.writeFileSync(`${out}/ws.json`, JSON.stringify(frames, null, 1));
  await browser?.close().catch(() => {});
}
clearTimeout(timer);
st.push(`RESULT=${rc ? 'error' : 'ok'}`);
process.stdout.write(st.join('\n') + '\n', () => process.exit(rc));
