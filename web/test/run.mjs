// SPDX-License-Identifier: Apache-2.0
//
// Runs web/test/index.html in headless Chromium, once per case, and checks what the
// stand-in ad SDKs collected. Node's standard library only.
//
//   node web/test/run.mjs [--chromium PATH]
//
// With UID2D_BUS (a D-Bus address where uid2d runs) and UID2CTL (the uid2ctl binary)
// in the environment it also runs the second level: the page's bridge is an HTTP
// endpoint of this server that runs `uid2ctl --bus $UID2D_BUS token|status`, so the
// token comes from a real uid2d. scripts/test-web.sh --with-daemon sets that up.
//
// Prints one line per check and, last, "N passed, N failed"; exits 1 on a failure.

import { createServer } from 'node:http';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const webRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const chromiumAt = argv.indexOf('--chromium');
const chromium = chromiumAt >= 0 ? argv[chromiumAt + 1] : process.env.CHROMIUM || 'chromium';
const bus = process.env.UID2D_BUS;
const uid2ctl = process.env.UID2CTL;

function ctl(...args) {
  return new Promise((ok, fail) => {
    execFile(uid2ctl, ['--bus', bus, ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) fail(new Error(`uid2ctl ${args.join(' ')}: ${stderr || err.message}`));
      else ok(stdout.replace(/\n$/, ''));
    });
  });
}

// Serves web/ (the module and the test page) and, for the second level, the bridge.
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript' };
const server = createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  if (path === '/bridge/token' || path === '/bridge/status') {
    if (!bus) { res.writeHead(404).end('no daemon'); return; }
    try {
      const out = await ctl(path.endsWith('token') ? 'token' : 'status');
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(out);
    } catch (err) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end(err.message);
    }
    return;
  }
  const file = resolve(webRoot, '.' + path);
  if (!file.startsWith(webRoot + sep) || !statSync(file, { throwIfNoEntry: false })?.isFile()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': types[extname(file)] || 'application/octet-stream' });
  res.end(readFileSync(file));
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const base = `http://127.0.0.1:${server.address().port}/test/index.html`;

// One page load in a fresh profile; returns the page's #result JSON.
function runPage(query) {
  const profile = mkdtempSync(join(tmpdir(), 'uid2-web-chromium-'));
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${profile}`,
    // Lets the page's timers and promises finish before the DOM is dumped; virtual
    // time waits while the bridge's fetches are in flight.
    '--virtual-time-budget=10000',
    '--dump-dom', `${base}?${new URLSearchParams(query)}`,
  ];
  return new Promise((ok, fail) => {
    const child = spawn(chromium, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      const m = out.match(/<pre id="result">([^<]*)<\/pre>/);
      if (!m || !m[1]) {
        fail(new Error(`no result (chromium exit ${code}): ${err.split('\n').slice(-3).join(' | ')}`));
        return;
      }
      const text = m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
      ok(JSON.parse(text));
    });
  });
}

let passed = 0;
let failed = 0;
function check(name, cond, detail) {
  if (cond) { passed++; console.log(`ok - ${name}`); }
  else { failed++; console.log(`not ok - ${name}: ${detail}`); }
}
// Every page must run to its end without an exception of its own.
function ranCleanly(name, r) {
  check(`${name}: the page ran without error`, !r.pageError, r.pageError);
  return r;
}
const one = (r) => (r.providers && r.providers.length === 1 ? r.providers[0] : {});

// A token as the operator issues them: Base64 with +, / and =, which a bridge or a
// URL must pass through untouched.
const TOKEN = 'AgAAAAPFR0zA5ogv/yaAPiUsAdZPsfqS8+mpNg==';

const cases = [
  ['token, registered before GPT loads', { token: TOKEN }, (r) => {
    const p = one(r);
    check('googletag did not exist before registering', r.googletagBefore === 'undefined', r.googletagBefore);
    check('the queue was a plain array until GPT loaded', r.queueIsArray === true, r.queueIsArray);
    check('GPT collected exactly one provider', r.providers?.length === 1, JSON.stringify(r.providers));
    check("its id is 'uidapi.com'", p.id === 'uidapi.com', p.id);
    check('the collected value equals the token', p.outcome === 'resolved' && p.value === TOKEN, JSON.stringify(p));
  }],
  ['token, registered after GPT loaded', { token: TOKEN, order: 'after' }, (r) => {
    const p = one(r);
    check('collected at once from the loaded GPT', p.id === 'uidapi.com' && p.value === TOKEN, JSON.stringify(r.providers));
  }],
  ['no token', { token: '', status: 'no_identity' }, (r) => {
    const p = one(r);
    check('the collector rejected (nothing sent)', p.outcome === 'rejected', JSON.stringify(p));
    check('it never resolved with an empty string', p.value === undefined, JSON.stringify(p.value));
    check('the rejection says why (status no_identity)', p.error === 'NoUid2TokenError' && p.status === 'no_identity', JSON.stringify(p));
  }],
  ['no token, no getStatus', { token: '' }, (r) => {
    const p = one(r);
    check('the collector rejected without a status', p.outcome === 'rejected' && p.status === undefined, JSON.stringify(p));
  }],
  ['EUID', { token: TOKEN, source: 'euid.eu' }, (r) => {
    const p = one(r);
    check("the provider id is 'euid.eu'", p.id === 'euid.eu' && r.returnedId === 'euid.eu', JSON.stringify(p));
    check('the collected value equals the token', p.value === TOKEN, JSON.stringify(p));
  }],
  ['unknown source', { token: TOKEN, source: 'example.com' }, (r) => {
    check('registering throws a TypeError', /^TypeError/.test(r.registerError || ''), r.registerError);
    check('nothing was registered, googletag untouched', r.googletagAfter === 'undefined' && r.providers?.length === 0,
      `${r.googletagAfter} ${JSON.stringify(r.providers)} ${r.pageError || ''}`);
  }],
  ['registered twice, and both sources', { token: TOKEN, twice: '1' }, (r) => {
    const ids = (r.providers || []).map((p) => p.id).sort().join(',');
    check('a second registration of a source returns the first provider', r.sameObject === true, r.sameObject);
    check('one provider per source', ids === 'euid.eu,uidapi.com', ids);
  }],
  ['the bridge fails', { fail: '1' }, (r) => {
    const p = one(r);
    check("the bridge's error rejects the collector", p.outcome === 'rejected' && /AccessDenied/.test(p.message), JSON.stringify(p));
  }],
  ['IMA without GPT', { token: TOKEN, order: 'ima' }, (r) => {
    const p = one(r);
    check('the queue stays an array for IMA', r.queueIsArray === true, r.queueIsArray);
    check('the IMA AdsLoader collected the token', p.id === 'uidapi.com' && p.value === TOKEN, JSON.stringify(p));
  }],
  ['clearing the cache', { token: TOKEN, clear: '1' }, (r) => {
    check('GPT clearAllCache: once queued before load, once after', r.clears?.gpt === 2, JSON.stringify(r.clears));
    check('IMA clearAllCache once it is loaded', r.clears?.ima === 1, JSON.stringify(r.clears));
  }],
];

// Second level: a real uid2d behind an HTTP stand-in for the OEM bridge.
const now = Date.now();
const identity = {
  advertising_token: TOKEN,
  refresh_token: 'RefreshTokenForTheWebTest',
  identity_expires: now + 3_600_000,
  refresh_from: now + 3_000_000,
  refresh_expires: now + 86_400_000,
  refresh_response_key: Buffer.alloc(32, 7).toString('base64'),
};
const daemonCases = [
  ['uid2d: an identity is set', async () => {
    await ctl('limit-ad-tracking', 'off');
    await ctl('reset');
    const dir = mkdtempSync(join(tmpdir(), 'uid2-web-id-'));
    try {
      writeFileSync(join(dir, 'identity.json'), JSON.stringify(identity));
      await ctl('set', join(dir, 'identity.json'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, (r) => {
    const p = one(r);
    check('the token from uid2d reached the ad SDK', p.id === 'uidapi.com' && p.value === TOKEN, JSON.stringify(p));
  }],
  ['uid2d: limit ad tracking on', () => ctl('limit-ad-tracking', 'on'), (r) => {
    const p = one(r);
    check('no token: rejected, status still established', p.outcome === 'rejected' && p.status === 'established', JSON.stringify(p));
  }],
  ['uid2d: identity reset', async () => {
    await ctl('limit-ad-tracking', 'off');
    await ctl('reset');
  }, (r) => {
    const p = one(r);
    check('no token: rejected, status no_identity', p.outcome === 'rejected' && p.status === 'no_identity', JSON.stringify(p));
  }],
];

try {
  for (const [name, query, verify] of cases) {
    console.log(`# ${name}`);
    try { verify(await ranCleanly(name, await runPage(query))); } catch (err) { check(name, false, err.message); }
  }
  if (bus && uid2ctl) {
    for (const [name, prepare, verify] of daemonCases) {
      console.log(`# ${name}`);
      try {
        await prepare();
        verify(await ranCleanly(name, await runPage({ bridge: 'http' })));
      } catch (err) { check(name, false, err.message); }
    }
  } else {
    console.log('# uid2d level skipped (UID2D_BUS and UID2CTL not set)');
  }
} finally {
  server.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
