// The SDK without a browser: ids, timeouts, abort, disconnect, events, hello checks, messages
// with retries_left and dates in both languages, base64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ukey, UkeyError, connect, connectTransport, errorFromRpc, toBase64, fromBase64, EVENTS } from '../../extension/sdk/ukey.js';
import { FakeTransport, helloTransport } from './fake.mjs';

const HELLO = { name: 'ukeyd', protocol: 1, version: '0.1.0', endpoint: 'wss', origin: 'https://portal.example.cn' };
const rejection = (p) => p.then((v) => assert.fail(`resolved ${JSON.stringify(v)}`), (e) => e);

test('ids: one per call, unique per connection and between connections; answers map back by id', async () => {
    const t = new FakeTransport();
    const a = new Ukey(t);
    const b = new Ukey(new FakeTransport());
    const p1 = a.call('x.one', { n: 1 });
    const p2 = a.call('x.two');
    const [r1, r2] = [await t.next(), await t.next()];
    assert.deepEqual(Object.keys(r1).sort(), ['id', 'jsonrpc', 'method', 'params']);
    assert.deepEqual(Object.keys(r2).sort(), ['id', 'jsonrpc', 'method'], 'no params member when none is given');
    assert.notEqual(r1.id, r2.id);
    b.call('x').catch(() => {});
    assert.notEqual(b.transport.sent[0].id, r1.id, 'two SDK instances never share ids');
    assert.ok(typeof r1.id === 'string' && r1.id.length <= 128);
    // Answers out of order, one for an unknown id (ignored), a notification (not an answer).
    t.answer({ jsonrpc: '2.0', id: 'nobody', result: 0 });
    t.answer({ jsonrpc: '2.0', id: r2.id, result: { two: true } });
    t.answer({ jsonrpc: '2.0', id: r1.id, result: { one: true } });
    assert.deepEqual(await p2, { two: true });
    assert.deepEqual(await p1, { one: true });
    b.close();
});

test('timeout → TIMEOUT (retriable); a late answer is ignored', async () => {
    const t = new FakeTransport();
    const u = new Ukey(t, { timeoutMs: 30 });
    const e = await rejection(u.call('slow'));
    assert.equal(e.reason, 'TIMEOUT');
    assert.equal(e.retriable, true);
    assert.equal(e.data.method, 'slow');
    t.answer({ jsonrpc: '2.0', id: t.sent[0].id, result: {} }); // nothing happens
    const e2 = await rejection(u.call('slow', undefined, { timeoutMs: 10 }));
    assert.equal(e2.reason, 'TIMEOUT');
});

test('AbortSignal → CANCELLED, before or during the call', async () => {
    const t = new FakeTransport();
    const u = new Ukey(t);
    const ac = new AbortController();
    const p = u.call('sign', {}, { signal: ac.signal });
    ac.abort();
    assert.equal((await rejection(p)).reason, 'CANCELLED');
    const pre = new AbortController();
    pre.abort();
    assert.equal((await rejection(u.call('sign', {}, { signal: pre.signal }))).reason, 'CANCELLED');
    assert.equal(t.sent.length, 1, 'an already aborted call is not sent');
});

test('the connection drops: pending calls and later calls reject with DAEMON_UNAVAILABLE; close listeners run', async () => {
    const t = new FakeTransport();
    const u = new Ukey(t, { lang: 'zh-CN' });
    let closed = null;
    await u.on('close', (p) => (closed = p));
    const p = u.call('a');
    const q = u.call('b');
    t.drop();
    for (const e of [await rejection(p), await rejection(q), await rejection(u.call('c'))]) {
        assert.equal(e.reason, 'DAEMON_UNAVAILABLE');
        assert.equal(e.retriable, true);
        assert.match(e.message, /ukeyd/);
        assert.equal(e.lang, 'zh-CN');
    }
    assert.deepEqual(closed, { reason: 'DAEMON_UNAVAILABLE' });
});

test('events: subscribe lazily once, dispatch by name, off() stops them', async () => {
    const t = new FakeTransport();
    const u = new Ukey(t);
    const got = [];
    const fn = (p, m) => got.push([m, p]);
    const sub = u.on('inserted', fn);
    const s = await t.next();
    assert.equal(s.method, 'system.subscribe');
    assert.equal(s.params, undefined);
    t.answer({ jsonrpc: '2.0', id: s.id, result: { events: Object.values(EVENTS) } });
    await sub;
    await u.on('removed', fn);
    await u.on('token.changed', fn);
    await u.on('renewal', fn);
    assert.equal(t.sent.length, 1, 'one subscribe for all listeners');
    t.answer({ jsonrpc: '2.0', method: 'token.inserted', params: { token: { id: 'piv:1' } } });
    t.answer({ jsonrpc: '2.0', method: 'token.removed', params: { token: { id: 'piv:1' } } });
    t.answer({ jsonrpc: '2.0', method: 'renewal.changed', params: { renewal: { state: 'done' } } });
    t.answer({ jsonrpc: '2.0', method: 'something.else', params: {} });
    assert.deepEqual(got.map((g) => g[0]), ['token.inserted', 'token.removed', 'renewal.changed']);
    u.off('inserted', fn);
    t.answer({ jsonrpc: '2.0', method: 'token.inserted', params: {} });
    assert.equal(got.length, 3);
    assert.throws(() => u.on('nonsense', fn), TypeError);
});

test('a refused subscribe rejects on() and the next on() tries again', async () => {
    const t = new FakeTransport();
    const u = new Ukey(t);
    const p = u.on('inserted', () => {});
    const s = await t.next();
    t.answer({ jsonrpc: '2.0', id: s.id, error: { code: -32001, message: 'x', data: { reason: 'METHOD_NOT_ALLOWED', retriable: false } } });
    assert.equal((await rejection(p)).reason, 'METHOD_NOT_ALLOWED');
    u.on('removed', () => {}).catch(() => {});
    assert.equal((await t.next()).method, 'system.subscribe');
    u.close();
});

test('wrappers: tokens, certs, sign (base64 of bytes and strings), renewal, pair', async () => {
    const t = new FakeTransport();
    const u = new Ukey(t);
    const reply = async (result) => {
        const m = await t.next();
        t.answer({ jsonrpc: '2.0', id: m.id, result });
        return m;
    };
    let m;
    [, m] = await Promise.all([u.tokens(), reply({ tokens: [{ id: 'piv:1' }] })]);
    assert.equal(m.method, 'token.list');
    const [certs, mc] = await Promise.all([u.certs({ token: 'piv:1', der: true }), reply({ certificates: [{ key: '9a' }] })]);
    assert.deepEqual(certs, [{ key: '9a' }]);
    assert.deepEqual(mc.params, { token: 'piv:1', der: true });
    const [, ms] = await Promise.all([u.sign({ token: 'piv:1', key: '9a', algorithm: 'ECDSA-SHA256', data: '签名' }), reply({ signature: 'AA==' })]);
    assert.equal(ms.method, 'sign');
    assert.equal(ms.params.data, Buffer.from('签名', 'utf8').toString('base64'));
    const digest = new Uint8Array(32).fill(7);
    const [, md] = await Promise.all([u.sign({ token: 'piv:1', key: '9a', algorithm: 'ECDSA-SHA256', digest: digest.buffer }), reply({})]);
    assert.equal(md.params.digest, Buffer.from(digest).toString('base64'));
    assert.ok(!('data' in md.params));
    const [, mr] = await Promise.all([u.renewal.status('r1'), reply({ state: 'prepared' })]);
    assert.deepEqual([mr.method, mr.params], ['renewal.status', { renewal_id: 'r1' }]);
    const [list] = await Promise.all([u.renewal.list(), reply({ renewals: [1, 2] })]);
    assert.deepEqual(list, [1, 2]);
    const pairing = u.pair();
    const mp = await t.next();
    assert.equal(mp.method, 'system.pair');
    t.answer({ jsonrpc: '2.0', id: mp.id, result: {} });
    const mh = await t.next();
    t.answer({ jsonrpc: '2.0', id: mh.id, result: { ...HELLO, access: 'paired' } });
    assert.equal((await pairing).access, 'paired');
    assert.equal(u.hello.access, 'paired');
});

test('hello checks: VERSION_TOO_OLD, NOT_PAIRED with a connection to pair on, not ukeyd', async () => {
    const old = await rejection(connectTransport(helloTransport({ ...HELLO, protocol: 1 }), { minProtocol: 2, lang: 'en' }));
    assert.equal(old.reason, 'VERSION_TOO_OLD');
    assert.deepEqual([old.data.protocol, old.data.min_protocol], [1, 2]);
    const np = await rejection(connectTransport(helloTransport({ ...HELLO, access: 'pairable' }), { lang: 'zh-CN' }));
    assert.equal(np.reason, 'NOT_PAIRED');
    assert.match(np.message, /批准/);
    assert.ok(np.ukey instanceof Ukey && !np.ukey.closed);
    const other = await rejection(connectTransport(helloTransport({ name: 'something' })));
    assert.equal(other.reason, 'INTERNAL');
    const ok = await connectTransport(helloTransport({ ...HELLO, access: 'allowed' }), { path: 'wss' });
    assert.equal(ok.path, 'wss');
    assert.equal(ok.hello.access, 'allowed');
});

test('daemon errors keep their reason and messages; the SDK adds retries left and dates in both languages', () => {
    const pin = errorFromRpc({ code: -32020, message: 'The PIN is incorrect.', data: { reason: 'PIN_INCORRECT', retriable: true,
        message: { en: 'The PIN is incorrect.', 'zh-CN': 'PIN 码错误。' }, retries_left: 2 } }, 'zh-CN');
    assert.equal(pin.message, 'PIN 码错误，还剩 2 次机会。');
    assert.equal(pin.messages.en, 'The PIN is incorrect. 2 tries left.');
    assert.equal(pin.data.retries_left, 2);
    assert.equal(pin.text('en'), 'The PIN is incorrect. 2 tries left.');
    const one = errorFromRpc({ code: -32020, data: { reason: 'PIN_INCORRECT', retries_left: 1 } }, 'en');
    assert.equal(one.message, 'The PIN is incorrect. 1 try left.');
    const nyv = errorFromRpc({ code: -32030, data: { reason: 'NOT_YET_VALID', retriable: false, not_before: '2026-12-01T00:00:00Z' } }, 'zh-CN');
    assert.equal(nyv.message, '证书未生效，将于 2026-12-01 生效。');
    assert.equal(nyv.messages.en, 'The certificate is not valid yet; it becomes valid on 2026-12-01.');
    const nyv2 = errorFromRpc({ code: -32030, data: { reason: 'NOT_YET_VALID', valid_from: '2027-01-02T08:00:00Z' } }, 'en');
    assert.equal(nyv2.message, 'The certificate is not valid yet; it becomes valid on 2027-01-02.');
    const plain = errorFromRpc({ code: -32030, data: { reason: 'NOT_YET_VALID' } }, 'en');
    assert.equal(plain.message, 'The certificate is not valid yet.');
    const unknown = errorFromRpc({ code: -32099, message: 'new', data: { reason: 'SOMETHING_NEW', retriable: true,
        message: { en: 'Something new.', 'zh-CN': '新的。' } } }, 'en');
    assert.equal(unknown.reason, 'INTERNAL', 'an unknown reason is treated like INTERNAL');
    assert.equal(unknown.data.reason, 'SOMETHING_NEW');
    assert.equal(unknown.message, 'Something new.');
    assert.equal(unknown.retriable, true);
    const junk = errorFromRpc('junk', 'en');
    assert.equal(junk.reason, 'INTERNAL');
    assert.equal(junk.code, -32603);
});

test('SDK-side reasons have messages in both languages', () => {
    for (const r of ['EXTENSION_NOT_INSTALLED', 'DAEMON_UNAVAILABLE', 'LOCAL_NETWORK_BLOCKED', 'ORIGIN_NOT_ALLOWED', 'NOT_PAIRED', 'VERSION_TOO_OLD', 'TIMEOUT', 'CANCELLED', 'INTERNAL']) {
        const en = new UkeyError(r, { lang: 'en' });
        const zh = new UkeyError(r, { lang: 'zh-CN' });
        assert.ok(en.message.length > 10 && /[a-z]/.test(en.message), r);
        assert.match(zh.message, /[\u4e00-\u9fff]/, r);
        assert.equal(en.name, 'UkeyError');
        assert.ok(en instanceof Error);
    }
});

test('connect() without a window or WebSocket: DAEMON_UNAVAILABLE; with a WebSocket class, the first port that says ukeyd', async () => {
    const e = await rejection(connect({ lang: 'en', WebSocket: null, ports: [] }));
    assert.equal(e.reason, 'DAEMON_UNAVAILABLE');
    const opened = [];
    class FakeWS {
        constructor(url) {
            this.url = url;
            this.readyState = 0;
            opened.push(url);
            const port = Number(new URL(url).port);
            setTimeout(() => {
                if (port === 1) return this.onerror && this.onerror();
                this.readyState = 1;
                this.onopen && this.onopen();
            }, 1);
            this.port = port;
        }
        send(text) {
            const m = JSON.parse(text);
            const result = this.port === 2 ? { name: 'vendor-helper' } : HELLO;
            setTimeout(() => this.onmessage && this.onmessage({ data: JSON.stringify({ jsonrpc: '2.0', id: m.id, result }) }), 1);
        }
        close() {
            this.readyState = 3;
        }
    }
    const u = await connect({ WebSocket: FakeWS, ports: [1, 2, 3], lang: 'en' });
    assert.equal(u.path, 'wss');
    assert.deepEqual(opened, ['wss://127.0.0.1:1/', 'wss://127.0.0.1:2/', 'wss://127.0.0.1:3/']);
    assert.deepEqual(u.hello, HELLO);
});

test('base64 helpers', () => {
    assert.equal(toBase64('abc'), 'YWJj');
    assert.equal(toBase64(new Uint8Array([0, 255, 1])), Buffer.from([0, 255, 1]).toString('base64'));
    assert.equal(toBase64(new Uint8Array(100000).fill(65)), Buffer.alloc(100000, 65).toString('base64'));
    assert.deepEqual([...fromBase64('AP8B')], [0, 255, 1]);
    assert.throws(() => toBase64(42), TypeError);
});
