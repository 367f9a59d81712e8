'use strict';
// The demo portal's HTTP side (examples/portal/server.js), without a browser or a key: login
// (scrypt, HttpOnly SameSite=Strict cookie, lock-out), CSRF, security headers, static files
// without traversal, body limits, /test/* only in test mode, the four renewal steps with a
// software "key" (a CSR signed by openssl), 验证签章 with the origin and a single-use nonce, seals.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { PORTAL, tempDir, newKey, csr, certFor } = require('./lib');
const { Portal, DEMO } = require(path.join(PORTAL, 'server.js'));
const { challengeMessage } = require(path.join(PORTAL, 'verify.js'));
const { sampleSeal, encodeRgba } = require(path.join(PORTAL, 'png.js'));

const CARD = '10203040';

function request(port, method, p, { body, headers = {}, raw } = {}) {
    return new Promise((resolve, reject) => {
        const data = raw !== undefined ? raw : body === undefined ? null : Buffer.from(JSON.stringify(body));
        const h = { ...headers };
        if (data && !('content-type' in h)) h['content-type'] = 'application/json';
        const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h }, (res) => {
            const parts = [];
            res.on('data', (d) => parts.push(d));
            res.on('end', () => {
                const buf = Buffer.concat(parts);
                let json = null;
                try {
                    json = JSON.parse(buf.toString('utf8'));
                } catch {
                    /* not JSON */
                }
                resolve({ status: res.statusCode, headers: res.headers, body: buf, json });
            });
        });
        req.on('error', reject);
        if (data) req.write(data);
        req.end();
    });
}

// A logged-in client: cookie + CSRF token, Origin as a browser sends it.
class Client {
    constructor(port) {
        this.port = port;
        this.origin = `http://127.0.0.1:${port}`;
        this.cookie = '';
        this.csrf = '';
    }

    async login(account = DEMO.account, password = DEMO.password) {
        const r = await request(this.port, 'POST', '/api/login', { body: { account, password }, headers: { origin: this.origin } });
        if (r.status === 200) {
            this.cookie = r.headers['set-cookie'][0].split(';')[0];
            this.csrf = r.json.csrf;
        }
        return r;
    }

    get(p) {
        return request(this.port, 'GET', p, { headers: { cookie: this.cookie } });
    }

    post(p, body, headers = {}) {
        return request(this.port, 'POST', p, { body, headers: { cookie: this.cookie, 'x-csrf-token': this.csrf, origin: this.origin, ...headers } });
    }
}

async function start(t, opts = {}) {
    const dir = tempDir(t);
    const portal = new Portal({ dataDir: path.join(dir, 'data'), port: 0, testMode: true, log: () => {}, ...opts });
    await portal.init();
    const lines = [];
    portal.log = (l) => lines.push(l);
    await portal.listen();
    t.after(() => portal.close());
    return { dir, portal, port: portal.port, lines };
}

// Enrolls a software "card": key + certificate from the portal's CA.
function enrollCard(portal, dir, { alg = 'ec', fromDays = -345, toDays = 20 } = {}) {
    const key = newKey(dir, `card-${Math.random().toString(36).slice(2)}`, alg);
    const pem = certFor(dir, portal.ca.dir, key, { fromDays, toDays });
    portal.store.enroll(CARD, '9a', pem, DEMO.account);
    return { key, pem, fingerprint: new crypto.X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase() };
}

test('login: wrong password refused, then a HttpOnly SameSite=Strict session; lock-out after 5 failures; logout', async (t) => {
    const { port, portal } = await start(t);
    const c = new Client(port);
    let r = await c.login(DEMO.account, 'wrong');
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'LOGIN_FAILED');
    assert.equal(r.json.error.message['zh-CN'], '账号或密码错误。');
    r = await c.login();
    assert.equal(r.status, 200);
    const cookie = r.headers['set-cookie'][0];
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.match(cookie, /Path=\//);
    r = await c.get('/api/session');
    assert.equal(r.json.account, 'demo');
    assert.equal(r.json.name, '张三');
    // The password is stored as an scrypt hash only.
    const rec = JSON.parse(fs.readFileSync(portal.store.file, 'utf8')).accounts.demo;
    assert.ok(rec.hash && rec.salt && !JSON.stringify(rec).includes(DEMO.password));
    for (let i = 0; i < 5; i++) await new Client(port).login(DEMO.account, 'nope');
    r = await new Client(port).login();
    assert.equal(r.status, 429, 'locked for a minute');
    assert.equal((await c.post('/api/logout', {})).status, 200);
    assert.equal((await c.get('/api/session')).status, 401);
});

test('CSRF: POSTs need the session token, JSON and our Origin', async (t) => {
    const { port } = await start(t);
    const c = new Client(port);
    await c.login();
    assert.equal((await c.post('/api/renewal/sms', { flow: 'x' }, { 'x-csrf-token': 'forged' })).status, 403);
    assert.equal((await c.post('/api/renewal/sms', { flow: 'x' }, { origin: 'https://evil.example' })).status, 403);
    const form = await request(port, 'POST', '/api/renewal/sms', { raw: 'flow=x', headers: { cookie: c.cookie, 'x-csrf-token': c.csrf, 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 400);
    assert.equal((await c.post('/api/renewal/sms', { flow: 'x' })).json.error.code, 'FLOW_UNKNOWN', 'with the token it reaches the handler');
    assert.equal((await request(port, 'GET', '/api/certs')).status, 401, 'no session, no data');
});

test('headers, static files, no traversal, body limits, test endpoints only in test mode', async (t) => {
    const { port, dir } = await start(t);
    let r = await request(port, 'GET', '/login.html');
    assert.equal(r.status, 200);
    const csp = r.headers['content-security-policy'];
    assert.match(csp, /connect-src 'self' wss:\/\/127\.0\.0\.1:\*/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.match(r.headers['content-type'], /text\/html/);
    assert.match((await request(port, 'GET', '/js/common.js')).headers['content-type'], /javascript/);
    for (const p of ['/../server.js', '/%2e%2e/server.js', '/js/..%2f..%2fserver.js', '/..%5cserver.js', '/%2e%2e%2f%2e%2e%2fpackage.json', '/js/%00x', '/.hidden', '/sdk/../../../etc/passwd', '/sdk/%2e%2e/%2e%2e/README.md'])
        assert.equal((await request(port, 'GET', p)).status === 200, false, `${p} must not be served`);
    r = await request(port, 'GET', '/sdk/ukey.js');
    assert.ok(r.status === 200 || r.status === 404, 'the SDK is served from extension/sdk when present');
    const c = new Client(port);
    await c.login();
    r = await c.post('/api/renewal/sms', { flow: 'x'.repeat(20000) });
    assert.equal(r.status, 413);
    assert.equal((await request(port, 'GET', '/test/sms-code?card=1')).status, 404, 'no code yet');
    // Without --test-mode there is no /test/*.
    const p2 = new Portal({ dataDir: path.join(dir, 'd2'), port: 0, log: () => {} });
    await p2.init();
    await p2.listen();
    t.after(() => p2.close());
    assert.equal((await request(p2.port, 'GET', '/test/sms-code?card=1')).json.error.code, 'NOT_FOUND');
    assert.equal((await request(p2.port, 'POST', '/test/ca', { body: { refuse: true } })).status, 404);
    assert.equal(p2.ca.refuse, false);
});

test('the four steps through the API: record check, SMS (wrong, then right), CSR checked, CA issues, complete', async (t) => {
    const { port, portal, dir, lines } = await start(t);
    const card = enrollCard(portal, dir);
    const c = new Client(port);
    await c.login();
    let r = await c.get('/api/certs');
    assert.equal(r.json.cards[0].card, CARD);
    assert.equal(r.json.cards[0].certificates[0].status, 'expiring');

    // Step 1: the key's certificate must be the one on record; mode must fit the status.
    r = await c.post('/api/renewal/start', { card: CARD, slot: '9a', mode: 'extend', fingerprint: 'ab'.repeat(32) });
    assert.equal(r.json.error.code, 'CERT_MISMATCH');
    r = await c.post('/api/renewal/start', { card: CARD, slot: '9a', mode: 'repair', fingerprint: card.fingerprint });
    assert.equal(r.json.error.code, 'USE_EXTEND');
    r = await c.post('/api/renewal/start', { card: '99999999', slot: '9a', mode: 'extend', fingerprint: card.fingerprint });
    assert.equal(r.json.error.code, 'CARD_UNKNOWN');
    r = await c.post('/api/renewal/start', { card: CARD, slot: '9a', mode: 'extend', fingerprint: card.fingerprint });
    assert.equal(r.status, 200);
    const flow = r.json.flow;
    assert.equal(r.json.phone, '138****8000');

    // Steps out of order are refused.
    assert.equal((await c.post('/api/renewal/csr', { flow, renewal_id: 'x', csr_pem: 'x' })).json.error.code, 'STEP_ORDER');
    assert.equal((await c.post('/api/renewal/issue', { flow })).json.error.code, 'STEP_ORDER');

    // Step 2: the code is in the log (and the test endpoint).
    assert.equal((await c.post('/api/renewal/sms', { flow })).status, 200);
    const code = (await request(port, 'GET', `/test/sms-code?card=${CARD}`)).json.code;
    assert.ok(lines.some((l) => l.includes(code) && l.includes('138****8000')), 'the SMS went to the log');
    r = await c.post('/api/renewal/verify-sms', { flow, code: code === '000000' ? '111111' : '000000' });
    assert.equal(r.json.error.code, 'SMS_WRONG');
    assert.equal(r.json.error.tries_left, 4);
    assert.match(r.json.error.message['zh-CN'], /短信验证码错误/);
    assert.equal((await c.post('/api/renewal/verify-sms', { flow, code })).json.verified, true);

    // Step 3: a request for another subject is refused; the right one accepted.
    const newKeyFile = newKey(dir, 'new', 'ec');
    r = await c.post('/api/renewal/csr', { flow, renewal_id: 'r1', csr_pem: csr(dir, newKeyFile, '/C=CN/O=NHSA/CN=李四') });
    assert.equal(r.json.error.code, 'SUBJECT_MISMATCH');
    assert.equal((await c.post('/api/renewal/csr', { flow, renewal_id: 'r1', csr_pem: csr(dir, newKeyFile) })).json.accepted, true);

    // Step 4: refused by the CA (test switch), then issued; asking again answers the same one.
    assert.equal((await request(port, 'POST', '/test/ca', { body: { refuse: true } })).json.refuse, true);
    r = await c.post('/api/renewal/issue', { flow });
    assert.equal(r.json.error.code, 'CA_REFUSED');
    await request(port, 'POST', '/test/ca', { body: { refuse: false } });
    r = await c.post('/api/renewal/issue', { flow });
    assert.equal(r.status, 200);
    const issued = new crypto.X509Certificate(r.json.certificate);
    assert.equal((await c.post('/api/renewal/issue', { flow })).json.certificate, r.json.certificate);
    assert.ok(issued.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(newKeyFile))));
    r = await c.post('/api/renewal/complete', { flow, state: 'done' });
    assert.equal(r.json.certificate.state, 'active');
    r = await c.get('/api/certs');
    const list = r.json.cards[0].certificates;
    assert.equal(list.length, 1);
    assert.equal(list[0].serial, issued.serialNumber.toLowerCase());
    assert.equal(list[0].status, 'valid');
    assert.equal((await c.post('/api/renewal/sms', { flow })).json.error.code, 'FLOW_UNKNOWN', 'a finished flow is gone');
});

test('not yet valid: the CA starts tomorrow; the record is pending until then (test clock)', async (t) => {
    const { port, portal, dir } = await start(t);
    const card = enrollCard(portal, dir);
    const c = new Client(port);
    await c.login();
    await request(port, 'POST', '/test/ca', { body: { start: 'tomorrow' } });
    const flow = (await c.post('/api/renewal/start', { card: CARD, slot: '9a', mode: 'extend', fingerprint: card.fingerprint })).json.flow;
    await c.post('/api/renewal/sms', { flow });
    await c.post('/api/renewal/verify-sms', { flow, code: (await request(port, 'GET', `/test/sms-code?card=${CARD}`)).json.code });
    await c.post('/api/renewal/csr', { flow, renewal_id: 'r', csr_pem: csr(dir, newKey(dir, 'n', 'ec')) });
    const r = await c.post('/api/renewal/issue', { flow });
    assert.equal(r.json.issued.status, 'not_yet_valid');
    assert.equal((await c.post('/api/renewal/complete', { flow, state: 'written' })).json.certificate.state, 'pending');
    let list = (await c.get('/api/certs')).json.cards[0].certificates;
    assert.deepEqual(list.map((x) => x.state).sort(), ['active', 'pending']);
    // A second extension is refused while one is pending.
    const again = await c.post('/api/renewal/start', { card: CARD, slot: '9a', mode: 'extend', fingerprint: card.fingerprint });
    assert.equal(again.json.error.code, 'ALREADY_RENEWED');
    await request(port, 'POST', '/test/clock', { body: { offset_ms: 2 * 86400000 } });
    list = (await c.get('/api/certs')).json.cards[0].certificates;
    assert.equal(list.length, 1);
    assert.equal(list[0].serial, new crypto.X509Certificate(r.json.certificate).serialNumber.toLowerCase());
});

test('repair: only for an expired certificate', async (t) => {
    const { port, portal, dir } = await start(t);
    const card = enrollCard(portal, dir, { fromDays: -366, toDays: -1 });
    const c = new Client(port);
    await c.login();
    assert.equal((await c.get('/api/certs')).json.cards[0].certificates[0].status, 'expired');
    assert.equal((await c.post('/api/renewal/start', { card: CARD, slot: '9a', mode: 'extend', fingerprint: card.fingerprint })).json.error.code, 'USE_REPAIR');
    assert.equal((await c.post('/api/renewal/start', { card: CARD, slot: '9a', mode: 'repair', fingerprint: card.fingerprint })).status, 200);
});

test('verify signing: the origin and a single-use nonce; a signature for another site fails', async (t) => {
    const { port, portal, dir } = await start(t);
    const card = enrollCard(portal, dir);
    const key = crypto.createPrivateKey(fs.readFileSync(card.key));
    const c = new Client(port);
    await c.login();
    const sign = (origin, nonce) => crypto.sign('sha256', challengeMessage(origin, nonce), key).toString('base64');
    let n = (await c.get('/api/verify/nonce')).json;
    let r = await c.post('/api/verify', { card: CARD, key: '9a', nonce_id: n.nonce_id, algorithm: 'ECDSA-SHA256', signature: sign('https://evil.example', Buffer.from(n.nonce, 'base64')) });
    assert.equal(r.json.error.code, 'SIGNATURE_INVALID', 'made for another site');
    n = (await c.get('/api/verify/nonce')).json;
    const good = { card: CARD, key: '9a', nonce_id: n.nonce_id, algorithm: 'ECDSA-SHA256', signature: sign(c.origin, Buffer.from(n.nonce, 'base64')) };
    r = await c.post('/api/verify', good);
    assert.equal(r.json.ok, true);
    assert.equal(r.json.certificate.fingerprint, card.fingerprint);
    r = await c.post('/api/verify', good);
    assert.equal(r.json.error.code, 'NONCE', 'a nonce is used once');
});

test('seals: a transparent PNG is registered and listed with the manual\'s columns; bad images are refused', async (t) => {
    const { port, portal, dir } = await start(t);
    enrollCard(portal, dir);
    const c = new Client(port);
    await c.login();
    let r = await c.post('/api/seals', { type: '公章', name: '示例医药有限公司公章', card: CARD, image: encodeRgba(100, 100, () => [255, 255, 255, 255]).toString('base64') });
    assert.equal(r.json.error.code, 'SEAL_BACKGROUND');
    assert.match(r.json.error.message['zh-CN'], /背景必须透明/);
    r = await c.post('/api/seals', { type: '公章', name: 'x', card: '123', image: sampleSeal().toString('base64') });
    assert.equal(r.json.error.code, 'CARD_UNKNOWN');
    r = await c.post('/api/seals', { type: '公章', name: '示例医药有限公司公章', card: CARD, image: sampleSeal().toString('base64') });
    assert.equal(r.status, 200);
    const list = (await c.get('/api/seals')).json.seals;
    assert.equal(list.length, 1);
    for (const k of ['id', 'type', 'name', 'card', 'company', 'department', 'applicant', 'status']) assert.ok(list[0][k] !== undefined, k);
    const img = await c.get(`/api/seals/${list[0].id}.png`);
    assert.deepEqual(img.body, sampleSeal());
    assert.equal((await request(port, 'GET', `/api/seals/${list[0].id}.png`)).status, 401);
    assert.equal((await c.post('/api/seals/delete', { id: list[0].id })).status, 200);
    assert.equal((await c.get('/api/seals')).json.seals.length, 0);
});
