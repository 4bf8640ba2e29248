// A real browser against `idtoken proxy`: Debian's headless Chromium,
// driven by playwright-core, loads pages from another site on loopback
// that try to use the proxy, and pages that are the user's own.
//
//   node interop/browser/proxy_guard.mjs /path/to/idtoken
//
// Everything listens on 127.0.0.1: `idtoken emulator` (the metadata server
// the proxy mints its tokens from), an upstream that records what reaches
// it, a server for the attacker's pages, and `idtoken proxy` to the
// upstream. Chromium maps evil.test and rebind.test to 127.0.0.1, so the
// attacker's pages come from a foreign name (the proxy trusts pages from
// localhost and loopback addresses as this machine's own).
//
// Before any token, each refused case must get its 403 from the proxy's
// guard. The proxy asks for its first token as it starts; the emulator
// refuses that request with a 403 (`--fail`), so the proxy starts with no
// token and says so. The refused cases then run with no token in
// the proxy: one that got as far as asking for a token would add to the
// emulator's count of identity requests (and get a 5xx, not the guard's
// 403, or a token and reach the upstream). After the refused cases the
// count is what the start-up left, and the upstream has had 0 hits. (A
// cross-site form post comes last: the tab then shows the proxy's 403 and
// the browser asks the proxy for /favicon.ico, same-origin and admitted.)
// Then a top-level navigation from the other site and the user's own
// pages get through with one token, minted on demand, that the upstream
// verifies. Nothing here depends on how long a case takes.
//
// Prints one line per case and closes with `browser: N passed, N failed`
//; exits 1 on any failure. Every
// wait is bounded; every process it starts is ended on the way out.

import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const BIN = process.argv[2];
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// The emulator refuses the proxy's start-up token request once, with a
// status the library does not retry (403), so the start-up fails after
// one attempt and the next request is answered.
const START_UP_ATTEMPTS = 1;
const WAIT_MS = 10_000; // one case, at most
const RUN_MS = 180_000; // the whole run, at most

if (!BIN || !fs.existsSync(BIN)) {
  console.error(`usage: node proxy_guard.mjs /path/to/idtoken (got ${BIN})`);
  process.exit(2);
}

// ---- processes and cleanup ------------------------------------------------

const children = [];
const servers = [];
let browser;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'idtoken-browser-'));

function cleanup() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    console.error(`browser: stopped by ${sig}`);
    process.exit(1);
  });
}
// Counted here so that a setup step that fails still closes with the line.
let passed = 0;
let failed = 0;
process.on('uncaughtException', (e) => {
  console.error(`browser: ${e.stack ?? e}`);
  console.log(`browser: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
const deadline = setTimeout(() => {
  console.error(`browser: the whole run took longer than ${RUN_MS / 1000} s; giving up`);
  console.log(`browser: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, RUN_MS);
deadline.unref();

/** Starts `idtoken ARGS`; its stdout and stderr are collected as text. */
function idtoken(args, env) {
  const child = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = { stdout: '', stderr: '', child };
  child.stdout.on('data', (d) => (out.stdout += d));
  child.stderr.on('data', (d) => (out.stderr += d));
  return out;
}

async function stop(out) {
  const { child } = out;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT'); // both take Ctrl-C as their way out
  const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(t);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or an error after `ms`. */
function bounded(what, promise, ms = WAIT_MS) {
  let t;
  const late = new Promise((_, j) => {
    t = setTimeout(() => j(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(t));
}

/** What the page's script left in `window.result` (a promise, awaited). */
const pageResult = async (page) =>
  bounded('the page\'s result', page.evaluate(() => window.result));

/** Polls `fn` every 50 ms until it returns something truthy. */
async function waitFor(what, fn, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

async function listen(handler) {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise((r, j) => server.listen(0, '127.0.0.1', r).once('error', j));
  return server.address().port;
}

/** A child's environment: no credentials of the user's, only these. */
function env(extra) {
  const e = { PATH: process.env.PATH, HOME: path.join(tmp, 'home'), RUST_BACKTRACE: '1' };
  fs.mkdirSync(e.HOME, { recursive: true });
  return { ...e, ...extra };
}

// ---- the upstream: records every request that reaches it -------------------

const hits = [];
function claimsOf(authorization) {
  const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
  if (!token) return { token: null, claims: null };
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
    return { token, claims };
  } catch {
    return { token, claims: null };
  }
}

const APP_PAGE = `<!doctype html><title>the service</title>
<script>
  // The user's own page, served by the service through the proxy: its
  // requests are same-origin.
  window.result = fetch('/case/same-origin', { method: 'POST', body: 'x=1' })
    .then((r) => r.status, (e) => String(e));
</script>`;

const upstreamPort = await listen((req, res) => {
  const { token, claims } = claimsOf(req.headers.authorization);
  hits.push({
    method: req.method,
    path: req.url,
    token,
    claims,
    site: req.headers['sec-fetch-site'],
    dest: req.headers['sec-fetch-dest'],
  });
  req.resume();
  if (req.url === '/app') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(APP_PAGE);
  } else {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ path: req.url, aud: claims?.aud ?? null }));
  }
});
const UPSTREAM = `http://127.0.0.1:${upstreamPort}`;
const hitsFor = (p) => hits.filter((h) => h.path.split('?')[0] === p);

// ---- the emulator and the proxy --------------------------------------------

const emu = idtoken(
  ['emulator', '--listen', '127.0.0.1:0', '--credentials-dir', path.join(tmp, 'emu'),
    '--fail', `metadata_identity=403x${START_UP_ATTEMPTS}`],
  env({}),
);
const exports = await waitFor('the emulator to print its export lines', () => {
  const m = Object.fromEntries(
    [...emu.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((x) => [x[1], x[2]]),
  );
  return m.IDTOKEN_IAP_JWKS_URL ? m : null;
}, 30_000);
const EMULATOR = `http://${exports.GCE_METADATA_HOST}`;
async function identityRequests() {
  const r = await fetch(`${EMULATOR}/_emulator/counters`, { signal: AbortSignal.timeout(5_000) });
  const counters = await r.json();
  if (!('metadata_identity' in counters)) throw new Error(`no metadata_identity in ${JSON.stringify(counters)}`);
  return counters.metadata_identity;
}

// The attacker's pages: one per case, by name; PROXY is filled in below.
let PROXY_PORT;
const attackerPages = {};
const attackerPort = await listen((req, res) => {
  const name = req.url.replace(/^\/case\//, '').split('?')[0];
  const page = attackerPages[name];
  res.writeHead(page ? 200 : 404, { 'content-type': 'text/html' });
  res.end(page ? page() : 'no such page');
});

browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true, // playwright also gives it a fresh, temporary --user-data-dir
  timeout: 30_000,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--host-resolver-rules=MAP evil.test 127.0.0.1, MAP rebind.test 127.0.0.1',
    // Chromium's own Local Network Access check would stop the rebound
    // page (its document came from no loopback address) before the proxy
    // sees it; other browsers have no such check. The proxy is under test.
    '--disable-features=LocalNetworkAccessChecks',
  ],
});
const context = await browser.newContext();
context.setDefaultTimeout(WAIT_MS);
// What the browser itself saw, per proxied path.
const seenByBrowser = new Map();
context.on('response', (r) => {
  const u = new URL(r.url());
  if (u.port === String(PROXY_PORT)) seenByBrowser.set(u.pathname, r.status());
});

const proxy = idtoken(
  ['proxy', '--listen', '127.0.0.1:0', '--target', UPSTREAM],
  env({ GCE_METADATA_HOST: exports.GCE_METADATA_HOST }),
);
const proxyUrl = await waitFor('the proxy to print its URL', () =>
  /^(http:\/\/127\.0\.0\.1:(\d+))\s*$/m.exec(proxy.stdout), 30_000);
const PROXY = proxyUrl[1];
PROXY_PORT = proxyUrl[2];

// The proxy's start-up mint has failed: it has no token.
await waitFor('the proxy to say its start-up token request failed',
  () => /cannot get an ID token yet/.test(proxy.stderr), 60_000);
const startUpRequests = await identityRequests();

/** The proxy's access-log line for a path: method, status, milliseconds. */
function accessLog(p) {
  const re = new RegExp(`^([A-Z]+) ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:\\?\\S*)? (\\d{3}) ([\\d.]+)ms`, 'm');
  const m = re.exec(proxy.stderr);
  return m && { method: m[1], status: Number(m[2]), ms: Number(m[3]) };
}

// ---- cases ------------------------------------------------------------------

function report(ok, name, detail) {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
}

/** Loads `url` in a new tab, runs `then(page)`, closes the tab. */
async function visit(url, then = async () => {}) {
  const page = await context.newPage();
  try {
    await page.goto(url, { waitUntil: 'load' });
    return await then(page);
  } finally {
    await page.close();
  }
}

const evil = (name) => `http://evil.test:${attackerPort}/case/${name}`;

/** A refused case: the attacker page `name` makes the browser send one
 * request to the proxy at /case/NAME; it must get the guard's 403, ask
 * for no token and reach no one. With `tabAtProxy` the tab ends on the
 * proxy's 403 page, and the browser then asks the proxy for /favicon.ico
 * on its own: a same-origin request, admitted with a token like any link
 * to the service, so token requests are not counted. */
async function refused(name, html, { url = evil(name), then, tabAtProxy = false } = {}) {
  const p = `/case/${name}`;
  if (html) attackerPages[name] = () => html(`${PROXY}${p}`);
  let result;
  try {
    result = await visit(url, then);
    const line = await waitFor(`the proxy to answer ${p}`, () => accessLog(p));
    const minted = (await identityRequests()) - startUpRequests;
    const ok = line.status === 403 && hitsFor(p).length === 0 && (tabAtProxy || minted === 0);
    const browserSaw = seenByBrowser.has(p) ? `, browser saw ${seenByBrowser.get(p)}` : '';
    report(ok, name, `${line.method} ${p} -> ${line.status} in ${line.ms} ms${browserSaw}`
      + `${result ? `, ${result}` : ''}; upstream hits ${hitsFor(p).length}`
      + `${tabAtProxy ? '' : `, token requests ${minted}`}`);
  } catch (e) {
    report(false, name, `${e.message}${result ? ` (${result})` : ''}`);
  }
}

const pageGot = async (page) => `page got ${await pageResult(page)}`;
await refused('fetch-no-cors-post', (u) =>
  `<script>window.result = fetch(${JSON.stringify(u)}, { method: 'POST', mode: 'no-cors', body: 'x=1' })
     .then(r => r.type + ' ' + r.status, e => e.name)</script>`,
{ then: pageGot });
await refused('fetch-get', (u) =>
  `<script>window.result = fetch(${JSON.stringify(u)}).then(r => r.status, e => e.name)</script>`,
{ then: pageGot });
await refused('iframe', (u) => `<iframe src=${JSON.stringify(u)}></iframe>`);
await refused('image', (u) => `<img src=${JSON.stringify(u)}>`);
// Cross-site WebSocket: the page could read what comes back. Chromium
// sends no Sec-Fetch-* with it, only Origin.
await refused('websocket', (u) =>
  `<script>window.result = new Promise(r => {
     const ws = new WebSocket(${JSON.stringify(u.replace('http:', 'ws:'))});
     ws.onopen = () => r('open'); ws.onerror = () => r('error');
   })</script>`,
{ then: pageGot });
// DNS rebinding, two ways: the page came from rebind.test's server
// (served here by playwright, as the attacker's DNS would) and now its
// name points at 127.0.0.1, so its same-origin fetch reaches the proxy and
// it could read the answer; and a plain load of http://rebind.test:PORT/.
{
  const page = `http://rebind.test:${PROXY_PORT}/rebound-page`;
  await context.route(page, (route) => route.fulfill({
    contentType: 'text/html',
    body: `<script>window.result = fetch('/case/rebind-fetch')
      .then(async r => r.status + ' ' + (await r.text()).replace(/\\s+/g, ' ').slice(0, 70), e => String(e))</script>`,
  }));
  await refused('rebind-fetch', null, {
    url: page,
    then: async (p) => `page read "${await pageResult(p)}..."`,
  });
  await context.unroute(page);
}
await refused('rebind-navigation', null, { url: `http://rebind.test:${PROXY_PORT}/case/rebind-navigation` });
// Addresses that reach a proxy on 127.0.0.1 but to which Chromium sends no
// Fetch Metadata (it does not take them as loopback), nor Origin on a GET:
// the guard refuses them by the Host they name.
const via = (u, host) => u.replace(PROXY, `http://${host}:${PROXY_PORT}`);
await refused('iframe-ipv4-mapped', (u) =>
  `<iframe src=${JSON.stringify(via(u, '[::ffff:127.0.0.1]'))}></iframe>`);
await refused('image-0.0.0.0', (u) => `<img src=${JSON.stringify(via(u, '0.0.0.0'))}>`);
await refused('fetch-get-0.0.0.0', (u) =>
  `<script>window.result = fetch(${JSON.stringify(via(u, '0.0.0.0'))}, { mode: 'no-cors' })
     .then(r => r.type, e => e.name)</script>`,
{ then: pageGot });
// A speculation-rules prefetch from another site arrives looking like the
// user's own navigation (Sec-Fetch-Site: none) but with Sec-Purpose.
await refused('prefetch', (u) =>
  `<script type="speculationrules">${JSON.stringify({ prefetch: [{ source: 'list', urls: [u] }] })}</script>`,
{ then: async () => { await waitFor('the prefetch', () => accessLog('/case/prefetch')); } });

// Nothing was minted for them and nothing reached the upstream: the
// start-up request's failed attempts are still the only ones.
{
  const n = await identityRequests();
  report(startUpRequests === START_UP_ATTEMPTS && n === startUpRequests && hits.length === 0,
    'refused-before-any-token',
    `metadata identity requests ${n} (the proxy's failed start-up attempts: ${startUpRequests} `
    + `of the ${START_UP_ATTEMPTS} the emulator refused), upstream hits ${hits.length}`);
}

// A form posted across sites: a top-level navigation the guard refuses
// (not GET or HEAD). Last of the refused cases, because of the favicon.
await refused('form-post', (u) =>
  `<form method="POST" action=${JSON.stringify(u)}><input name="x" value="1"></form>
   <script>document.forms[0].submit()</script>`,
{ then: async (page) => {
  await page.waitForURL(`${PROXY}/**`);
  return `tab shows ${page.url().replace(PROXY, 'PROXY')}`;
}, tabAtProxy: true });

// ---- what still works ---------------------------------------------------------

/** An admitted case: the request reached the upstream with a token for it. */
function admitted(name, p, extra = '') {
  const line = accessLog(p);
  const hit = hitsFor(p)[0];
  const ok = line?.status === 200 && hit?.claims?.aud === UPSTREAM;
  report(ok, name, `${line ? `${line.method} ${p} -> ${line.status}` : `no log line for ${p}`}; `
    + `upstream saw ${hit ? `a token for ${hit.claims?.aud} (Sec-Fetch-Site ${hit.site}, Dest ${hit.dest})` : 'nothing'}${extra}`);
}

// A link to the proxy on the other site, followed: a top-level navigation.
{
  const name = 'top-level-navigation';
  const p = `/case/${name}`;
  attackerPages[name] = () => `<a id="go" href="${PROXY}${p}">open the service</a>`;
  try {
    await visit(evil(name), async (page) => {
      await page.click('#go', { noWaitAfter: true });
      // The proxy has no token yet: this request (or the form post's
      // favicon just before) mints the first.
      await waitFor(`the proxy to answer ${p}`, () => accessLog(p));
    });
  } catch (e) {
    report(false, name, e.message);
  }
  if (accessLog(p)) admitted(name, p);
}

// The service's own page, opened by the user, and its same-origin POST.
try {
  const status = await visit(`${PROXY}/app`, pageResult);
  admitted('same-origin-fetch', '/case/same-origin', `; page read ${status}`);
} catch (e) {
  report(false, 'same-origin-fetch', e.message);
}

// The user's own page on localhost (a dev server on another port) posting
// to the proxy by the same name: same-site.
{
  const name = 'own-localhost-page';
  const p = `/case/${name}`;
  attackerPages[name] = () => `<script>window.result = fetch('http://localhost:${PROXY_PORT}${p}',
    { method: 'POST', mode: 'no-cors', body: 'x=1' }).then(r => r.type, e => e.name)</script>`;
  try {
    await visit(`http://localhost:${attackerPort}/case/${name}`, pageGot);
    await waitFor(`the proxy to answer ${p}`, () => accessLog(p));
    admitted(name, p);
  } catch (e) {
    report(false, name, e.message);
  }
}

// One token served them all, and it verifies for the upstream.
{
  const n = await identityRequests();
  const token = hits.find((h) => h.token)?.token;
  const v = token
    ? spawnSync(BIN, ['verify', '-', '--audience', UPSTREAM, '--jwks-url', exports.IDTOKEN_JWKS_URL],
      { input: token, timeout: 20_000, encoding: 'utf8', env: env({}) })
    : { status: 'no token', stderr: '' };
  report(n === startUpRequests + 1 && v.status === 0, 'token-verifies',
    `metadata identity requests ${n} (${startUpRequests} at start-up); idtoken verify --audience ${UPSTREAM}: exit ${v.status}${v.status ? ` ${v.stderr.trim()}` : ''}`);
}

// ---- the end -------------------------------------------------------------------

await browser.close();
await stop(proxy);
await stop(emu);
for (const s of servers) s.close();
if (failed) {
  console.log('--- proxy stderr ---');
  console.log(proxy.stderr.replace(/eyJ[\w.-]+/g, '[token]'));
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
