'use strict';
// The WSS gate over real TLS against the real daemon: the Origin matrix and the Host matrix
// (refused with 403 before the upgrade, logged; with pairing on, well-formed unlisted origins are let
// in for hello and pair only), the listening address (127.0.0.1 only), the port
// fallback and its publication, and SIGHUP re-reading the origins.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const path = require('node:path');
const { Ukeyd, WssClient, rawUpgrade, upgradeHeaders, listeners, freePort, once, UnixClient } = require('./lib/ukeyd');

const PORTAL = 'https://portal.example.cn';
const LOCAL_PAGE = 'http://127.0.0.1:18080';
const IDN_PORTAL = 'https://xn--fiqs8s.example'; // 中国.example in its punycode form
const ORIGINS = [PORTAL, LOCAL_PAGE, IDN_PORTAL];

// [what, Origin header value (null: no header), allowed]
const ORIGIN_MATRIX = [
    ['allowed https origin', PORTAL, true],
    ['allowed http origin with port', LOCAL_PAGE, true],
    ['allowed IDN origin (punycode)', IDN_PORTAL, true],
    ['other port', 'https://portal.example.cn:8443', false],
    ['default port written out', 'https://portal.example.cn:443', false],
    ['other port for the http origin', 'http://127.0.0.1:18081', false],
    ['http instead of https', 'http://portal.example.cn', false],
    ['https instead of http', 'https://127.0.0.1:18080', false],
    ['other scheme (wss)', 'wss://portal.example.cn', false],
    ['other scheme (file)', 'file://portal.example.cn', false],
    ['other scheme (chrome-extension)', 'chrome-extension://abcdefghijklmnopabcdefghijklmnop', false],
    ['uppercase host', 'https://PORTAL.example.cn', false],
    ['uppercase scheme', 'HTTPS://portal.example.cn', false],
    ['trailing dot', 'https://portal.example.cn.', false],
    ['userinfo', 'https://user@portal.example.cn', false],
    ['userinfo with password', 'https://user:pw@portal.example.cn', false],
    ['allowed origin as userinfo of another host', 'https://portal.example.cn@evil.example', false],
    ['IDN in Unicode (raw UTF-8 bytes)', Buffer.from('https://中国.example', 'utf8'), false],
    ['IDN homograph of the portal', Buffer.from('https://pοrtal.example.cn', 'utf8'), false],
    ['null', 'null', false],
    ['missing', null, false],
    ['empty', '', false],
    ['trailing slash', 'https://portal.example.cn/', false],
    ['path', 'https://portal.example.cn/login', false],
    ['query', 'https://portal.example.cn?x=1', false],
    ['suffix of an allowed host', 'https://portal.example.cn.evil.example', false],
    ['prefix of an allowed host', 'https://evilportal.example.cn', false],
    ['subdomain of an allowed host', 'https://a.portal.example.cn', false],
    ['wildcard', 'https://*.example.cn', false],
    ['percent-encoded host', 'https://portal%2eexample.cn', false],
    ['text after the origin', ' https://portal.example.cn x', false],
    ['two origins in one header', `${PORTAL} https://evil.example`, false],
    ['127.1 shorthand', 'http://127.1:18080', false],
    ['very long origin', `https://${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.example`, false],
];

// With pairing off, the allowlist is all there is (an administrator's choice).
test('origin matrix: only exact allowlisted origins are upgraded; the rest get 403 before the upgrade', async (t) => {
    const d = await new Ukeyd(t, { origins: ORIGINS, config: { pairing: false } }).start();
    const ca = d.ca;
    let refused = 0;
    for (const [what, origin, allowed] of ORIGIN_MATRIX) {
        await t.test(what, async () => {
            const before = d.count(/refused: endpoint=wss/);
            const r = await rawUpgrade(d.port, upgradeHeaders(d.port, { origin: origin === null ? null : origin }), { ca });
            if (allowed) {
                assert.equal(r.status, 101, `${what}: ${r.head}`);
            } else {
                assert.equal(r.status, 403, `${what}: ${r.head}`);
                assert.doesNotMatch(r.head, /^upgrade:/im, 'no upgrade on a refusal');
                refused++;
                // Logged, with endpoint, origin and reason (exactly once each: counted at the end).
                const last = (await d.waitCount(/refused: endpoint=wss/, before + 1))[before];
                assert.match(last, /reason=ORIGIN_NOT_ALLOWED/);
                if (origin === null) assert.match(last, /origin=\(none\)/);
            }
        });
    }
    // Two Origin headers (the allowed one first or last) are refused, as is a header name in
    // another case only when its value is wrong (header names are case-insensitive).
    for (const order of ['allowed first', 'allowed last']) {
        await t.test(`two Origin headers, ${order}`, async () => {
            const good = upgradeHeaders(d.port, { origin: PORTAL });
            const evil = ['Origin', 'https://evil.example'];
            const r = await rawUpgrade(d.port, order === 'allowed first' ? [...good, evil] : [evil, ...good], { ca });
            assert.equal(r.status, 403, r.head);
            refused++;
        });
    }
    await t.test('header name in lowercase', async () => {
        const r = await rawUpgrade(d.port, [...upgradeHeaders(d.port), ['origin', PORTAL]], { ca });
        assert.equal(r.status, 101, r.head);
    });
    // The same through a real WebSocket client: open for an allowed origin, 403 otherwise.
    const ok = await WssClient.open(d.port, { origin: PORTAL, ca });
    const hello = await ok.call('system.hello');
    assert.equal(hello.result.origin, PORTAL);
    assert.equal(hello.result.endpoint, 'wss');
    await ok.close();
    await assert.rejects(WssClient.open(d.port, { origin: 'https://evil.example', ca }), (e) => e.status === 403);
    await d.stop();
    // One log line per refusal, no more.
    assert.equal(d.count(/refused: endpoint=wss/), refused + 1);
});

test('host matrix: 127.0.0.1:PORT and localhost:PORT only (DNS rebinding)', async (t) => {
    const d = await new Ukeyd(t, { origins: [PORTAL] }).start();
    const p = d.port;
    const other = p === 65535 ? p - 1 : p + 1;
    const HOSTS = [
        [`127.0.0.1:${p}`, true],
        [`localhost:${p}`, true],
        ['127.0.0.1', false],
        ['localhost', false],
        [`127.0.0.1:${other}`, false],
        [`localhost:${other}`, false],
        [`LOCALHOST:${p}`, false],
        [`Localhost:${p}`, false],
        [`localhost.:${p}`, false],
        [`evil.example:${p}`, false],
        [`localhost.evil.example:${p}`, false],
        [`127.0.0.1.nip.io:${p}`, false],
        [`[::1]:${p}`, false],
        [`127.1:${p}`, false],
        [`0.0.0.0:${p}`, false],
        [`127.0.0.2:${p}`, false],
        [`2130706433:${p}`, false],
        [`127.0.0.1:0${p}`, false],
        [`127.0.0.1:${p} `, false],
        [`user@127.0.0.1:${p}`, false],
        ['', false],
        [null, false],
    ];
    for (const [host, allowed] of HOSTS) {
        await t.test(`Host ${JSON.stringify(host)}`, async () => {
            const before = d.count(/refused: endpoint=wss/);
            const r = await rawUpgrade(p, upgradeHeaders(p, { origin: PORTAL, host }), { ca: d.ca });
            if (allowed) {
                assert.equal(r.status, 101, r.head);
            } else {
                assert.equal(r.status, 403, r.head);
                assert.doesNotMatch(r.head, /^upgrade:/im);
                if (r.status === 403) {
                    const line = (await d.waitCount(/refused: endpoint=wss/, before + 1))[before];
                    assert.match(line, /reason=HOST_NOT_ALLOWED/);
                }
            }
        });
    }
    // Two Host headers, the good one first or second: refused.
    for (const order of ['good first', 'good last']) {
        await t.test(`two Host headers, ${order}`, async () => {
            const good = upgradeHeaders(p, { origin: PORTAL });
            const evil = ['Host', `evil.example:${p}`];
            const r = await rawUpgrade(p, order === 'good first' ? [...good, evil] : [evil, ...good], { ca: d.ca });
            assert.equal(r.status, 403, r.head);
        });
    }
    await d.stop();
});

// Pairing on (the default): an unlisted but well-formed web origin passes the gate as "pairable"
// and may only say hello and ask the user (tests/daemon/security.test.js has the rest); anything
// malformed, and plain http on a network host, is still refused before the upgrade.
test('with pairing on, well-formed unlisted origins are upgraded as pairable; malformed ones still get 403', async (t) => {
    const d = await new Ukeyd(t, { origins: ORIGINS }).start();
    for (const origin of ['https://portal.example.cn:8443', 'http://127.0.0.1:18081', 'https://evilportal.example.cn', 'https://127.0.0.1:18080']) {
        const w = await WssClient.open(d.port, { origin, ca: d.ca });
        const hello = (await w.call('system.hello')).result;
        assert.equal(hello.access, 'pairable', origin);
        assert.deepEqual([...hello.methods].sort(), ['system.hello', 'system.pair'], origin);
        assert.equal((await w.call('token.list')).error.data.reason, 'NOT_PAIRED', origin);
        await w.close();
    }
    for (const origin of ['null', 'http://portal.example.cn', 'https://portal.example.cn/', 'https://PORTAL.example.cn',
        'https://portal.example.cn:443', 'chrome-extension://abcdefghijklmnopabcdefghijklmnop', 'file://'])
        await assert.rejects(WssClient.open(d.port, { origin, ca: d.ca }), (e) => e.status === 403, origin);
    await d.stop();
});

test('a plain HTTP request (not an upgrade) gets 404: there is no HTTP API', async (t) => {
    const d = await new Ukeyd(t, { origins: [PORTAL] }).start();
    const r = await rawUpgrade(d.port, [['Host', `127.0.0.1:${d.port}`], ['Origin', PORTAL]], { ca: d.ca });
    assert.equal(r.status, 404, r.head);
    await d.stop();
});

// Resolves {protocol, alpn} of a TLS handshake with these options, or {error}.
function handshake(port, opts) {
    return new Promise((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, ...opts }, () => {
            resolve({ protocol: s.getProtocol(), alpn: s.alpnProtocol });
            s.destroy();
        });
        s.on('error', (e) => resolve({ error: e.code }));
    });
}

test('TLS only, HTTP/1.1 only, TLS 1.2 or later', async (t) => {
    const d = await new Ukeyd(t, { origins: [PORTAL] }).start();
    // A plain-text upgrade on the TLS port is never answered over HTTP.
    const plain = await new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: d.port }, () =>
            s.write(upgradeHeaders(d.port, { origin: PORTAL }).reduce((a, [k, v]) => `${a}${k}: ${v}\r\n`, 'GET / HTTP/1.1\r\n') + '\r\n'),
        );
        let got = '';
        s.on('data', (x) => (got += x.toString('latin1')));
        s.on('error', () => {});
        s.on('close', () => resolve(got));
    });
    assert.doesNotMatch(plain, /^HTTP\//, 'no HTTP answer without TLS');
    // No HTTP/2: upgrades go through the one HTTP/1.1 gate.
    assert.equal((await handshake(d.port, { ca: d.ca, ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'http/1.1');
    assert.notEqual((await handshake(d.port, { ca: d.ca, ALPNProtocols: ['h2'] })).alpn, 'h2');
    // Old protocol versions are refused; the default is TLS 1.3.
    assert.ok((await handshake(d.port, { ca: d.ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).error);
    assert.equal((await handshake(d.port, { ca: d.ca })).protocol, 'TLSv1.3');
    // The certificate is for 127.0.0.1 (checked by the handshake against the CA) and localhost.
    assert.equal((await handshake(d.port, { ca: d.ca, servername: 'localhost' })).protocol, 'TLSv1.3');
    assert.ok((await handshake(d.port, { ca: d.ca, servername: 'evil.example' })).error, 'not valid for another name');
    await d.stop();
});

test('the WSS socket listens on 127.0.0.1 only (no [::], no 0.0.0.0)', async (t) => {
    const d = await new Ukeyd(t, { origins: [PORTAL] }).start();
    const l = listeners(d.port);
    assert.deepEqual(l, [{ family: 4, addr: '0100007F' }], `listening sockets on ${d.port}: ${JSON.stringify(l)}`);
    // And it is not reachable through another local address.
    const other = await new Promise((resolve) => {
        const s = net.connect({ host: '::1', port: d.port });
        s.once('connect', () => (s.destroy(), resolve('connected')));
        s.once('error', (e) => resolve(e.code));
    });
    assert.notEqual(other, 'connected', 'not reachable on [::1]');
    await d.stop();
});

test('port fallback: with wss_port taken the daemon takes the next, publishes it, and removes the file at exit', async (t) => {
    // Occupy the first port the way another vendor's helper would.
    const first = await freePort();
    const squatter = net.createServer();
    squatter.listen({ host: '127.0.0.1', port: first });
    await once(squatter, 'listening');
    t.after(() => squatter.close());
    const second = await freePort([first]);
    const third = await freePort([first, second]);
    const d = await new Ukeyd(t, { origins: [PORTAL], port: first, fallback: [second, third] }).start();
    assert.equal(d.port, first);
    assert.match(d.log, new RegExp(`port ${first} is taken`));
    const portFile = path.join(d.runtimeDir, 'wss-port');
    assert.equal(fs.readFileSync(portFile, 'utf8'), `${second}\n`);
    const c = await UnixClient.connect(d.socket);
    const hello = await c.call('system.hello');
    assert.equal(hello.result.wss_port, second);
    c.close();
    assert.deepEqual(listeners(second), [{ family: 4, addr: '0100007F' }]);
    const w = await WssClient.open(second, { origin: PORTAL, ca: d.ca });
    assert.equal((await w.call('system.hello')).result.wss_port, second);
    await w.close();
    await d.stop();
    assert.equal(fs.existsSync(portFile), false, 'the port file is removed at exit');
});

test('every WSS port taken: ukeyd refuses to start, says why, exits 1', async (t) => {
    const port = await freePort();
    const squatter = net.createServer();
    squatter.listen({ host: '127.0.0.1', port });
    await once(squatter, 'listening');
    t.after(() => squatter.close());
    const d = new Ukeyd(t, { origins: [PORTAL], port, fallback: [] });
    d.port = port;
    d.fallback = [];
    d.writeConfig();
    assert.equal(await d.spawn(), 'exited');
    await d.stderrDone;
    assert.deepEqual(d.exit, { code: 1, signal: null });
    assert.match(d.log, /every port is taken/);
    assert.match(d.log, /start-up failed: BUSY/);
    assert.doesNotMatch(d.log, /ERROR: \w+Sanitizer|runtime error:/);
    assert.equal(fs.existsSync(d.socket), false, 'the socket is removed again');
});

test('SIGHUP re-reads the origins: a new origin is accepted, a removed one refused, also on open connections', async (t) => {
    const NEW = 'https://new-portal.example.cn';
    const d = await new Ukeyd(t, { origins: [PORTAL], config: { pairing: false } }).start();
    await assert.rejects(WssClient.open(d.port, { origin: NEW, ca: d.ca }), (e) => e.status === 403);
    const kept = await WssClient.open(d.port, { origin: PORTAL, ca: d.ca });
    d.writeConfig({ origins: [NEW] });
    d.signal('SIGHUP');
    await d.waitLog(/SIGHUP: reloaded 1 origins/);
    const c = await WssClient.open(d.port, { origin: NEW, ca: d.ca });
    const hello = await c.call('system.hello');
    assert.equal(hello.result.origin, NEW);
    await c.close();
    await assert.rejects(WssClient.open(d.port, { origin: PORTAL, ca: d.ca }), (e) => e.status === 403);
    // Access is decided per request: the connection opened before the reload is refused now.
    assert.equal((await kept.call('token.list')).error.data.reason, 'ORIGIN_NOT_ALLOWED');
    await kept.close();
    // A broken file on SIGHUP keeps the current origins.
    fs.writeFileSync(d.configPath, '{"origins": ["HTTPS://Bad.example/"]}');
    d.allowError(/config|SIGHUP|origin/i);
    d.signal('SIGHUP');
    await d.waitLog(/SIGHUP: the (configuration has errors|new origins are invalid)/);
    const still = await WssClient.open(d.port, { origin: NEW, ca: d.ca });
    await still.close();
    await d.stop();
});
