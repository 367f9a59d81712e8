'use strict';
// The attack suite (issue 6): what a hostile web page, a hostile extension or a hostile local
// client can try against ukeyd, each case refused before any method runs, and after every case a
// legitimate client (the allowed origin over WSS) still gets system.hello and cert.list.
//
// In Debian's Chromium (headless, playwright-core, HOME in a temp dir whose NSS database trusts
// the daemon's CA, `--host-resolver-rules="MAP evil.test 127.0.0.1"`):
//   1. cross-site WebSocket hijacking: a foreign page opens the WSS endpoint (pairing off: no
//      upgrade; pairing on: `pairable`, every key method NOT_PAIRED);
//   2. DNS rebinding: a page at http://evil.test:PORT (resolving to 127.0.0.1);
//   3. `null` origins: a sandboxed iframe inside the allowed page, a file:// page;
//   4. the allowed page framed by a foreign page (and the same page with frame-ancestors CSP);
//   5. an extension whose ID is not allowed calling the native host (a real second unpacked MV3
//      extension, and ukeyd-nm run the way Chrome runs it);
//   6. an unpaired origin calling cert.list;
//   7. a paired origin calling sign, the user declining (scripted pinentry: cancel).
// From raw clients (node):
//   8. no Origin; the allowed Origin with a foreign Host;
//   9. oversized messages, a 1 GiB frame header, fragments over and under the limit, protocol
//      errors in fragmentation;
//  10. slow-loris handshakes (50 connections dripping one header byte per second);
//  11. 10 000 random messages (seeded: UK_ATTACK_SEED reproduces a run);
//  12. a flood of connections (over limits.connections, and 1200 idle TCP connections), with the
//      daemon's file descriptors counted before and after.
// And in Chromium again:
//  13. a foreign page holding WebSockets open. A WEAKNESS this suite found (not fixed here): its
//      `pairable` sessions use up limits.connections, which every endpoint shares; the subtest
//      that states the wanted behaviour is marked `todo` until the daemon is fixed.
// The suite prints one line per case with its verdict (`# case N ...: ...`). Screenshots of the
// browser cases go to UK_ARTIFACT_DIR (attack-*.png).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');
const { spawn } = require('node:child_process');
const { Ukeyd, UnixClient, WssClient, FrameReader, BIN, run, tempDir, rawUpgrade, upgradeHeaders } = require('../daemon/lib/ukeyd');
const { Rig, rigUnavailable, waitToken, KeysClient, openssl } = require('../daemon/lib/rig');
const { EXT_DIR, EXT_ID, browserMissing, serve: serveOn, trustDaemonCa, launchBrowser, launchPersistent, installHost, serviceWorker, screenshot } =
    require('./lib/browser');

const HOST_NAME = 'io.ukeyd.host';
// Every launch here (after lib/browser.js's BASE_ARGS): evil.test resolves to 127.0.0.1 (case 2).
const ARGS = ['--host-resolver-rules=MAP evil.test 127.0.0.1'];
const LIMIT = 65536; // limits.message_size (default)
const CONNECTIONS = 24; // limits.connections of the daemon under attack
const skip = browserMissing() || rigUnavailable() || false;

/* ---------- the verdict table ---------- */

const verdicts = [];
function verdict(n, what, text) {
    verdicts.push({ n, what, text });
    console.log(`# case ${n} ${what}: ${text}`);
}

/* ---------- pages ---------- */

// Every page has the same helpers: wsOpen(url) resolves {events} once open or closed (never
// both), wsCall(method, params) resolves the answer (null once closed); what happened is shown
// on the page for the screenshots. ?auto=URL connects and says hello by itself (window.auto).
const HELPERS = `
const out = document.getElementById('out');
const say = (s) => { out.textContent += s + '\\n'; };
document.getElementById('origin').textContent = location.origin;
let ws = null, nextId = 0, pending = new Map();
window.wsEvents = [];
window.wsOpen = (url) => new Promise((resolve) => {
    const events = [];
    window.wsEvents = events;
    say('open ' + url);
    try { ws = new WebSocket(url); } catch (e) { events.push('throw:' + e.name); say('throw ' + e.name); resolve({ events }); return; }
    ws.onopen = () => { events.push('open'); say('→ open'); resolve({ events }); };
    ws.onmessage = (m) => {
        const a = JSON.parse(m.data);
        say('← ' + m.data.slice(0, 300));
        const p = pending.get(a.id);
        if (p) { pending.delete(a.id); p(a); }
    };
    ws.onerror = () => { events.push('error'); say('→ error'); };
    ws.onclose = (e) => {
        events.push('close:' + e.code);
        say('→ close ' + e.code);
        for (const p of pending.values()) p(null);
        pending.clear();
        resolve({ events });
    };
});
window.wsCall = (method, params) => new Promise((resolve) => {
    const id = ++nextId;
    pending.set(id, resolve);
    const req = { jsonrpc: '2.0', method, id };
    if (params !== undefined) req.params = params;
    say('→ ' + method);
    ws.send(JSON.stringify(req));
});
const auto = new URLSearchParams(location.search).get('auto');
if (auto) window.auto = wsOpen(auto).then(async (o) => o.events[0] === 'open' ? { events: o.events, hello: await wsCall('system.hello') } : o);
`;

function pageHtml(title) {
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:13px monospace;margin:.6em}h1{font-size:15px}pre{white-space:pre-wrap;margin:0}iframe{width:95%;height:220px;border:2px solid #c62828}</style></head>
<body><h1>${title}: <span id="origin"></span></h1><pre id="out"></pre><div id="frames"></div>
<script>${HELPERS}</script></body></html>
`;
}

// A foreign page framing ?src=URL (case 4).
const FRAMER = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>foreign framer</title>
<style>body{font:13px monospace;margin:.6em;background:#fff3f3}h1{font-size:15px}pre{white-space:pre-wrap;margin:0}iframe{width:95%;height:260px;border:2px solid #c62828}</style></head>
<body><h1>foreign page framing the portal: <span id="origin"></span></h1><pre id="out"></pre>
<iframe id="portal"></iframe>
<script>${HELPERS}
const src = new URLSearchParams(location.search).get('src');
window.framed = new Promise((resolve) => { const f = document.getElementById('portal'); f.onload = () => resolve(true); f.src = src; });
</script></body></html>
`;

function handler(req, res) {
    const u = new URL(req.url, 'http://x');
    const html = (body, headers = {}) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers });
        res.end(body);
    };
    if (u.pathname === '/page') html(pageHtml('ukeyd attack suite'));
    else if (u.pathname === '/page-csp') html(pageHtml('portal with frame-ancestors'), { 'content-security-policy': "frame-ancestors 'self'" });
    else if (u.pathname === '/framer') html(FRAMER);
    else {
        res.writeHead(404);
        res.end();
    }
}

// The pages above over http(s) (tlsOpts {key, cert}) on a free port; resolves the port.
const serve = (t, tlsOpts) => serveOn(t, handler, { tls: tlsOpts });

// A self-signed certificate for evil.test (the rebinding page over https, in a context that
// ignores certificate errors).
async function evilTls(dir) {
    const key = path.join(dir, 'evil.key');
    const cert = path.join(dir, 'evil.pem');
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
        '-days', '2', '-subj', '/CN=evil.test', '-addext', 'subjectAltName=DNS:evil.test']);
    return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
}

/* ---------- the second extension (case 5) ---------- */

// A tiny MV3 extension with its own key (so its own ID) that asks for nativeMessaging and tries
// the ukeyd host. Written into dir; resolves its ID.
function writeAttackExtension(dir) {
    const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = publicKey.export({ type: 'spki', format: 'der' });
    const id = [...crypto.createHash('sha256').update(spki).digest('hex').slice(0, 32)]
        .map((c) => String.fromCharCode(97 + parseInt(c, 16))).join('');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({
        manifest_version: 3,
        name: 'not ukeyd',
        version: '1.0',
        key: spki.toString('base64'),
        permissions: ['nativeMessaging'],
        background: { service_worker: 'sw.js' },
    }, null, 2));
    fs.writeFileSync(path.join(dir, 'sw.js'), `
// Tries the ukeyd native host both ways; resolves what Chrome said.
globalThis.tryHost = (name) => new Promise((resolve) => {
    const got = { messages: [] };
    let port;
    try { port = chrome.runtime.connectNative(name); } catch (e) { resolve({ thrown: String(e) }); return; }
    port.onMessage.addListener((m) => got.messages.push(m));
    port.onDisconnect.addListener(() => {
        got.disconnected = chrome.runtime.lastError ? chrome.runtime.lastError.message : null;
        resolve(got);
    });
    port.postMessage({ jsonrpc: '2.0', method: 'cert.list', id: 1 });
});
globalThis.sendOnce = (name) => new Promise((resolve) => {
    chrome.runtime.sendNativeMessage(name, { jsonrpc: '2.0', method: 'system.hello', id: 1 }, (r) =>
        resolve({ response: r === undefined ? null : r, error: chrome.runtime.lastError ? chrome.runtime.lastError.message : null }));
});
`);
    return id;
}

// Native-endian framing of Chrome (little-endian here).
function nmFrame(obj) {
    const b = Buffer.from(JSON.stringify(obj));
    const h = Buffer.alloc(4);
    h.writeUInt32LE(b.length);
    return Buffer.concat([h, b]);
}

/* ---------- a raw WebSocket client (frames written by hand) ---------- */

// Upgrades over TLS with the given Origin, then lets the test write any frame bytes and reads the
// server's frames. Resolves once upgraded (rejects on any other status).
function rawWs(port, { origin, ca }) {
    return new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca });
        let buf = Buffer.alloc(0);
        let upgraded = false;
        const c = {
            sock: s,
            frames: [],
            waiters: [],
            ended: false,
            flush() {
                while (c.waiters.length && (c.frames.length || c.ended)) c.waiters.shift()(c.frames.length ? c.frames.shift() : null);
            },
            // Next frame {fin, opcode, payload}, or null once the connection ended.
            next() {
                return new Promise((r) => {
                    c.waiters.push(r);
                    c.flush();
                });
            },
            // Next text frame as JSON (skipping pongs), or the close frame {close: code}, or null.
            async recv() {
                for (;;) {
                    const f = await c.next();
                    if (f === null) return null;
                    if (f.opcode === 1) return JSON.parse(f.payload.toString('utf8'));
                    if (f.opcode === 8) return { close: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null };
                }
            },
            // A masked client frame; len overrides the announced length (then payload may be short).
            frame(opcode, payload = Buffer.alloc(0), { fin = true, len } = {}) {
                const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
                const n = len === undefined ? p.length : len;
                let head;
                if (n < 126) head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | n]);
                else if (n < 65536) {
                    head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, 0, 0]);
                    head.writeUInt16BE(n, 2);
                } else {
                    head = Buffer.alloc(10);
                    head[0] = (fin ? 0x80 : 0) | opcode;
                    head[1] = 0x80 | 127;
                    head.writeBigUInt64BE(BigInt(n), 2);
                }
                const mask = crypto.randomBytes(4);
                const body = Buffer.from(p);
                for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
                return Buffer.concat([head, mask, body]);
            },
            write(bytes) {
                return new Promise((r) => s.write(bytes, () => r()));
            },
            close() {
                s.destroy();
            },
        };
        s.on('secureConnect', () => {
            const h = upgradeHeaders(port, { origin });
            s.write(h.reduce((a, [k, v]) => `${a}${k}: ${v}\r\n`, 'GET / HTTP/1.1\r\n') + '\r\n');
        });
        s.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            if (!upgraded) {
                const end = buf.indexOf('\r\n\r\n');
                if (end < 0) return;
                const head = buf.subarray(0, end).toString('latin1');
                buf = buf.subarray(end + 4);
                if (!/^HTTP\/1\.1 101/.test(head)) {
                    s.destroy();
                    reject(new Error(`no upgrade: ${head}`));
                    return;
                }
                upgraded = true;
                resolve(c);
            }
            for (;;) {
                if (buf.length < 2) break;
                let n = buf[1] & 0x7f;
                let off = 2;
                if (n === 126) {
                    if (buf.length < 4) break;
                    n = buf.readUInt16BE(2);
                    off = 4;
                } else if (n === 127) {
                    if (buf.length < 10) break;
                    n = Number(buf.readBigUInt64BE(2));
                    off = 10;
                }
                if (buf.length < off + n) break;
                c.frames.push({ fin: !!(buf[0] & 0x80), opcode: buf[0] & 0x0f, payload: buf.subarray(off, off + n) });
                buf = buf.subarray(off + n);
            }
            c.flush();
        });
        const end = () => {
            c.ended = true;
            c.flush();
            if (!upgraded) reject(new Error('closed before the upgrade'));
        };
        s.on('close', end);
        s.on('error', end);
    });
}

/* ---------- random messages (case 11) ---------- */

// mulberry32: the same seed sends the same messages.
function prng(seed) {
    let s = seed >>> 0;
    return () => {
        s = (s + 0x6d2b79f5) | 0;
        let x = Math.imul(s ^ (s >>> 15), 1 | s);
        x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
        return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    };
}

const METHODS = ['system.hello', 'system.pair', 'system.subscribe', 'system.unsubscribe', 'system.attach', 'token.list', 'cert.list',
    'sign', 'renewal.prepare', 'renewal.commit', 'renewal.status', 'renewal.list', 'renewal.abort', 'origins.list', 'origins.revoke',
    'audit.read', 'sign.cms', 'verify.cms', 'decrypt.cms', 'pin.status', 'pin.change'];
const PARAMS = ['token', 'key', 'algorithm', 'data', 'digest', 'pin', 'der', 'slot', 'mode', 'renewal_id', 'certificate', 'events',
    'extension', 'origin', 'limit', 'subject', 'hash', 'detached', 'cms', 'content', 'old_pin', 'new_pin'];
const EVENTS = ['token.inserted', 'token.removed', 'token.changed', 'renewal.changed'];
const KEY_METHODS = new Set(['sign', 'renewal.prepare', 'renewal.commit', 'sign.cms', 'decrypt.cms', 'pin.change']);

class Fuzz {
    constructor(seed, token) {
        this.rnd = prng(seed);
        this.token = token;
    }

    int(n) {
        return Math.floor(this.rnd() * n);
    }

    pick(a) {
        return a[this.int(a.length)];
    }

    str(max = 20) {
        const n = this.int(max);
        let s = '';
        for (let i = 0; i < n; i++) {
            const r = this.rnd();
            const cp = r < 0.6 ? 32 + this.int(95) : r < 0.7 ? this.int(32) : r < 0.9 ? 0x80 + this.int(0x800) : 0x4e00 + this.int(0x5000);
            s += String.fromCodePoint(cp);
        }
        return s;
    }

    value(depth = 0) {
        const r = this.int(depth > 4 ? 6 : 8);
        switch (r) {
        case 0: return null;
        case 1: return this.rnd() < 0.5;
        case 2: return this.pick([0, -1, 1.5, 1e308, -1e-308, 2 ** 53, 2 ** 53 + 2, -(2 ** 63), this.int(1e9)]);
        case 3: return this.str();
        case 4: return this.pick(['9a', '9c', '82', 'RSA-PKCS1-SHA256', 'ECDSA-SHA256', 'extend', 'repair', 'AAAA', '====', 'aGVsbG8=',
            this.token, `${this.token}x`, 'piv:00000000', 'https://evil.example', 'chrome-extension://abcdefghijklmnopabcdefghijklmnop/']);
        case 5: return this.pick(EVENTS);
        case 6: { const a = []; for (let i = this.int(5); i > 0; i--) a.push(this.value(depth + 1)); return a; }
        default: { const o = {}; for (let i = this.int(5); i > 0; i--) o[this.rnd() < 0.7 ? this.pick(PARAMS) : this.str(8)] = this.value(depth + 1); return o; }
        }
    }

    // Message i: {bytes, binary?, id?} where id is set when an answer with exactly that id must
    // come back (an object with one valid id); kind for the statistics.
    message(i) {
        const r = this.rnd();
        if (r < 0.003) { // invalid UTF-8 in a text frame: close 1007
            const b = Buffer.from(Array.from({ length: 1 + this.int(50) }, () => this.int(256)));
            b[this.int(b.length)] = 0xff;
            return { kind: 'bad-utf8', bytes: b };
        }
        if (r < 0.004) return { kind: 'binary', bytes: Buffer.from(this.str(40)), binary: true }; // close 1003
        if (r < 0.25) { // random text (valid UTF-8): random bytes folded into code points
            return { kind: 'text', bytes: Buffer.from(this.str(300)) };
        }
        if (r < 0.45) // random JSON
            return { kind: 'json', bytes: Buffer.from(JSON.stringify(this.value())) };
        if (r < 0.46) { // a plausible signature request on the real key: it may reach the dialog
            const params = { token: this.token, key: this.pick(['9a', '9c', '9d', '82']),
                algorithm: this.pick(['RSA-PKCS1-SHA256', 'RSA-PSS-SHA384', 'ECDSA-SHA256', 'RSA-PKCS1-SHA512', 'X']) };
            const bytes = (n) => Buffer.from(Array.from({ length: n }, () => this.int(256)));
            if (this.rnd() < 0.8) params.data = bytes(1 + this.int(64)).toString('base64');
            else params.digest = bytes(this.pick([20, 32, 48, 64])).toString('base64');
            if (this.rnd() < 0.1) params.pin = '123456';
            const id = `f${i}`;
            return { kind: 'sign', bytes: Buffer.from(JSON.stringify({ jsonrpc: '2.0', method: 'sign', params, id })), id, method: 'sign' };
        }
        // Random JSON-RPC: mostly well-formed requests of random methods with random params.
        const m = {};
        if (this.rnd() < 0.95) m.jsonrpc = this.rnd() < 0.97 ? '2.0' : this.value();
        if (this.rnd() < 0.97) m.method = this.rnd() < 0.85 ? this.pick(METHODS) : this.rnd() < 0.5 ? this.str(70) : this.value();
        const pr = this.rnd();
        if (pr < 0.7) {
            const o = {};
            for (let k = this.int(6); k > 0; k--) o[this.rnd() < 0.9 ? this.pick(PARAMS) : this.str(6)] = this.value(1);
            if (this.rnd() < 0.3) o.token = this.token;
            m.params = o;
        } else if (pr < 0.8) m.params = this.value();
        let id;
        const ir = this.rnd();
        if (ir < 0.6) id = `f${i}`;
        else if (ir < 0.75) id = 1000000 + i;
        else if (ir < 0.85) m.id = this.pick([null, 1.5, true, [], {}, 'x'.repeat(129), 2 ** 60]);
        // else: a notification
        if (id !== undefined) m.id = id;
        if (this.rnd() < 0.05) m[this.pick(['origin', 'result', 'error', 'Method', 'extra'])] = this.value();
        const bytes = Buffer.from(JSON.stringify(m));
        // An answer with exactly this id is owed when the message is JSON as ukeyd reads it (no
        // \u0000: that is a parse error, answered with id null) and a request, well-formed or not
        // (a message without "method" that has "result" or "error" is a response, dropped).
        const owed = id !== undefined && 'method' in m && !('result' in m) && !('error' in m) && !bytes.includes('\\u0000');
        // A notification of a key method may show a dialog that nobody is answered about.
        const notify = !('id' in m) && 'method' in m && !bytes.includes('\\u0000');
        return { kind: 'jsonrpc', bytes, id: owed ? id : undefined, method: m.method, notify };
    }
}

// A well-formed answer: a response {jsonrpc, id, result|error} or a notification of an event.
function wellFormed(a) {
    if (a === null || typeof a !== 'object' || Array.isArray(a) || a.jsonrpc !== '2.0') return 'not a JSON-RPC object';
    if (!('id' in a)) return EVENTS.includes(a.method) && Object.keys(a).every((k) => ['jsonrpc', 'method', 'params'].includes(k)) ? null : 'a notification of no event';
    const keys = Object.keys(a).sort().join(',');
    if (keys === 'id,jsonrpc,result') return a.result !== null && typeof a.result === 'object' ? null : 'result is not an object';
    if (keys !== 'error,id,jsonrpc') return `members ${keys}`;
    const e = a.error;
    if (!Number.isInteger(e.code) || typeof e.message !== 'string' || !e.data || typeof e.data.reason !== 'string' ||
        !/^[A-Z_]+$/.test(e.data.reason) || typeof e.data.retriable !== 'boolean' || typeof e.data.message?.en !== 'string')
        return 'malformed error';
    return null;
}

/* ---------- the suite ---------- */

test('attack suite: browser, extension and raw clients against a private ukeyd', { skip, timeout: 280000 }, async (t) => {
    const started = Date.now();
    const dir = tempDir(t, 'uka-');
    const allowedPort = await serve(t);
    const foreignPort = await serve(t);
    const evilTlsPort = await serve(t, await evilTls(dir));
    const ALLOWED = `http://127.0.0.1:${allowedPort}`;
    const FOREIGN = `http://127.0.0.1:${foreignPort}`; // another port: another origin, pairable
    const FRAMER_ORIGIN = `http://localhost:${foreignPort}`; // another site
    const PAIRED = `http://localhost:${allowedPort}`; // asks to pair in case 7
    const UNPAIRED = `http://localhost:${await serve(t)}`; // never paired (case 6)

    const rig = await new Rig(t).up();
    const d = new Ukeyd(t, {
        origins: [ALLOWED],
        extension_ids: [EXT_ID],
        // The rate of the allowed origin is raised for the 10 000 random messages of case 11 (the
        // rate itself is tested in limits and security tests); pairable origins keep theirs.
        limits: { connections: CONNECTIONS, requests_per_second_per_origin: 100000 },
    });
    d.env.PCSCLITE_CSOCK_NAME = rig.env.PCSCLITE_CSOCK_NAME;
    d.port = 1;
    d.writeConfig();
    trustDaemonCa(d);
    await d.start();
    const wss = `wss://127.0.0.1:${d.port}`;

    const local = await KeysClient.unix(d);
    const token = (await waitToken(local, rig.reader)).id;
    const retries = async () => (await local.ok('token.list')).tokens.find((x) => x.id === token).pin_retries;
    const refusals = () => d.count(/refused: endpoint=wss/);
    // The first refusal logged after the first `before` ones that matches re.
    // (Within 15 s, a generous bound: a refusal is logged as it happens.)
    const lastRefusal = (before, re = /./) => {
        let timer;
        return Promise.race([
            d.waitFor(() => {
                const lines = d.log.split('\n').slice(0, -1).filter((l) => /refused: endpoint=wss/.test(l)).slice(before);
                return lines.find((l) => re.test(l));
            }, `a refusal matching ${re}`).finally(() => clearTimeout(timer)),
            new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`no refusal matching ${re} logged within 15 s:\n${d.log.split('\n').slice(-15).join('\n')}`)), 15000);
            }),
        ]);
    };

    // The legitimate client, after every case: the allowed origin over WSS gets hello and the
    // card's certificates, and the daemon is the same process.
    async function legit(label) {
        assert.equal(d.exit, null, `ukeyd exited during ${label}:\n${d.log.slice(-3000)}`);
        const w = await WssClient.open(d.port, { origin: ALLOWED, ca: d.ca });
        const hello = await w.call('system.hello', undefined, 'legit');
        assert.equal(hello.result?.access, 'allowed', `${label}: ${JSON.stringify(hello)}`);
        const certs = await w.call('cert.list', { token }, 'legit-certs');
        assert.equal(certs.result?.certificates?.length, 2, `${label}: ${JSON.stringify(certs)}`);
        await w.close();
    }

    const browser = await launchBrowser(t, { args: ARGS, env: d.env });
    const ctx = await browser.newContext({ viewport: { width: 900, height: 620 } });
    const consoleLines = [];
    ctx.on('console', (m) => consoleLines.push(m.text()));
    const shot = (page, name) => screenshot(page, `attack-${name}.png`);
    async function openPage(url) {
        const p = await ctx.newPage();
        await p.goto(url);
        return p;
    }
    const wsOpen = (page, url) => page.evaluate((u) => window.wsOpen(u), url);
    const wsCall = (page, method, params) => page.evaluate(([m, p]) => window.wsCall(m, p), [method, params]);
    const reason = (a) => (a && a.error ? a.error.data.reason : a && a.result ? 'OK' : String(a));
    const signParams = { token, key: '9a', algorithm: 'RSA-PKCS1-SHA256', data: crypto.randomBytes(64).toString('base64') };

    await legit('start');

    await t.test('case 1: cross-site WebSocket hijacking from a foreign page', async () => {
        // Pairing off (SIGHUP): the foreign origin is refused before the upgrade.
        d.writeConfig({ pairing: false });
        d.signal('SIGHUP');
        await d.waitCount(/SIGHUP: reloaded/, 1);
        let before = refusals();
        const p = await openPage(`${FOREIGN}/page`);
        const off = await wsOpen(p, wss);
        assert.ok(!off.events.includes('open'), JSON.stringify(off));
        assert.equal(off.events.at(-1), 'close:1006');
        const line = await lastRefusal(before);
        assert.ok(line.includes(`origin="${FOREIGN}"`) && /reason=ORIGIN_NOT_ALLOWED/.test(line), line);
        await shot(p, '1-hijack-pairing-off');
        await p.close();
        await legit('case 1 (pairing off)');

        // Pairing on (the default): the page gets a pairable session and nothing about keys.
        d.writeConfig();
        d.signal('SIGHUP');
        await d.waitCount(/SIGHUP: reloaded/, 2);
        const q = await openPage(`${FOREIGN}/page`);
        const on = await wsOpen(q, wss);
        assert.deepEqual(on.events, ['open']);
        const hello = await wsCall(q, 'system.hello');
        assert.equal(hello.result.access, 'pairable');
        assert.equal(hello.result.origin, FOREIGN);
        assert.deepEqual([...hello.result.methods].sort(), ['system.hello', 'system.pair']);
        const answers = {};
        for (const [m, params] of [['cert.list', { token }], ['sign', signParams], ['token.list'], ['system.subscribe']])
            answers[m] = reason(await wsCall(q, m, params));
        assert.deepEqual(answers, { 'cert.list': 'NOT_PAIRED', sign: 'NOT_PAIRED', 'token.list': 'NOT_PAIRED', 'system.subscribe': 'NOT_PAIRED' });
        const text = await q.textContent('#out');
        assert.ok(!text.includes(token) && !text.includes('certificates'), 'no key data reached the page');
        await shot(q, '1-hijack-pairing-on');
        await q.close();
        await legit('case 1 (pairing on)');
        verdict(1, 'cross-site WebSocket hijacking (foreign page)',
            'pairing off: refused before the upgrade (403, the page sees close 1006 without open); pairing on: pairable, cert.list/sign/token.list/system.subscribe all NOT_PAIRED');
    });

    await t.test('case 2: DNS rebinding (evil.test resolves to 127.0.0.1)', async () => {
        // (a) The rebinding page opens wss://evil.test:PORT: Chromium checks the certificate
        // (127.0.0.1 and localhost only) and gives up before any HTTP request is sent.
        let before = refusals();
        const p = await openPage(`http://evil.test:${allowedPort}/page`);
        assert.equal(await p.evaluate(() => location.origin), `http://evil.test:${allowedPort}`);
        const nConsole = consoleLines.length;
        const r = await wsOpen(p, `wss://evil.test:${d.port}/`);
        assert.ok(!r.events.includes('open'), JSON.stringify(r));
        const tlsError = consoleLines.slice(nConsole).find((l) => /ERR_CERT_COMMON_NAME_INVALID/.test(l));
        assert.ok(tlsError, `Chromium refuses the certificate for evil.test: ${consoleLines.slice(nConsole).join('\n')}`);
        // (b) The same page opening wss://127.0.0.1: the Origin is http://evil.test:PORT (plain
        // http on a network name): refused before the upgrade.
        const r2 = await wsOpen(p, `${wss}/`);
        assert.ok(!r2.events.includes('open'), JSON.stringify(r2));
        const line = await lastRefusal(before);
        assert.equal(refusals(), before + 1, 'the wss://evil.test attempt never reached the gate');
        assert.ok(line.includes(`origin="http://evil.test:${allowedPort}"`) && /ORIGIN_NOT_ALLOWED/.test(line), line);
        await shot(p, '2-rebinding');
        await p.close();

        // (c) Without the certificate check (a context that ignores certificate errors, standing
        // in for a browser that would not check): an https page at evil.test (a pairable origin,
        // so the Origin check alone would let it in) reaches the gate with Host evil.test:PORT,
        // and the Host check refuses it.
        const ign = await browser.newContext({ ignoreHTTPSErrors: true });
        const e = await ign.newPage();
        await e.goto(`https://evil.test:${evilTlsPort}/page`);
        before = refusals();
        const r3 = await e.evaluate((u) => window.wsOpen(u), `wss://evil.test:${d.port}/`);
        assert.ok(!r3.events.includes('open'), JSON.stringify(r3));
        const hostLine = await lastRefusal(before);
        assert.ok(hostLine.includes(`origin="https://evil.test:${evilTlsPort}"`) && /reason=HOST_NOT_ALLOWED/.test(hostLine), hostLine);
        await screenshot(e, 'attack-2-rebinding-no-cert-check.png');
        await ign.close();

        // (d) A raw client forging the allowed Origin with the rebinding Host: 403.
        before = refusals();
        const raw = await rawUpgrade(d.port, upgradeHeaders(d.port, { origin: ALLOWED, host: `evil.test:${d.port}` }), { ca: d.ca });
        assert.equal(raw.status, 403, raw.head);
        assert.match(await lastRefusal(before), /reason=HOST_NOT_ALLOWED/);
        await legit('case 2');
        verdict(2, 'DNS rebinding (evil.test -> 127.0.0.1)',
            'refused: Chromium fails TLS first (ERR_CERT_COMMON_NAME_INVALID, nothing reaches ukeyd); wss://127.0.0.1 from the page: 403 ORIGIN_NOT_ALLOWED; ' +
            'with certificate errors ignored: 403 HOST_NOT_ALLOWED; raw client with the allowed Origin and Host evil.test: 403 HOST_NOT_ALLOWED');
    });

    await t.test('case 3: null origins (sandboxed iframe, file:// page)', async () => {
        let before = refusals();
        const p = await openPage(`${ALLOWED}/page`);
        const r = await p.evaluate((u) => new Promise((resolve) => {
            window.addEventListener('message', (e) => resolve(e.data));
            const f = document.createElement('iframe');
            f.sandbox = 'allow-scripts';
            f.srcdoc = `<body style="font:13px monospace">sandboxed frame<script>
                const ev = []; const ws = new WebSocket(${JSON.stringify(u)});
                ws.onopen = () => { ev.push('open'); ws.send('{"jsonrpc":"2.0","method":"system.hello","id":1}'); };
                ws.onmessage = (m) => { ev.push('message'); parent.postMessage({ ev, origin: self.origin, data: m.data }, '*'); };
                ws.onerror = () => ev.push('error');
                ws.onclose = (e) => { ev.push('close:' + e.code); document.body.append(' ' + ev.join(' ')); parent.postMessage({ ev, origin: self.origin }, '*'); };
            <\/script>`;
            document.getElementById('frames').appendChild(f);
        }), wss);
        assert.equal(r.origin, 'null');
        assert.ok(!r.ev.includes('open'), JSON.stringify(r));
        const line = await lastRefusal(before, /origin="null"/);
        assert.match(line, /reason=ORIGIN_NOT_ALLOWED/);
        const nullRefusals = refusals() - before;
        await shot(p, '3-null-sandboxed-iframe');
        await p.close();
        await legit('case 3 (sandbox)');

        // A file:// page: Chromium gives it an opaque origin and sends "null"; with
        // --allow-file-access-from-files (a switch some users are told to set) it sends "file://".
        const file = path.join(dir, 'attack-page.html');
        fs.writeFileSync(file, pageHtml('file page'));
        const fileOrigins = [];
        for (const flag of [false, true]) {
            const b = flag ? await launchBrowser(t, { args: [...ARGS, '--allow-file-access-from-files'], env: d.env }) : null;
            const fctx = b ? await b.newContext() : ctx;
            before = refusals();
            const f = await fctx.newPage();
            await f.goto(`file://${file}`);
            const rf = await f.evaluate((u) => window.wsOpen(u), wss);
            assert.ok(!rf.events.includes('open'), JSON.stringify(rf));
            const want = flag ? 'file://' : 'null';
            const fline = await lastRefusal(before, /origin=/);
            assert.ok(fline.includes(`origin="${want}"`), `file page${flag ? ' with --allow-file-access-from-files' : ''}: ${fline}`);
            assert.match(fline, /reason=ORIGIN_NOT_ALLOWED/);
            fileOrigins.push(want);
            await screenshot(f, `attack-3-file-page${flag ? '-file-access' : ''}.png`);
            await f.close();
            if (b) await b.close();
        }
        t.diagnostic(`refusals logged: sandboxed iframe ${nullRefusals}`);
        await legit('case 3 (file)');
        verdict(3, 'null origins',
            'refused before the upgrade (403): a sandboxed iframe sends Origin "null"; a file:// page sends "null" ("file://" with --allow-file-access-from-files); the pages see close 1006 without open');
    });

    await t.test('case 4: the allowed page framed by a foreign page', async () => {
        const p = await openPage(`${FRAMER_ORIGIN}/framer?src=${encodeURIComponent(`${ALLOWED}/page?auto=${encodeURIComponent(wss)}`)}`);
        await p.evaluate(() => window.framed);
        const frame = p.frames().find((f) => f.url().startsWith(`${ALLOWED}/`));
        assert.ok(frame, p.frames().map((f) => f.url()).join(' '));
        // By design the frame is the portal: its own origin, its own session.
        const inFrame = await frame.evaluate(() => window.auto);
        assert.equal(inFrame.hello?.result?.origin, ALLOWED, JSON.stringify(inFrame));
        assert.equal(inFrame.hello.result.access, 'allowed');
        // The foreign page's own script: it cannot read the frame, and its own WebSocket is its
        // own origin's, without access to keys.
        const reach = await p.evaluate(() => {
            const f = document.getElementById('portal').contentWindow;
            const tryIt = (fn) => { try { return { value: fn() }; } catch (e) { return { error: e.name }; } };
            return {
                document: tryIt(() => f.document.body.innerHTML),
                auto: tryIt(() => f.auto),
                wsCall: tryIt(() => typeof f.wsCall),
                frameElementDoc: tryIt(() => document.getElementById('portal').contentDocument === null),
            };
        });
        assert.equal(reach.document.error, 'SecurityError', JSON.stringify(reach));
        assert.equal(reach.auto.error, 'SecurityError', JSON.stringify(reach));
        assert.equal(reach.wsCall.error, 'SecurityError', JSON.stringify(reach));
        assert.equal(reach.frameElementDoc.value, true, 'contentDocument is null across origins');
        const own = await wsOpen(p, wss);
        assert.deepEqual(own.events, ['open']);
        const hello = await wsCall(p, 'system.hello');
        assert.equal(hello.result.origin, FRAMER_ORIGIN, 'the daemon sees the framer\'s own origin');
        assert.equal(hello.result.access, 'pairable');
        assert.equal(reason(await wsCall(p, 'cert.list', { token })), 'NOT_PAIRED');
        await shot(p, '4-framed-portal');
        await p.close();

        // The same portal page with `Content-Security-Policy: frame-ancestors 'self'` is not
        // rendered in the foreign frame at all, so it never connects from there.
        const c = await openPage(`${FRAMER_ORIGIN}/framer?src=${encodeURIComponent(`${ALLOWED}/page-csp?auto=${encodeURIComponent(wss)}`)}`);
        await c.evaluate(() => window.framed);
        const blocked = c.frames().find((f) => f !== c.mainFrame());
        const hasAuto = await blocked.evaluate(() => typeof window.auto).catch((e) => `error: ${e.message.split('\n')[0]}`);
        assert.notEqual(hasAuto, 'object', `the CSP-protected page ran inside the foreign frame (${blocked.url()})`);
        await shot(c, '4-framed-portal-with-csp');
        await c.close();
        await legit('case 4');
        verdict(4, 'allowed page framed by a foreign page',
            'by design the frame connects as the portal (its own origin); the foreign page cannot read the frame (SecurityError on document and globals) ' +
            'and its own WebSocket is pairable: cert.list NOT_PAIRED; with frame-ancestors \'self\' the portal does not render in the foreign frame');
    });

    await t.test('case 5: an extension whose ID is not allowed calls the native host', async () => {
        // The native host as Chrome would run it: a wrapper that records each start.
        const starts = path.join(dir, 'nm-starts.log');
        const wrapper = path.join(dir, 'ukeyd-nm.sh');
        const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
        fs.writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> ${q(starts)}\nexec env UKEYD_CONFIG=${q(d.configPath)} HOME=${q(d.env.HOME)} ` +
            `XDG_RUNTIME_DIR=${q(d.env.XDG_RUNTIME_DIR)} ${q(BIN.nm)} "$@"\n`, { mode: 0o755 });
        const attackDir = path.join(dir, 'attack-ext');
        const attackId = writeAttackExtension(attackDir);
        assert.notEqual(attackId, EXT_ID);
        const userDir = path.join(dir, 'profile-ext');
        installHost(userDir, wrapper);
        const attached = () => d.count(/native messaging: attached extension/);
        const attachedBefore = attached();
        const ext = await launchPersistent(t, userDir, {
            args: [...ARGS, `--disable-extensions-except=${EXT_DIR},${attackDir}`, `--load-extension=${EXT_DIR},${attackDir}`],
            env: d.env,
        });
        const worker = (id) => serviceWorker(ext, id);
        const real = await worker(EXT_ID);
        const registered = await real.evaluate(() => globalThis.ukeydReady);
        assert.deepEqual(registered, [ALLOWED], 'the real extension reached the daemon through the host');
        const evil = await worker(attackId);
        const connect = await evil.evaluate((n) => globalThis.tryHost(n), HOST_NAME);
        const once = await evil.evaluate((n) => globalThis.sendOnce(n), HOST_NAME);
        assert.deepEqual(connect.messages, [], JSON.stringify(connect));
        assert.match(connect.disconnected, /forbidden/i, JSON.stringify(connect));
        assert.equal(once.response, null);
        assert.match(once.error, /forbidden/i, JSON.stringify(once));
        const startLines = fs.readFileSync(starts, 'utf8').trim().split('\n');
        assert.ok(startLines.length >= 1 && startLines.every((l) => l.startsWith(`chrome-extension://${EXT_ID}/`)),
            `Chrome started the host for the real extension only: ${JSON.stringify(startLines)}`);
        assert.ok(d.log.split('\n').filter((l) => /native messaging: attached extension/.test(l)).every((l) => l.includes(EXT_ID)));
        const popup = await ext.newPage();
        await popup.setContent(`<pre style="font:13px monospace">second extension chrome-extension://${attackId}/\n` +
            `connectNative('${HOST_NAME}'): ${connect.disconnected}\nsendNativeMessage: ${once.error}\n` +
            `host starts recorded: ${startLines.join(', ')}</pre>`);
        await screenshot(popup, 'attack-5-foreign-extension.png');
        await ext.close();
        assert.ok(attached() > attachedBefore, 'the allowed extension attached');

        // ukeyd-nm as Chrome runs it, for an ID that is not allowed (what Chrome would do if a
        // host manifest listed it, or a local program pretending to be Chrome): refused by the
        // host before it talks to ukeyd. Its configuration names a socket the test listens on:
        // nobody may connect to it (and no ukeyd may be started for it).
        const probePath = path.join(dir, 'probe.sock');
        let probed = 0;
        const probe = net.createServer((s) => (probed++, s.destroy()));
        await new Promise((resolve) => probe.listen(probePath, resolve));
        t.after(() => probe.close());
        const probeConfig = path.join(dir, 'nm-config.json');
        fs.writeFileSync(probeConfig, JSON.stringify({ ...JSON.parse(fs.readFileSync(d.configPath, 'utf8')), socket: probePath, wss_port: 0 }));
        const nm = spawn(BIN.nm, [`chrome-extension://${attackId}/`], { env: { ...d.env, UKEYD_CONFIG: probeConfig }, stdio: ['pipe', 'pipe', 'pipe'] });
        const reader = new FrameReader(nm.stdout);
        let nmErr = '';
        nm.stderr.on('data', (x) => (nmErr += x));
        nm.stdin.on('error', () => {});
        const exited = new Promise((resolve) => nm.on('exit', (code, signal) => resolve({ code, signal })));
        nm.stdin.write(nmFrame({ jsonrpc: '2.0', method: 'cert.list', params: { token }, id: 1 }));
        const first = await reader.json();
        assert.equal(first?.error?.data?.reason, 'ORIGIN_NOT_ALLOWED', JSON.stringify(first));
        assert.equal(first.id, null);
        assert.equal(await reader.json(), null, 'nothing else');
        const exit = await exited;
        assert.notEqual(exit.code, 0);
        assert.doesNotMatch(nmErr, /Sanitizer|runtime error:/);
        assert.equal(probed, 0, 'the refused host never connected to a daemon');
        // The same probe with the allowed ID does connect (so the probe would have seen it).
        const ok = spawn(BIN.nm, [`chrome-extension://${EXT_ID}/`], { env: { ...d.env, UKEYD_CONFIG: probeConfig }, stdio: ['pipe', 'ignore', 'ignore'] });
        ok.stdin.on('error', () => {});
        ok.stdin.write(nmFrame({ jsonrpc: '2.0', method: 'system.hello', id: 1 }));
        for (let k = 0; probed === 0 && k < 100; k++) await new Promise((r) => setTimeout(r, 100));
        ok.kill('SIGKILL');
        assert.ok(probed > 0, 'the allowed ID connects to the configured socket');
        await legit('case 5');
        verdict(5, 'extension with another ID calls the native host',
            `refused by Chrome itself: connectNative/sendNativeMessage from a second unpacked extension (${attackId}) -> "${connect.disconnected}", ` +
            'the host is never started for it; ukeyd-nm run directly with that ID -> ORIGIN_NOT_ALLOWED (id null), exit ' + exit.code + ', ukeyd never contacted');
    });

    await t.test('case 6: an unpaired origin calls cert.list', async () => {
        const p = await openPage(`${UNPAIRED}/page`);
        assert.deepEqual((await wsOpen(p, wss)).events, ['open']);
        const a = await wsCall(p, 'cert.list', { token });
        assert.equal(reason(a), 'NOT_PAIRED');
        assert.equal(a.error.code, -32001);
        assert.equal(a.id, 1);
        await shot(p, '6-unpaired-cert-list');
        await p.close();
        await legit('case 6');
        verdict(6, 'unpaired origin calls cert.list', 'refused: NOT_PAIRED (-32001), no certificate data');
    });

    await t.test('case 7: a paired origin signs, the user declines', async () => {
        const p = await openPage(`${PAIRED}/page`);
        assert.deepEqual((await wsOpen(p, wss)).events, ['open']);
        d.pinentryAnswers(['ok', 'cancel']);
        const n = d.pinentryLog().length;
        const pair = await wsCall(p, 'system.pair');
        assert.deepEqual(pair.result, { paired: true, already: false });
        assert.equal((await wsCall(p, 'system.hello')).result.access, 'paired');
        const tries = await retries();
        const a = await wsCall(p, 'sign', signParams);
        assert.equal(reason(a), 'CONSENT_DENIED', JSON.stringify(a));
        assert.equal(await retries(), tries, 'the PIN try count is unchanged');
        const shown = d.pinentryLog().slice(n);
        assert.deepEqual(shown.map((s) => s.command), ['CONFIRM', 'GETPIN'], JSON.stringify(shown));
        for (const s of shown) assert.ok(s.description.includes(PAIRED), `the dialog names the origin: ${s.description}`);
        assert.ok(!JSON.stringify(shown).includes(signParams.data));
        await shot(p, '7-paired-sign-declined');
        await p.close();
        const audit = run(BIN.ctl, ['--socket', d.socket, 'audit', '--json', '-n', '20'], { env: d.env });
        assert.ok(JSON.parse(audit.stdout).entries.some((e) => e.method === 'sign' && e.origin === PAIRED && e.result === 'CONSENT_DENIED'));
        await legit('case 7');
        verdict(7, 'paired origin signs without consent',
            `refused: CONSENT_DENIED (the PIN dialog names ${PAIRED}; cancel), PIN tries unchanged (${tries}), audited`);
    });

    await t.test('case 8: raw clients: no Origin; the allowed Origin with a foreign Host', async () => {
        const cases = [
            ['no Origin', upgradeHeaders(d.port), /reason=ORIGIN_NOT_ALLOWED .*no Origin/],
            ['allowed Origin, Host evil.test', upgradeHeaders(d.port, { origin: ALLOWED, host: `evil.test:${d.port}` }), /reason=HOST_NOT_ALLOWED/],
            ['allowed Origin, Host of another port', upgradeHeaders(d.port, { origin: ALLOWED, host: `127.0.0.1:${d.port + 1}` }), /reason=HOST_NOT_ALLOWED/],
            ['allowed Origin, no Host', upgradeHeaders(d.port, { origin: ALLOWED, host: null }), /reason=HOST_NOT_ALLOWED/],
        ];
        for (const [what, headers, re] of cases) {
            const before = refusals();
            const r = await rawUpgrade(d.port, headers, { ca: d.ca });
            assert.equal(r.status, 403, `${what}: ${r.head}`);
            assert.doesNotMatch(r.head, /^upgrade:/im);
            assert.match(await lastRefusal(before), re, what);
        }
        // The control: the same request with the right Host is upgraded.
        assert.equal((await rawUpgrade(d.port, upgradeHeaders(d.port, { origin: ALLOWED }), { ca: d.ca })).status, 101);
        await legit('case 8');
        verdict(8, 'raw client: missing Origin, forged Origin with wrong Host', 'refused: 403 (ORIGIN_NOT_ALLOWED, HOST_NOT_ALLOWED), logged');
    });

    await t.test('case 9: oversized and fragmented messages', async () => {
        const hello = (id) => `{"jsonrpc":"2.0","method":"system.hello","id":"${id}"}`;
        const padded = (n, id) => {
            const head = `{"jsonrpc":"2.0","method":"system.hello","id":"${id}","params":{"p":"`;
            return head + 'x'.repeat(n - head.length - 3) + '"}}';
        };
        const results = {};
        // One frame of limit + 1.
        let c = await WssClient.open(d.port, { origin: ALLOWED, ca: d.ca });
        c.send(padded(LIMIT + 1, 'big'));
        let a = await c.recv();
        assert.equal(reason(a), 'LIMIT_EXCEEDED');
        assert.equal(a.id, null);
        assert.equal(await c.recv(), null);
        assert.equal(c.closeInfo.code, 1009);
        results.oversized = `LIMIT_EXCEEDED, close ${c.closeInfo.code}`;

        // A header announcing 1 GiB, 10 bytes of it sent: refused from the header alone.
        let r = await rawWs(d.port, { origin: ALLOWED, ca: d.ca });
        await r.write(r.frame(1, Buffer.from('{"jsonrpc"'), { len: 2 ** 30 }));
        a = await r.recv();
        assert.equal(reason(a), 'LIMIT_EXCEEDED', JSON.stringify(a));
        assert.deepEqual(await r.recv(), { close: 1009 });
        r.close();
        results.gib = 'LIMIT_EXCEEDED, close 1009 (from the header)';

        // Ten fragments adding up over the limit.
        c = await WssClient.open(d.port, { origin: ALLOWED, ca: d.ca });
        const text = padded(LIMIT + 1000, 'frag-big');
        const step = Math.ceil(text.length / 10);
        for (let i = 0; i < text.length; i += step) c.send(text.slice(i, i + step), { fin: i + step >= text.length });
        assert.equal(reason(await c.recv()), 'LIMIT_EXCEEDED');
        assert.equal(await c.recv(), null);
        assert.equal(c.closeInfo.code, 1009);

        // 70 000 continuation frames of one byte each (the limit is crossed by count, not size).
        r = await rawWs(d.port, { origin: ALLOWED, ca: d.ca });
        const tiny = [r.frame(1, '{', { fin: false })];
        for (let i = 0; i < 70000; i++) tiny.push(r.frame(0, ' ', { fin: false }));
        await r.write(Buffer.concat(tiny));
        a = await r.recv();
        assert.equal(reason(a), 'LIMIT_EXCEEDED', JSON.stringify(a));
        assert.deepEqual(await r.recv(), { close: 1009 });
        r.close();
        results.fragmentsOver = 'LIMIT_EXCEEDED, close 1009 (10 fragments; 70 000 one-byte fragments)';

        // Fragments under the limit, exactly at it, and with a ping between them: reassembled.
        r = await rawWs(d.port, { origin: ALLOWED, ca: d.ca });
        const msg = hello('frag-ok');
        await r.write(Buffer.concat([r.frame(1, msg.slice(0, 5), { fin: false }), r.frame(9, 'ping'), r.frame(0, msg.slice(5, 20), { fin: false }),
            r.frame(0, msg.slice(20), { fin: true })]));
        let f = await r.next();
        assert.equal(f.opcode, 10, 'the ping between fragments is answered');
        assert.equal(f.payload.toString(), 'ping');
        a = await r.recv();
        assert.equal(a.id, 'frag-ok');
        assert.equal(a.result.access, 'allowed');
        const exact = padded(LIMIT, 'frag-exact');
        const parts = [];
        for (let i = 0, k = 0; i < exact.length; i += 9000, k++) parts.push(r.frame(k === 0 ? 1 : 0, exact.slice(i, i + 9000), { fin: i + 9000 >= exact.length }));
        await r.write(Buffer.concat(parts));
        a = await r.recv();
        assert.equal(a.id, 'frag-exact');
        assert.equal(reason(a), 'INVALID_PARAMS', 'exactly at the limit: dispatched (the padding is an unknown parameter)');
        r.close();
        results.fragmentsUnder = 'reassembled and answered (with a ping between fragments; exactly 64 KiB in 8 fragments)';

        // Protocol errors: a continuation frame with no message started, and a new text frame
        // inside a fragmented message. libwebsockets closes the connection (1002).
        const protocolErrors = {};
        for (const [what, bytes] of [
            ['continuation without a start', (x) => x.frame(0, hello('orphan'))],
            ['text frame inside a fragmented message', (x) => Buffer.concat([x.frame(1, '{"jsonrpc"', { fin: false }), x.frame(1, hello('nested'))])],
            ['fragmented ping', (x) => x.frame(9, 'p', { fin: false })],
            ['reserved opcode 3', (x) => x.frame(3, 'x')],
        ]) {
            r = await rawWs(d.port, { origin: ALLOWED, ca: d.ca });
            await r.write(bytes(r));
            const got = [];
            for (let m = await r.recv(); m !== null; m = await r.recv()) {
                got.push(m);
                if (m.close !== undefined) break;
            }
            r.close();
            assert.ok(got.every((m) => m.close !== undefined), `${what}: nothing dispatched: ${JSON.stringify(got)}`);
            protocolErrors[what] = got.length ? `close ${got[0].close}` : 'connection dropped';
        }
        t.diagnostic(`protocol errors: ${JSON.stringify(protocolErrors)}`);
        results.protocol = Object.entries(protocolErrors).map(([k, v]) => `${k}: ${v}`).join('; ');
        await legit('case 9');
        verdict(9, 'oversized and fragmented frames',
            `one frame over 64 KiB: ${results.oversized}; 1 GiB header: ${results.gib}; fragments over the limit: ${results.fragmentsOver}; ` +
            `fragments under it: ${results.fragmentsUnder}; protocol errors, nothing dispatched: ${results.protocol}`);
    });

    await t.test('case 10: slow-loris handshakes', async () => {
        const N = 50;
        const t0 = Date.now();
        const slow = [];
        for (let i = 0; i < N; i++) {
            const st = { closedAt: null, sent: 0, timer: null };
            const s = tls.connect({ host: '127.0.0.1', port: d.port, ca: d.ca });
            s.on('secureConnect', () => {
                s.write('GET / HTTP/1.1\r\n');
                const drip = `Host: 127.0.0.1:${d.port}\r\nOrigin: ${ALLOWED}\r\nX-Pad: ${'a'.repeat(200)}\r\n`;
                st.timer = setInterval(() => st.sent < drip.length && s.write(drip[st.sent++]), 1000);
            });
            s.on('error', () => {});
            st.closed = new Promise((resolve) => s.on('close', () => {
                st.closedAt = Date.now() - t0;
                clearInterval(st.timer);
                resolve();
            }));
            st.sock = s;
            slow.push(st);
        }
        t.after(() => slow.forEach((s) => (clearInterval(s.timer), s.sock.destroy())));
        // Once every slow client has started dripping, the legitimate one is served at once.
        while (slow.some((s) => s.sent < 1 && s.closedAt === null)) await new Promise((r) => setTimeout(r, 100));
        const l0 = Date.now();
        await legit('case 10 (during)');
        const legitMs = Date.now() - l0;
        const stillOpen = slow.filter((s) => s.closedAt === null).length;
        assert.equal(stillOpen, N, 'the legit client was served while every slow client was still hanging');
        // Each is dropped by the handshake timeout (5 s); 30 s is a generous bound, not a measurement.
        const all = Promise.all(slow.map((s) => s.closed));
        const bound = new Promise((_, reject) => setTimeout(() => reject(new Error(`slow clients still open after 30 s: ${slow.filter((s) => s.closedAt === null).length}`)), 30000));
        await Promise.race([all, bound]);
        const times = slow.map((s) => s.closedAt).sort((x, y) => x - y);
        const maxBytes = Math.max(...slow.map((s) => s.sent));
        assert.ok(maxBytes < 40, `dropped after ${maxBytes} dripped bytes`);
        await legit('case 10 (after)');
        verdict(10, 'slow-loris handshakes',
            `refused: ${N} connections dripping a header byte per second were dropped after ${(times[0] / 1000).toFixed(1)}-${(times[N - 1] / 1000).toFixed(1)} s ` +
            `(handshake timeout 5 s, at most ${maxBytes} bytes each); the legitimate client was served meanwhile in ${legitMs} ms`);
    });

    await t.test('case 11: 10 000 random messages', async () => {
        const seed = process.env.UK_ATTACK_SEED ? Number(process.env.UK_ATTACK_SEED) : crypto.randomInt(2 ** 31);
        console.log(`# case 11 seed: ${seed} (UK_ATTACK_SEED=${seed} repeats this run)`);
        const fuzz = new Fuzz(seed, token);
        d.pinentryAnswers([]); // any dialog is cancelled
        const dialogsBefore = d.pinentryLog().length;
        const tries = await retries();
        const stats = { messages: 0, answers: 0, idNull: 0, closes: {}, reasons: {}, results: 0, events: 0, reconnects: 0, keyNotifications: 0 };
        let conn = null;
        const expect = new Map(); // id -> message index, answers still owed
        const sent = new Set(); // every id sent (owed or not)
        const answered = new Set();
        const problems = [];
        const onMessage = (m) => {
            stats.answers++;
            const bad = wellFormed(m);
            if (bad) problems.push(`${bad}: ${JSON.stringify(m).slice(0, 300)}`);
            if (!('id' in m)) return void stats.events++;
            if (m.id === null) stats.idNull++;
            else if (expect.has(m.id)) {
                const info = expect.get(m.id);
                expect.delete(m.id);
                if (m.result && KEY_METHODS.has(info.method)) problems.push(`${info.method} succeeded without consent: ${JSON.stringify(m)}`);
            } else if (answered.has(m.id)) problems.push(`a second answer: ${JSON.stringify(m).slice(0, 300)}`);
            else if (!sent.has(m.id)) problems.push(`an answer nobody asked for: ${JSON.stringify(m).slice(0, 300)}`);
            if (m.id !== null) answered.add(m.id);
            if (m.error) stats.reasons[m.error.data.reason] = (stats.reasons[m.error.data.reason] || 0) + 1;
            else if (m.result) stats.results++;
        };
        const connect = async () => {
            conn = await WssClient.open(d.port, { origin: ALLOWED, ca: d.ca });
            conn.ws.removeAllListeners('message');
            conn.ws.on('message', (data, isBinary) => {
                let m;
                try {
                    m = JSON.parse(data.toString('utf8'));
                } catch {
                    problems.push(`not JSON: ${data.toString('latin1').slice(0, 200)}`);
                    return;
                }
                if (isBinary) problems.push('a binary answer');
                if (m && m.id !== undefined && String(m.id).startsWith('sync')) {
                    const w = conn.syncs.get(m.id);
                    if (w) (conn.syncs.delete(m.id), w(m));
                }
                onMessage(m);
            });
            conn.syncs = new Map();
            conn.ws.on('close', () => {
                for (const w of conn.syncs.values()) w(null);
            });
        };
        let syncN = 0;
        // Resolves once everything sent before is answered (answers come in order for the
        // synchronous checks; card methods may answer later: the owed ids are waited for too).
        const sync = async () => {
            const id = `sync${syncN++}`;
            sent.add(id);
            const p = new Promise((resolve) => conn.syncs.set(id, resolve));
            conn.send({ jsonrpc: '2.0', method: 'system.hello', id });
            const a = await p;
            assert.ok(a, `the connection closed unexpectedly; seed ${seed}; ${JSON.stringify(conn.closeInfo)}`);
        };
        const drain = async () => {
            for (let k = 0; expect.size && k < 200; k++) {
                await sync();
                if (expect.size) await new Promise((r) => setTimeout(r, 50));
            }
            assert.equal(expect.size, 0, `answers never came for ${JSON.stringify([...expect.entries()].slice(0, 5))}; seed ${seed}`);
        };
        await connect();
        try {
            await sendAll();
        } finally {
            conn.ws.terminate();
        }
        async function sendAll() {
        for (let i = 0; i < 10000; i++) {
            const m = fuzz.message(i);
            stats.messages++;
            if (m.kind === 'bad-utf8' || m.kind === 'binary') {
                await drain();
                conn.ws.send(m.bytes, { binary: !!m.binary });
                const close = await conn.closed;
                const want = m.binary ? 1003 : 1007;
                assert.equal(close.code, want, `message ${i} (${m.kind}); seed ${seed}`);
                stats.closes[close.code] = (stats.closes[close.code] || 0) + 1;
                stats.reconnects++;
                await connect();
                continue;
            }
            if (m.id !== undefined) expect.set(m.id, { i, method: m.method });
            if (m.notify && KEY_METHODS.has(m.method)) stats.keyNotifications++;
            sent.add(`f${i}`).add(1000000 + i);
            conn.ws.send(m.bytes, { binary: false });
            if (i % 8 === 7) await sync();
        }
        await drain();
        await conn.close();
        }
        assert.deepEqual(problems.slice(0, 10), [], `seed ${seed}`);
        assert.equal(d.exit, null, 'the daemon is up');
        assert.equal(await retries(), tries, 'no PIN was tried');
        const dialogs = d.pinentryLog().length - dialogsBefore;
        // Every CONSENT_DENIED had its dialog; every other dialog belongs to a notification of a
        // key method (pin.change needs nothing but the token to reach its dialog).
        const denied = stats.reasons.CONSENT_DENIED || 0;
        assert.ok(dialogs >= denied && dialogs <= denied + stats.keyNotifications,
            `every dialog was cancelled: ${dialogs} dialogs, ${denied} CONSENT_DENIED, ${stats.keyNotifications} key notifications`);
        assert.doesNotMatch(d.log, /ERROR: \w+Sanitizer|runtime error:|SUMMARY: \w+Sanitizer/);
        d.checkLog();
        await legit('case 11');
        const top = Object.entries(stats.reasons).sort((x, y) => y[1] - x[1]).slice(0, 6).map(([k, v]) => `${k} ${v}`).join(', ');
        console.log(`# case 11 stats: ${JSON.stringify(stats)}`);
        verdict(11, '10 000 random messages',
            `seed ${seed}: every one of ${stats.answers} answers well-formed (${stats.results} results, errors mostly ${top}), ` +
            `${stats.reconnects} closes for invalid UTF-8 (1007) or binary (1003) frames; ${dialogs} signature dialogs, all cancelled and answered CONSENT_DENIED, ` +
            'no key operation without consent, no PIN tried, no crash, no sanitizer report');
    });

    await t.test('case 12: a flood of connections', async () => {
        const fds = () => fs.readdirSync(`/proc/${d.pid}/fd`).length;
        // Settle: connections of earlier cases are closed by now (the daemon frees them when the
        // client's close completes); the baseline is taken with nothing open but `local`.
        const waitFds = async (n, ms) => {
            const end = Date.now() + ms;
            while (fds() > n && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
            return fds();
        };
        await new Promise((r) => setTimeout(r, 300));
        const base = fds();

        // More WebSocket connections than limits.connections, all at once.
        const N = CONNECTIONS + 26;
        const opened = await Promise.allSettled(Array.from({ length: N }, () => WssClient.open(d.port, { origin: ALLOWED, ca: d.ca })));
        const open = opened.filter((x) => x.status === 'fulfilled').map((x) => x.value);
        const outcome = await Promise.all(open.map(async (c, i) => {
            const a = await c.call('system.hello', undefined, `flood${i}`);
            return a ? 'served' : `close ${c.closeInfo.code}`;
        }));
        const tally = {};
        for (const o of outcome) tally[o] = (tally[o] || 0) + 1;
        for (const x of opened.filter((y) => y.status === 'rejected')) tally[`not opened: ${x.reason.message}`] = (tally[`not opened: ${x.reason.message}`] || 0) + 1;
        // Web clients get the limit minus what is kept for the local tools (a quarter, at most 8:
        // daemon/rpc/uk_rpc.c); every client of the earlier cases is gone (their close completed,
        // and the daemon frees a session first).
        const webSlots = CONNECTIONS - Math.min(Math.floor(CONNECTIONS / 4), 8);
        assert.equal(tally.served, webSlots, JSON.stringify(tally));
        assert.equal(tally['close 1013'], N - webSlots, JSON.stringify(tally));
        assert.equal(d.exit, null);
        await Promise.all(open.map((c) => (c.closeInfo ? null : c.close())));
        await d.waitCount(/connections open already/, 1);
        await legit('case 12 (after the WSS flood)');
        const afterWss = await waitFds(base, 10000);

        // 1200 idle TCP connections (more than libwebsockets' table of 1024): they are held off
        // by the handshake timeout; the legitimate client gets through meanwhile or right after.
        const socks = [];
        let closedByServer = 0;
        await Promise.all(Array.from({ length: 1200 }, () => new Promise((resolve) => {
            const s = net.connect({ host: '127.0.0.1', port: d.port }, resolve);
            s.on('error', resolve);
            s.on('close', () => closedByServer++);
            socks.push(s);
        })));
        t.after(() => socks.forEach((s) => s.destroy()));
        const peak = fds();
        const u0 = Date.now();
        const fresh = await UnixClient.connect(d.socket);
        assert.equal((await fresh.call('system.hello')).result.endpoint, 'unix', 'a new Unix-socket client is served during the flood');
        fresh.close();
        const unixMs = Date.now() - u0;
        const l0 = Date.now();
        await legit('case 12 (during the TCP flood)');
        const legitMs = Date.now() - l0;
        const end = Date.now() + 30000;
        while (closedByServer < socks.length && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
        assert.equal(closedByServer, socks.length, 'the daemon dropped every idle connection');
        const after = await waitFds(base, 10000);
        assert.equal(after, base, `file descriptors: ${base} before, ${after} after (peak ${peak})`);
        assert.equal(afterWss, base);
        await legit('case 12 (after)');
        verdict(12, 'connection flood',
            `refused: ${N} WSS connections at once with limits.connections ${CONNECTIONS}: ${tally.served} served, ${tally['close 1013']} closed 1013; ` +
            `1200 idle TCP connections: all dropped by the handshake timeout; meanwhile a new Unix-socket client was served in ${unixMs} ms and a new WSS client ` +
            `was served after ${legitMs} ms (held off until the timeout freed the accept queue when the flood exceeds what libwebsockets accepts at once); ` +
            `fds ${base} before, peak ${peak}, ${after} after`);
    });

    // WEAKNESS found by this suite (reported to the lead, not fixed here): sessions of origins
    // that are merely `pairable` count against limits.connections, which covers every endpoint.
    // Any web page the user visits (pairing is on by default) may try to hold limits.connections
    // WebSockets open. Found by this suite: that used to lock the portals (WSS) and the Unix socket
    // (ukeyctl, and ukeyd-nm: the extension path) out until the tab closed. Now sessions of
    // origins not approved have a small budget of their own (2 per origin, 8 in all) and part of
    // the limit is kept for the local tools (daemon/rpc/uk_rpc.c, session_room).
    await t.test('case 13: a foreign page holds WebSockets open (pairable sessions)', async (st) => {
        const p = await openPage(`${FOREIGN}/page`);
        const N = CONNECTIONS + 16;
        const held = await p.evaluate(([u, n]) => Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
            const w = new WebSocket(u);
            (window.held ||= []).push(w);
            w.onopen = () => resolve('open');
            w.onclose = (e) => resolve(`close ${e.code}`);
        }))).then((r) => r.reduce((a, x) => ((a[x] = (a[x] || 0) + 1), a), {})), [wss, N]);
        // Some of those opened are closed right away with 1013 (over the limit): count what stays.
        await new Promise((r) => setTimeout(r, 500));
        const holding = await p.evaluate(() => window.held.filter((w) => w.readyState === 1).length);
        const w = await WssClient.open(d.port, { origin: ALLOWED, ca: d.ca });
        const a = await w.call('system.hello', undefined, 'while-held');
        const portal = a ? 'served' : `closed ${w.closeInfo.code}`;
        if (a) await w.close();
        const u = await UnixClient.connect(d.socket);
        const ua = await u.call('system.hello');
        const unixNow = ua ? 'served' : 'closed';
        u.close();
        await p.evaluate((m) => { document.getElementById('out').textContent = m; },
            `this foreign page holds ${holding} WebSockets (pairable sessions)\nthe allowed portal over WSS: ${portal}\nthe Unix socket (ukeyctl, ukeyd-nm): ${unixNow}`);
        await shot(p, '13-foreign-page-holds-connections');
        await p.close();
        // The daemon recovers once the tab is gone (10 s is a generous bound).
        for (let k = 0; k < 100; k++) {
            const c = await WssClient.open(d.port, { origin: ALLOWED, ca: d.ca });
            const ok = await c.call('system.hello', undefined, 'after-held');
            if (ok) {
                await c.close();
                break;
            }
            await new Promise((r) => setTimeout(r, 100));
        }
        await legit('case 13 (after the tab closed)');
        const fine = portal === 'served' && unixNow === 'served';
        verdict(13, 'a foreign page holds WebSockets open',
            `${fine ? 'refused' : 'NOT REFUSED (WEAKNESS)'}: the page opened ${JSON.stringify(held)} and kept ${holding} pairable sessions; ` +
            `meanwhile the allowed portal over WSS was ${portal} and the Unix socket (ukeyctl, ukeyd-nm) ${unixNow}; back to normal once the tab closed`);
        await st.test('the allowed origin and the Unix socket keep working while a foreign page holds connections', () => {
            assert.equal(portal, 'served', 'the allowed portal over WSS');
            assert.equal(unixNow, 'served', 'the Unix socket (ukeyctl, ukeyd-nm)');
        });
    });

    await t.test('the legitimate page in Chromium still works at the end', async () => {
        const p = await openPage(`${ALLOWED}/page`);
        assert.deepEqual((await wsOpen(p, wss)).events, ['open']);
        const certs = await wsCall(p, 'cert.list', { token });
        assert.equal(certs.result.certificates.length, 2);
        await shot(p, 'legit-after-all');
        await p.close();
    });

    await ctx.close();
    await browser.close();
    local.close();
    await d.stop(); // exit 0 after SIGTERM, clean log (no sanitizer report, no error line)
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log('# ---- attack suite verdicts ----');
    for (const v of verdicts) console.log(`# case ${String(v.n).padStart(2)} | ${v.what} | ${v.text}`);
    console.log(`# ${verdicts.length} cases in ${secs} s`);
});
