// The content script's checks (extension/bridge.js, shared with the service worker): which page
// messages are relayed, which are ignored, and the answers the extension builds itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const B = require('../../extension/bridge.js');

const WIN = { name: 'the page window' };
const ORIGIN = 'https://portal.example.cn';
const req = (rpc) => ({ ukeyd: 'request', rpc });
const good = { jsonrpc: '2.0', id: 1, method: 'cert.list', params: { token: 'piv:1' } };

test('only messages from this window and this origin are considered', () => {
    assert.equal(B.fromSamePage({ source: WIN, origin: ORIGIN }, WIN, ORIGIN), true);
    assert.equal(B.fromSamePage({ source: { other: 1 }, origin: ORIGIN }, WIN, ORIGIN), false, 'a frame or another window');
    assert.equal(B.fromSamePage({ source: WIN, origin: 'https://evil.example' }, WIN, ORIGIN), false);
    assert.equal(B.fromSamePage({ source: WIN, origin: 'null' }, WIN, 'null'), false, 'opaque origins never');
    assert.equal(B.fromSamePage({ source: null, origin: ORIGIN }, WIN, ORIGIN), false);
    assert.equal(B.fromSamePage(null, WIN, ORIGIN), false);
});

test('ping and well-formed requests are relayed', () => {
    assert.deepEqual(B.parsePageMessage({ ukeyd: 'ping' }), { kind: 'ping' });
    assert.deepEqual(B.parsePageMessage(req(good)), { kind: 'request', rpc: good });
    for (const rpc of [
        { jsonrpc: '2.0', id: 'a', method: 'system.hello' },
        { jsonrpc: '2.0', id: 0, method: 'x', params: [] },
        { jsonrpc: '2.0', id: -9007199254740991, method: 'x' },
        { jsonrpc: '2.0', id: 'x'.repeat(128), method: 'x' },
        { jsonrpc: '2.0', id: '签'.repeat(42), method: 'x' }, // 126 bytes
        { jsonrpc: '2.0', id: 1, method: 'm'.repeat(64) },
    ])
        assert.ok(B.parsePageMessage(req(rpc)), JSON.stringify(rpc));
});

test('everything else is ignored', () => {
    const bad = [
        null, undefined, 'ping', 42, [], ['ukeyd'],
        {}, { ukeyd: 'pong', version: '1' }, { ukeyd: 'response', rpc: good }, { ukeyd: 'event', rpc: good },
        { ukeyd: 'ping', extra: 1 },
        { ukeyd: 'request' }, { ukeyd: 'request', rpc: good, extra: 1 }, { ukeyd: 'REQUEST', rpc: good },
        req(null), req([]), req('{"jsonrpc":"2.0"}'),
        req({ ...good, origin: 'https://evil.example' }),
        req({ ...good, jsonrpc: '1.0' }), req({ ...good, jsonrpc: 2 }),
        req({ jsonrpc: '2.0', method: 'x' }),
        req({ ...good, id: null }), req({ ...good, id: 1.5 }), req({ ...good, id: 2 ** 53 }), req({ ...good, id: true }),
        req({ ...good, id: {} }), req({ ...good, id: 'x'.repeat(129) }), req({ ...good, id: '签'.repeat(43) }),
        req({ ...good, method: '' }), req({ ...good, method: 'm'.repeat(65) }), req({ ...good, method: 7 }),
        req({ ...good, params: null }), req({ ...good, params: 'x' }), req({ ...good, params: 3 }),
        req({ ...good, result: {} }), req({ ...good, error: {} }), req({ ...good, Method: 'x' }),
    ];
    for (const m of bad) assert.equal(B.parsePageMessage(m), null, JSON.stringify(m));
});

test('port messages: requests to the worker, answers and events back', () => {
    assert.deepEqual(B.parsePortRequest({ type: 'request', rpc: good }), good);
    assert.equal(B.parsePortRequest({ type: 'request', rpc: { ...good, origin: ORIGIN } }), null);
    assert.equal(B.parsePortRequest({ type: 'request', rpc: good, origin: ORIGIN }), null);
    const resp = { type: 'response', rpc: { jsonrpc: '2.0', id: 1, result: {} } };
    assert.deepEqual(B.parsePortAnswer(resp), resp);
    const err = { type: 'response', rpc: { jsonrpc: '2.0', id: 1, error: { code: 1, message: 'x' } } };
    assert.deepEqual(B.parsePortAnswer(err), err);
    const ev = { type: 'event', rpc: { jsonrpc: '2.0', method: 'token.inserted', params: {} } };
    assert.deepEqual(B.parsePortAnswer(ev), ev);
    assert.equal(B.parsePortAnswer({ type: 'event', rpc: { jsonrpc: '2.0', id: 1, method: 'x' } }), null);
    assert.equal(B.parsePortAnswer({ type: 'response', rpc: { jsonrpc: '2.0', id: 1 } }), null);
    assert.equal(B.parsePortAnswer({ type: 'other', rpc: {} }), null);
});

test('origins for content scripts: browsers\' serialization only', () => {
    for (const o of ['https://portal.example.cn', 'http://127.0.0.1:8083', 'http://localhost:3000', 'https://xn--fiqs8s.example', 'https://[::1]:8443'])
        assert.ok(B.validWebOrigin(o), o);
    for (const o of ['https://portal.example.cn/', 'https://portal.example.cn:443', 'http://a.example:80', 'HTTPS://a.example',
        'https://A.example', 'chrome-extension://abc', 'file:///x', 'https://a.example:0', 'https://a.example:65536', 'https://a.example:08',
        'https://*.example', 'https://a.example.', 'null', '', 42, null, 'https://中国.example', 'https://u@a.example'])
        assert.ok(!B.validWebOrigin(o), String(o));
    assert.equal(B.matchPattern('http://127.0.0.1:8083'), 'http://127.0.0.1:8083/*');
});

test('the extension\'s own error answers have the daemon\'s shape', () => {
    const r = B.errorResponse('p-1', 'DAEMON_UNAVAILABLE', 'the native host exited');
    assert.deepEqual(Object.keys(r).sort(), ['error', 'id', 'jsonrpc']);
    assert.equal(r.id, 'p-1');
    assert.equal(r.error.code, -32000);
    assert.equal(r.error.data.reason, 'DAEMON_UNAVAILABLE');
    assert.equal(r.error.data.retriable, true);
    assert.equal(r.error.data.detail, 'the native host exited');
    assert.match(r.error.data.message['zh-CN'], /ukeyd/);
    assert.equal(r.error.message, r.error.data.message.en);
    assert.equal(B.errorResponse(undefined, 'INVALID_REQUEST').id, null);
    assert.notEqual(B.idKey(1), B.idKey('1'));
});
