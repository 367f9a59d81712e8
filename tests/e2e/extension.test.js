'use strict';
// The browser path end to end: Debian's Chromium (headless, through playwright-core) with the
// unpacked MV3 extension (extension/, fixed ID from the manifest key), its native host, and the
// page SDK (extension/sdk/ukey.js) on a test page.
//
// 1. Mechanics, against a fake native host (a Node script speaking Chrome's framing): content
//    script registered from origins.list, every page request tagged with the origin Chrome
//    reports, the extension's own requests untagged, ids rewritten and mapped back per page,
//    events only to pages that subscribed, DAEMON_UNAVAILABLE when the host dies and a lazy
//    reconnect, page messages of the wrong shape ignored.
// 2. The real thing: a private rig (pcscd + virtual card) and ukeyd with the extension allowed;
//    the page connects through the extension (and, without it, over WSS), lists the certificate,
//    signs (consent + PIN through the scripted pinentry) and checks the signature with the
//    certificate's key, and sees removed/inserted when the card is pulled and put back.
// 3. A public page (https://portal.test, mapped to 127.0.0.1 and declared public with
//    --ip-address-space-overrides): WSS is LOCAL_NETWORK_BLOCKED without the permission, works
//    with it, and the extension works without it.
// 4. Screenshots of the popup (zh-CN and English) and the test page in UK_ARTIFACT_DIR.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Ukeyd, BIN, ROOT, tempDir } = require('../daemon/lib/ukeyd');
const { Rig, rigUnavailable, waitToken, KeysClient, openssl } = require('../daemon/lib/rig');
const { EXT_DIR, EXT_ID, browserMissing, serve: serveOn, trustDaemonCa, launchPersistent, installHost, serviceWorker, screenshot } =
    require('./lib/browser');

const PINENTRY = process.env.UK_PINENTRY_SCRIPT_BIN || path.join(ROOT, 'build/dev/tests/pinentry/uk-pinentry-script');
const missing = browserMissing();

/* ---------- the test page ---------- */

const PAGE = `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>ukeyd SDK test page</title>
<style>body{font:14px "Noto Sans CJK SC",sans-serif;margin:1em}h1{font-size:17px}pre{white-space:pre-wrap;background:#f6f8fa;padding:.5em}
.ok{color:#1a7f37}.err{color:#c62828}</style></head>
<body><h1>ukeyd 测试页 · SDK test page</h1><p>origin: <code id="origin"></code></p>
<p id="state">loading</p><pre id="out"></pre>
<script type="module">
import * as sdk from '/sdk/ukey.js';
window.sdk = sdk;
window.show = (ok, title, obj) => {
    const s = document.getElementById('state');
    s.className = ok ? 'ok' : 'err';
    s.textContent = title;
    document.getElementById('out').textContent = obj === undefined ? '' : JSON.stringify(obj, null, 2);
};
// Events seen by window.ukey (after watch()).
window.seen = [];
window.watch = async () => {
    for (const n of ['inserted', 'removed', 'changed', 'renewal']) await window.ukey.on(n, (p, m) => window.seen.push({ m, p }));
};
// Resolves the first event m seen after index from, or null after 15 s.
window.waitEvent = (m, from) => new Promise((resolve) => {
    const end = Date.now() + 15000;
    const tick = () => {
        const e = window.seen.slice(from).find((x) => x.m === m);
        if (e || Date.now() > end) resolve(e || null); else setTimeout(tick, 20);
    };
    tick();
});
document.getElementById('origin').textContent = location.origin;
document.getElementById('state').textContent = 'SDK loaded';
window.sdkLoaded = true;
</script></body></html>
`;

const SDK_FILE = path.join(EXT_DIR, 'sdk/ukey.js');

function handler(req, res) {
    if (req.url.startsWith('/page')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(PAGE);
    } else if (req.url === '/sdk/ukey.js') {
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
        res.end(fs.readFileSync(SDK_FILE));
    } else {
        res.writeHead(404);
        res.end();
    }
}

// The test page and the SDK over http(s) (tlsOpts {key, cert}) on a free port; resolves the port.
const serve = (t, tlsOpts) => serveOn(t, handler, { tls: tlsOpts });

/* ---------- Chromium ---------- */

let profiles = 0;

function writeWrapper(dir, name, env, argv) {
    const file = path.join(dir, name);
    const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
    const vars = Object.entries(env).map(([k, v]) => `${k}=${q(v)}`).join(' ');
    fs.writeFileSync(file, `#!/bin/sh\nexec env ${vars} ${argv.map(q).join(' ')} "$@"\n`, { mode: 0o755 });
    return file;
}

// Launches Chromium: opts.ext (host wrapper path, or false), lang, args, env (HOME etc.).
// Resolves {ctx, sw, registered}.
async function launch(t, dir, { host = null, lang = 'zh-CN', args = [], env }) {
    const userDir = path.join(dir, `profile-${++profiles}`);
    fs.mkdirSync(userDir, { recursive: true });
    const a = [`--lang=${lang}`, ...args];
    if (host) {
        installHost(userDir, host);
        a.push(`--disable-extensions-except=${EXT_DIR}`, `--load-extension=${EXT_DIR}`);
    }
    const ctx = await launchPersistent(t, userDir, {
        args: a,
        env: { ...env, LANGUAGE: lang.replace('-', '_'), LANG: `${lang.replace('-', '_')}.UTF-8`, LC_ALL: '' },
        locale: lang,
        viewport: { width: 900, height: 700 },
    });
    if (!host) return { ctx };
    const sw = await serviceWorker(ctx, EXT_ID);
    const registered = await sw.evaluate(() => globalThis.ukeydReady);
    return { ctx, sw, registered };
}

async function openPage(ctx, url) {
    const page = await ctx.newPage();
    await page.goto(url);
    await page.waitForFunction(() => window.sdkLoaded === true);
    return page;
}

// connect() in the page; resolves {ok, path, hello} or {ok: false, reason, message, data}.
function pageConnect(page, opts) {
    return page.evaluate(async (o) => {
        try {
            window.ukey = await window.sdk.connect(o);
            window.show(true, `connected via ${window.ukey.path}`, window.ukey.hello);
            return { ok: true, path: window.ukey.path, hello: window.ukey.hello };
        } catch (e) {
            window.show(false, `${e.reason}: ${e.message}`, e.data);
            return { ok: false, reason: e.reason, message: e.message, messages: e.messages, data: e.data };
        }
    }, opts);
}

// ukey.call in the page; resolves {result} or {error: {reason, retriable, code, message}}.
function pageCall(page, method, params, opts) {
    return page.evaluate(async ([m, p, o]) => {
        try {
            return { result: await window.ukey.call(m, p, o) };
        } catch (e) {
            return { error: { reason: e.reason, retriable: e.retriable, code: e.code, message: e.message, data: e.data } };
        }
    }, [method, params, opts]);
}

function readJsonLines(file) {
    if (!fs.existsSync(file)) return [];
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/* ---------- 1. mechanics against a fake native host ---------- */

const FAKE_HOST = String.raw`'use strict';
const fs = require('fs');
const log = (o) => fs.appendFileSync(process.env.FAKE_LOG, JSON.stringify(o) + '\n');
log({ start: process.argv.slice(2), pid: process.pid });
const ORIGINS = JSON.parse(process.env.FAKE_ORIGINS);
const EVENTS = ['token.inserted', 'token.removed', 'token.changed', 'renewal.changed'];
let buf = Buffer.alloc(0);
function send(o) {
    const b = Buffer.from(JSON.stringify(o));
    const h = Buffer.alloc(4);
    h.writeUInt32LE(b.length);
    process.stdout.write(Buffer.concat([h, b]));
}
process.stdin.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4) {
        const n = buf.readUInt32LE(0);
        if (buf.length < 4 + n) break;
        const m = JSON.parse(buf.subarray(4, 4 + n).toString('utf8'));
        buf = buf.subarray(4 + n);
        handle(m);
    }
});
process.stdin.on('end', () => process.exit(0));
const CERT = { key: '9a', subject: 'CN=张三,O=NHSA,C=CN', issuer: 'CN=ukeyd Demo CA,O=NHSA,C=CN', serial: '01',
    not_before: '2026-10-25T01:47:00Z', not_after: '2027-11-24T01:47:00Z', status: 'valid', days_left: 364 };
function handle(m) {
    log({ msg: m });
    const r = (result) => send({ jsonrpc: '2.0', id: m.id, result });
    switch (m.method) {
        case 'system.hello':
            return r({ name: 'ukeyd', protocol: 1, version: '0.1.0-fake', endpoint: 'native-messaging',
                origin: m.origin === undefined ? 'chrome-extension://' + process.argv[2].split('/')[2] : m.origin,
                access: m.origin === undefined ? 'local' : 'allowed' });
        case 'origins.list': return r({ origins: ORIGINS.map((o) => ({ origin: o, access: 'allowed' })) });
        case 'system.subscribe': return r({ events: EVENTS });
        case 'token.list': return r({ tokens: [{ id: 'piv:00000001', reader: 'Virtual PCD 00 00', present: true, driver: 'piv',
            serial: '00000001', label: 'PIV 00000001', pin_retries: 3 }] });
        case 'cert.list': return r({ token: 'piv:00000001', certificates: [CERT, Object.assign({}, CERT, { key: '9c',
            subject: 'CN=李四,O=NHSA,C=CN', status: 'expiring', days_left: 12, not_after: '2026-12-06T01:47:00Z' })] });
        case 'test.echo': return r({ origin: m.origin === undefined ? null : m.origin, params: m.params === undefined ? null : m.params });
        case 'test.emit':
            r({});
            return send({ jsonrpc: '2.0', method: m.params.method, params: m.params.params });
        case 'test.hang': return undefined;
        case 'test.exit': return setTimeout(() => process.exit(0), 20);
        default:
            return send({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'This version of ukeyd does not know this method.',
                data: { reason: 'METHOD_NOT_FOUND', retriable: false, message: { en: 'This version of ukeyd does not know this method.', 'zh-CN': '此版本的 ukeyd 不支持该方法。' } } } });
    }
}
`;

test('extension mechanics against a fake native host', { skip: missing, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukx-');
    const home = path.join(dir, 'home');
    fs.mkdirSync(home, { recursive: true });
    const port = await serve(t);
    const origin = `http://127.0.0.1:${port}`;
    const logFile = path.join(dir, 'fake.log');
    fs.writeFileSync(path.join(dir, 'fake-host.js'), FAKE_HOST);
    const host = writeWrapper(dir, 'host.sh', { FAKE_LOG: logFile, FAKE_ORIGINS: JSON.stringify([origin, 'not an origin']) },
        [process.execPath, path.join(dir, 'fake-host.js')]);
    const { ctx, sw, registered } = await launch(t, dir, { host, env: { HOME: home, PATH: process.env.PATH } });
    const log = () => readJsonLines(logFile);

    await t.test('the content script is registered for the origins of origins.list (valid ones only)', async () => {
        assert.deepEqual(registered, [origin]);
        const scripts = await sw.evaluate(() => chrome.scripting.getRegisteredContentScripts());
        assert.equal(scripts.length, 1);
        assert.deepEqual(scripts[0].matches, [`${origin}/*`]);
        assert.deepEqual(scripts[0].js, ['bridge.js', 'content.js']);
        assert.equal(scripts[0].runAt, 'document_start');
        assert.equal(scripts[0].allFrames, false);
        const starts = log().filter((l) => l.start);
        assert.deepEqual(starts[0].start.slice(0, 1), [`chrome-extension://${EXT_ID}/`], 'Chrome passes the extension origin');
        const own = log().filter((l) => l.msg && l.msg.method === 'origins.list');
        assert.ok(own.length >= 1 && own.every((l) => !('origin' in l.msg)), 'the extension\'s own requests are untagged');
    });

    const page = await openPage(ctx, `${origin}/page`);
    const other = await openPage(ctx, `${origin}/page?second`);

    await t.test('connect() finds the extension; requests carry the origin Chrome reports', async () => {
        const r = await pageConnect(page, { ports: [] });
        assert.equal(r.ok, true, JSON.stringify(r));
        assert.equal(r.path, 'extension');
        assert.equal(r.hello.origin, origin);
        const echo = await pageCall(page, 'test.echo', { origin: 'https://evil.example' });
        assert.deepEqual(echo.result, { origin, params: { origin: 'https://evil.example' } }, 'params cannot set the origin');
        const hellos = log().filter((l) => l.msg && l.msg.method === 'system.hello');
        assert.equal(hellos[hellos.length - 1].msg.origin, origin);
        // Ids on the native port are the extension's own numbers, never the page's.
        const echoed = log().filter((l) => l.msg && l.msg.method === 'test.echo').pop().msg;
        assert.equal(typeof echoed.id, 'number');
        assert.deepEqual(Object.keys(echoed).sort(), ['id', 'jsonrpc', 'method', 'origin', 'params']);
    });

    await t.test('page messages of the wrong shape are ignored; the same page id from two pages is no problem', async () => {
        const before = log().length;
        const answers = await page.evaluate(async () => {
            const got = [];
            const on = (ev) => { if (ev.data && ev.data.ukeyd === 'response') got.push(ev.data.rpc); };
            window.addEventListener('message', on);
            const bad = [
                { ukeyd: 'request', rpc: { jsonrpc: '2.0', id: 'x1', method: 'test.echo', origin: 'https://evil.example' } },
                { ukeyd: 'request', rpc: { jsonrpc: '2.0', method: 'test.echo' } },
                { ukeyd: 'request', rpc: { jsonrpc: '1.0', id: 'x2', method: 'test.echo' } },
                { ukeyd: 'request', rpc: { jsonrpc: '2.0', id: 'x3', method: 'test.echo' }, extra: 1 },
                { ukeyd: 'request', rpc: { jsonrpc: '2.0', id: { a: 1 }, method: 'test.echo' } },
                { ukeyd: 'request', rpc: { jsonrpc: '2.0', id: 'x4', method: 'test.echo', params: 'str' } },
                { ukeyd: 'request', rpc: { jsonrpc: '2.0', id: 1.5, method: 'test.echo' } },
                'just a string',
            ];
            for (const m of bad) window.postMessage(m, location.origin);
            // A good one last: once it is answered, the bad ones were all seen (same queue).
            window.postMessage({ ukeyd: 'request', rpc: { jsonrpc: '2.0', id: 7, method: 'test.echo', params: { n: 1 } } }, location.origin);
            for (let i = 0; i < 200 && !got.length; i++) await new Promise((r) => setTimeout(r, 10));
            window.removeEventListener('message', on);
            return got;
        });
        assert.equal(answers.length, 1, JSON.stringify(answers));
        assert.equal(answers[0].id, 7);
        assert.deepEqual(answers[0].result, { origin, params: { n: 1 } });
        const reached = log().slice(before).filter((l) => l.msg);
        assert.equal(reached.length, 1, 'only the good request reached the host');
        // Two pages, same page-side id, in flight together: each gets its own answer.
        const send = (p, n) => p.evaluate(async (n) => new Promise((resolve) => {
            const on = (ev) => {
                if (ev.data && ev.data.ukeyd === 'response' && ev.data.rpc.id === 42) {
                    window.removeEventListener('message', on);
                    resolve(ev.data.rpc);
                }
            };
            window.addEventListener('message', on);
            window.postMessage({ ukeyd: 'request', rpc: { jsonrpc: '2.0', id: 42, method: 'test.echo', params: { n } } }, location.origin);
        }), n);
        const [a, b] = await Promise.all([send(page, 'a'), send(other, 'b')]);
        assert.deepEqual([a.result.params.n, b.result.params.n], ['a', 'b']);
    });

    await t.test('events reach only the pages that subscribed; unsubscribe is per page', async () => {
        await page.evaluate(() => window.watch());
        const r2 = await pageConnect(other, { ports: [] });
        assert.equal(r2.ok, true);
        const subs = log().filter((l) => l.msg && l.msg.method === 'system.subscribe').map((l) => l.msg);
        assert.ok(subs.some((m) => !('origin' in m)), 'the extension subscribed its session, untagged');
        assert.ok(subs.some((m) => m.origin === origin), 'the page\'s subscribe was forwarded tagged');
        const n = await page.evaluate(() => window.seen.length);
        await pageCall(other, 'test.emit', { method: 'token.inserted', params: { token: { id: 'piv:1' } } });
        const ev = await page.evaluate((n) => window.waitEvent('token.inserted', n), n);
        assert.ok(ev, 'the event reached the page');
        assert.deepEqual(ev.p, { token: { id: 'piv:1' } });
        assert.equal(await other.evaluate(() => window.seen.length), 0, 'the page that did not subscribe gets nothing');
        // A renewal belongs to the origin that prepared it: another site's never reaches the page.
        const m = await page.evaluate(() => window.seen.length);
        await pageCall(other, 'test.emit', { method: 'renewal.changed', params: { renewal: { renewal_id: 'r1', origin: 'https://elsewhere.example' } } });
        await pageCall(other, 'test.emit', { method: 'renewal.changed', params: { renewal: { renewal_id: 'r2', origin } } });
        const rev = await page.evaluate((m) => window.waitEvent('renewal.changed', m), m);
        assert.ok(rev, 'the page\'s own renewal event arrived');
        assert.equal(rev.p.renewal.renewal_id, 'r2', 'another origin\'s renewal event was not forwarded');
        // Unsubscribing one page is local: the session stays subscribed for the others.
        const un = await pageCall(page, 'system.unsubscribe', { events: ['token.inserted'] });
        assert.ok(un.result && !un.result.events.includes('token.inserted'), JSON.stringify(un));
        assert.ok(!log().some((l) => l.msg && l.msg.method === 'system.unsubscribe'));
    });

    await t.test('the host dies: calls in flight get DAEMON_UNAVAILABLE, the next call reconnects', async () => {
        const starts = log().filter((l) => l.start).length;
        const hang = pageCall(page, 'test.hang');
        const exit = await pageCall(page, 'test.exit');
        assert.equal(exit.error && exit.error.reason, 'DAEMON_UNAVAILABLE', JSON.stringify(exit));
        assert.equal(exit.error.retriable, true);
        assert.equal((await hang).error.reason, 'DAEMON_UNAVAILABLE');
        const again = await pageCall(page, 'test.echo', { n: 2 });
        assert.deepEqual(again.result, { origin, params: { n: 2 } });
        assert.equal(log().filter((l) => l.start).length, starts + 1, 'one new host process');
    });

    await t.test('timeouts and aborts in the SDK over the extension', async () => {
        const r = await page.evaluate(async () => {
            const out = {};
            try { await window.ukey.call('test.hang', undefined, { timeoutMs: 100 }); } catch (e) { out.timeout = [e.reason, e.retriable]; }
            const ac = new AbortController();
            const p = window.ukey.call('test.hang', undefined, { signal: ac.signal });
            ac.abort();
            try { await p; } catch (e) { out.abort = e.reason; }
            try { await window.ukey.call('no.such'); } catch (e) { out.unknown = [e.reason, e.code, e.messages['zh-CN']]; }
            return out;
        });
        assert.deepEqual(r, { timeout: ['TIMEOUT', true], abort: 'CANCELLED', unknown: ['METHOD_NOT_FOUND', -32601, '此版本的 ukeyd 不支持该方法。'] });
    });

    await t.test('a page of an origin that is not configured gets no content script', async () => {
        const port2 = await serve(t);
        const p = await openPage(ctx, `http://127.0.0.1:${port2}/page`);
        // Same host, another port: not in the list, so no extension; no WSS ports either.
        const r = await pageConnect(p, { ports: [], requireExtension: true, extensionTimeoutMs: 300 });
        assert.equal(r.reason, 'EXTENSION_NOT_INSTALLED', JSON.stringify(r));
        await p.close();
    });

    await t.test('the popup (fake data): screenshot', async () => {
        const p = await ctx.newPage();
        await p.setViewportSize({ width: 380, height: 480 });
        await p.goto(`chrome-extension://${EXT_ID}/popup.html`);
        await p.waitForSelector('body[data-state="done"]');
        const text = await p.textContent('body');
        assert.match(text, /张三/);
        assert.match(text, /即将到期/);
        await screenshot(p, 'e2e-ext-popup-fake-zh-CN.png');
        await p.close();
    });
});

/* ---------- 2-4. the real daemon on a rig ---------- */

// A test CA and a server certificate for portal.test (the "public" portal of case 3).
async function portalTls(dir) {
    const ca = path.join(dir, 'portal-ca');
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`,
        '-out', `${ca}.pem`, '-days', '2', '-subj', '/CN=ukeyd e2e portal CA', '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign']);
    const srv = path.join(dir, 'portal');
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${srv}.key`,
        '-out', `${srv}.csr`, '-subj', '/CN=portal.test']);
    const ext = path.join(dir, 'portal.ext');
    fs.writeFileSync(ext, 'subjectAltName=DNS:portal.test\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n');
    await openssl(['x509', '-req', '-in', `${srv}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2',
        '-extfile', ext, '-out', `${srv}.pem`]);
    return { caPem: `${ca}.pem`, key: fs.readFileSync(`${srv}.key`), cert: fs.readFileSync(`${srv}.pem`) };
}

test('the browser path with the real daemon: extension, WSS, public page, screenshots', { skip: missing || rigUnavailable() || false, timeout: 240000 }, async (t) => {
    const dir = tempDir(t, 'uke-');
    const pagePort = await serve(t);
    const page0 = `http://127.0.0.1:${pagePort}`;
    const tlsPortal = await portalTls(dir);
    const portalPort = await serve(t, { key: tlsPortal.key, cert: tlsPortal.cert });
    const portal = `https://portal.test:${portalPort}`;

    const rig = await new Rig(t).up();
    const pinScript = path.join(dir, 'pinentry.script');
    const pinLog = path.join(dir, 'pinentry.log');
    fs.writeFileSync(pinScript, '');
    const config = { log_level: 'debug' };
    const havePinentry = fs.existsSync(PINENTRY);
    if (havePinentry) config.pinentry = PINENTRY;
    const d = new Ukeyd(t, { origins: [page0, portal], extension_ids: [EXT_ID], config });
    d.env.PCSCLITE_CSOCK_NAME = rig.env.PCSCLITE_CSOCK_NAME;
    d.env.UK_PINENTRY_SCRIPT = pinScript;
    d.env.UK_PINENTRY_LOG = pinLog;
    // The browser's HOME is the daemon's: tls-setup trusts the daemon's CA in its NSS database;
    // the portal's test CA goes in too.
    d.port = 1;
    d.writeConfig();
    trustDaemonCa(d, { cas: [{ name: 'portal test CA', pem: tlsPortal.caPem }] });
    await d.start();

    // The card's token and certificate, as the daemon's Unix socket sees them.
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    c.close();

    const host = writeWrapper(dir, 'ukeyd-nm.sh', { UKEYD_CONFIG: d.configPath, HOME: d.env.HOME, XDG_RUNTIME_DIR: d.env.XDG_RUNTIME_DIR }, [BIN.nm]);
    const browserEnv = { ...d.env };
    const publicArgs = ['--host-resolver-rules=MAP portal.test 127.0.0.1', `--ip-address-space-overrides=127.0.0.1:${portalPort}=public`];

    // Everything a page does with the key, on whichever path connect() chose.
    async function exercise(st, page, label) {
        const tokens = await page.evaluate(() => window.ukey.tokens());
        const mine = tokens.find((x) => x.id === tok.id);
        assert.ok(mine && mine.present, JSON.stringify(tokens));
        const certs = await page.evaluate((token) => window.ukey.certs({ token, der: true }), tok.id);
        const c9a = certs.find((x) => x.key === '9a');
        assert.ok(c9a && c9a.der && c9a.subject, JSON.stringify(certs));
        await page.evaluate((v) => window.show(true, 'certificates', v), certs.map(({ der, ...rest }) => rest));

        await st.test(`${label}: sign (consent and PIN through pinentry), verified with the certificate's key`, async () => {
            // "pin" answers a CONFIRM with OK as well, so the script fits a consent dialog followed
            // by the PIN dialog, or the PIN dialog alone. The script's position file starts over.
            fs.rmSync(`${pinScript}.pos`, { force: true });
            fs.writeFileSync(pinScript, 'pin 123456\npin 123456\n');
            const before = readJsonLines(pinLog).length;
            const data = `签名测试 ${label} ${crypto.randomBytes(4).toString('hex')}`;
            const r = await page.evaluate(async ([token, data]) => {
                try {
                    return { result: await window.ukey.sign({ token, key: '9a', algorithm: 'RSA-PKCS1-SHA256', data }, { timeoutMs: 20000 }) };
                } catch (e) {
                    return { error: { reason: e.reason, message: e.message } };
                }
            }, [tok.id, data]);
            assert.ok(r.result, `sign from the page failed (pinentry ${havePinentry ? 'configured' : 'not built yet'}): ${JSON.stringify(r)}`);
            const cert = new crypto.X509Certificate(Buffer.from(c9a.der, 'base64'));
            assert.ok(crypto.verify('sha256', Buffer.from(data, 'utf8'), cert.publicKey, Buffer.from(r.result.signature, 'base64')));
            const dialogs = readJsonLines(pinLog).slice(before);
            assert.ok(dialogs.some((l) => l.command === 'GETPIN'), JSON.stringify(dialogs));
            const shown = JSON.stringify(dialogs);
            assert.ok(shown.includes(new URL(page.url()).origin), `the dialogs name the page origin: ${shown}`);
            assert.ok(!shown.includes('123456'), 'no PIN in the pinentry log');
            t.diagnostic(`${label}: dialogs ${dialogs.map((l) => l.command).join(', ')}`);
        });

        await st.test(`${label}: removed and inserted events when the card is pulled and put back`, async () => {
            await page.evaluate(() => window.watch());
            const n = await page.evaluate(() => window.seen.length);
            await rig.ctl('remove');
            const removed = await page.evaluate((n) => window.waitEvent('token.removed', n), n);
            assert.ok(removed, 'token.removed reached the page');
            assert.equal(removed.p.token.reader, rig.reader);
            await rig.ctl('insert');
            const inserted = await page.evaluate((n) => window.waitEvent('token.inserted', n), n);
            assert.ok(inserted, 'token.inserted reached the page');
            assert.equal(inserted.p.token.id, tok.id);
            await rig.wait('present');
        });
    }

    const ext = await launch(t, dir, { host, env: browserEnv, args: publicArgs, lang: 'zh-CN' });

    await t.test('extension: the content script is registered for the daemon\'s origins', async () => {
        assert.deepEqual(ext.registered, [page0, portal].sort(), JSON.stringify(ext.registered));
    });

    await t.test('1. extension path: connect, list, sign, events', async (st) => {
        const page = await openPage(ext.ctx, `${page0}/page`);
        const r = await pageConnect(page, { ports: [d.port] });
        assert.equal(r.ok, true, JSON.stringify(r));
        assert.equal(r.path, 'extension');
        assert.equal(r.hello.endpoint, 'native-messaging');
        assert.equal(r.hello.origin, page0);
        await exercise(st, page, 'extension');
        await page.evaluate(() => window.show(true, `connected via ${window.ukey.path}`, window.ukey.hello));
        await screenshot(page, 'e2e-ext-page-extension.png');
        await page.close();
    });

    await t.test('3c. public page with the extension: works without the local-network permission', async () => {
        const page = await openPage(ext.ctx, `${portal}/page`);
        const r = await pageConnect(page, { ports: [d.port] });
        assert.equal(r.ok, true, JSON.stringify(r));
        assert.equal(r.path, 'extension');
        assert.equal(r.hello.origin, portal);
        await page.close();
    });

    await t.test('4. popup screenshots (zh-CN here, English below)', async () => {
        const p = await ext.ctx.newPage();
        await p.setViewportSize({ width: 380, height: 560 });
        await p.goto(`chrome-extension://${EXT_ID}/popup.html`);
        await p.waitForSelector('body[data-state="done"]');
        const text = await p.textContent('body');
        assert.match(text, /ukeyd 运行正常/);
        assert.match(text, /生效日期/);
        await screenshot(p, 'e2e-ext-popup-zh-CN.png');
        await p.close();
    });
    await ext.ctx.close();

    const plain = await launch(t, dir, { env: browserEnv, args: publicArgs, lang: 'zh-CN' });

    await t.test('2. no extension: the SDK falls back to WSS; list, sign, events', async (st) => {
        const page = await openPage(plain.ctx, `${page0}/page`);
        const r = await pageConnect(page, { ports: [d.port], extensionTimeoutMs: 200 });
        assert.equal(r.ok, true, JSON.stringify(r));
        assert.equal(r.path, 'wss');
        assert.equal(r.hello.endpoint, 'wss');
        assert.equal(r.hello.origin, page0);
        await exercise(st, page, 'wss');
        await page.evaluate(() => window.show(true, `connected via ${window.ukey.path}`, window.ukey.hello));
        await screenshot(page, 'e2e-ext-page-wss.png');
        await page.close();
    });

    await t.test('3a. public page, no extension, no permission: LOCAL_NETWORK_BLOCKED', async () => {
        const page = await openPage(plain.ctx, `${portal}/page`);
        const r = await pageConnect(page, { ports: [d.port], extensionTimeoutMs: 200, lang: 'zh-CN' });
        assert.equal(r.ok, false);
        assert.equal(r.reason, 'LOCAL_NETWORK_BLOCKED', JSON.stringify(r));
        // Chromium 156 headless: 'denied' for this https page declared public ('prompt' for an
        // http://127.0.0.1 page declared public); the SDK treats both as blocked.
        assert.ok(['denied', 'prompt'].includes(r.data.permission), JSON.stringify(r.data));
        t.diagnostic(`3a: local-network-access permission state '${r.data.permission}'`);
        assert.match(r.message, /本地网络/);
        await screenshot(page, 'e2e-ext-page-public-blocked.png');
        await page.close();
    });

    await t.test('3b. public page with the local-network permission: WSS works', async () => {
        await plain.ctx.grantPermissions(['local-network-access'], { origin: portal });
        const page = await openPage(plain.ctx, `${portal}/page`);
        const r = await pageConnect(page, { ports: [d.port], extensionTimeoutMs: 200 });
        assert.equal(r.ok, true, JSON.stringify(r));
        assert.equal(r.path, 'wss');
        assert.equal(r.hello.origin, portal);
        await page.close();
    });
    await plain.ctx.close();

    await t.test('4. popup in English', async () => {
        const en = await launch(t, dir, { host, env: browserEnv, lang: 'en-US' });
        const p = await en.ctx.newPage();
        await p.setViewportSize({ width: 380, height: 560 });
        await p.goto(`chrome-extension://${EXT_ID}/popup.html`);
        await p.waitForSelector('body[data-state="done"]');
        const text = await p.textContent('body');
        assert.match(text, /ukeyd is running/);
        assert.match(text, /Valid until/);
        await screenshot(p, 'e2e-ext-popup-en.png');
        await en.ctx.close();
    });

    await d.stop();
});
