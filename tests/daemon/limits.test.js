'use strict';
// Limits through the real daemon on both endpoints: the message size (exactly at the limit passes;
// one byte over is LIMIT_EXCEEDED then a close: 1009 on WSS, end of stream on the socket), the JSON
// depth (32 passes, 33 does not), and 1000 malformed messages, each answered with an error, after
// which the daemon still serves.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Ukeyd, UnixClient, WssClient, assertError, frame } = require('./lib/ukeyd');

const ORIGIN = 'https://portal.example.cn';
const LIMIT = 65536;

// A system.hello request of exactly n bytes (padding in a string parameter the method refuses, so
// the answer is INVALID_PARAMS: the message itself was accepted and dispatched).
function requestOfSize(n, id = 1) {
    const head = `{"jsonrpc":"2.0","method":"system.hello","id":${id},"params":{"p":"`;
    const tail = '"}}';
    return head + 'x'.repeat(n - head.length - tail.length) + tail;
}

// A request nested `depth` deep in total (the message object counts 1).
function requestOfDepth(depth, id = 1) {
    const inner = depth - 1; // the params array and those inside it
    return `{"jsonrpc":"2.0","method":"system.hello","id":${id},"params":${'['.repeat(inner)}${']'.repeat(inner)}}`;
}

async function wssDaemon(t) {
    return new Ukeyd(t, { origins: [ORIGIN], limits: { requests_per_second_per_origin: 100000 } }).start();
}

test('Unix socket: a frame of exactly 64 KiB is dispatched; one byte more is LIMIT_EXCEEDED and the end', async (t) => {
    const d = await new Ukeyd(t).start();
    const c = await UnixClient.connect(d.socket);
    const at = requestOfSize(LIMIT, 7);
    assert.equal(Buffer.byteLength(at), LIMIT);
    c.send(at);
    assertError(await c.recv(), 'INVALID_PARAMS', 7);
    c.send(requestOfSize(LIMIT + 1, 8));
    const over = await c.recv();
    assertError(over, 'LIMIT_EXCEEDED', null);
    assert.equal(over.error.code, -32002);
    assert.equal(await c.recv(), null, 'the daemon closes the connection');
    await c.closed;
    // A bare header announcing 4 GiB - 1 is refused from the header alone, nothing more is read.
    const big = await UnixClient.connect(d.socket);
    big.sendRaw(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    assertError(await big.recv(), 'LIMIT_EXCEEDED', null);
    assert.equal(await big.recv(), null);
    // Others are unaffected.
    const other = await UnixClient.connect(d.socket);
    assert.equal((await other.call('system.hello')).result.endpoint, 'unix');
    other.close();
    await d.stop();
});

test('WSS: a message of exactly 64 KiB is dispatched; one byte more is LIMIT_EXCEEDED then close 1009', async (t) => {
    const d = await wssDaemon(t);
    const c = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    c.send(requestOfSize(LIMIT, 7));
    assertError(await c.recv(), 'INVALID_PARAMS', 7);
    c.send(requestOfSize(LIMIT + 1, 8));
    assertError(await c.recv(), 'LIMIT_EXCEEDED', null);
    assert.equal(await c.recv(), null);
    assert.equal(c.closeInfo.code, 1009);
    await d.stop();
});

test('WSS: a message over the limit in fragments is refused as a whole (1009), never truncated', async (t) => {
    const d = await wssDaemon(t);
    const c = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    const text = requestOfSize(LIMIT + 1000, 9);
    // Ten fragments of one message; the limit is crossed in the last one.
    const step = Math.ceil(text.length / 10);
    for (let i = 0; i < text.length; i += step)
        c.send(text.slice(i, i + step), { fin: i + step >= text.length });
    assertError(await c.recv(), 'LIMIT_EXCEEDED', null);
    assert.equal(await c.recv(), null);
    assert.equal(c.closeInfo.code, 1009);
    // A fragmented message under the limit is reassembled and answered.
    const ok = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    const hello = '{"jsonrpc":"2.0","method":"system.hello","id":"frag"}';
    ok.send(hello.slice(0, 10), { fin: false });
    ok.send(hello.slice(10, 30), { fin: false });
    ok.send(hello.slice(30), { fin: true });
    assert.equal((await ok.recv()).id, 'frag');
    await ok.close();
    await d.stop();
});

test('WSS: a binary frame closes with 1003 (text only)', async (t) => {
    const d = await wssDaemon(t);
    const c = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    c.ws.send(Buffer.from('{"jsonrpc":"2.0","method":"system.hello","id":1}'), { binary: true });
    assert.equal(await c.recv(), null);
    assert.equal(c.closeInfo.code, 1003);
    await d.stop();
});

test('deep JSON: 32 levels are accepted, 33 get LIMIT_EXCEEDED (json_depth), on both endpoints', async (t) => {
    const d = await wssDaemon(t);
    const u = await UnixClient.connect(d.socket);
    const w = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    for (const c of [u, w]) {
        c.send(requestOfDepth(32, 32));
        const ok = await c.recv();
        assert.equal(ok.id, 32);
        assert.notEqual(ok.error?.data?.reason, 'LIMIT_EXCEEDED', JSON.stringify(ok));
        c.send(requestOfDepth(33, 33));
        const deep = await c.recv();
        assertError(deep, 'LIMIT_EXCEEDED', null);
        assert.equal(deep.error.data.limit, 'json_depth');
        assert.equal(deep.error.data.max, 32);
        // 10000 levels: refused the same way, no stack trouble.
        c.send(requestOfDepth(10000, 1));
        assertError(await c.recv(), 'LIMIT_EXCEEDED', null);
        // And the connection still serves.
        assert.equal((await c.call('system.hello', undefined, 'still')).id, 'still');
    }
    u.close();
    await w.close();
    await d.stop();
});

/* ---------- 1000 malformed messages ---------- */

// A small deterministic PRNG (mulberry32), so every run sends the same 1000 messages.
function prng(seed) {
    return () => {
        seed = (seed + 0x6d2b79f5) | 0;
        let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
        x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
        return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
    };
}

const VALID = '{"jsonrpc":"2.0","method":"system.hello","id":1,"params":{"a":[1,2,{"b":"c"}]}}';

// Message i of the malformed set: every one is refused before any method runs (never a valid
// request or notification), so every one must be answered with exactly one error.
// utf8Only: keep to valid UTF-8 (WSS text frames); otherwise any bytes (the Unix socket).
function malformed(i, rnd, utf8Only) {
    const pick = (a) => a[Math.floor(rnd() * a.length)];
    const kind = i % 10;
    switch (kind) {
    case 0: // a strict prefix of a valid message: never complete JSON
        return Buffer.from(VALID.slice(0, Math.floor(rnd() * (VALID.length - 1))));
    case 1: { // random printable garbage that does not start a JSON text
        let s = pick(['x', '}', ']', ':', ',', '#', 'undefined', "'"]);
        const n = Math.floor(rnd() * 200);
        for (let k = 0; k < n; k++) s += String.fromCharCode(32 + Math.floor(rnd() * 95));
        return Buffer.from(s);
    }
    case 2: { // random bytes (invalid UTF-8 guaranteed by a 0xff), or random non-JSON Unicode
        if (utf8Only) {
            let s = '\u00e9';
            const n = 1 + Math.floor(rnd() * 100);
            for (let k = 0; k < n; k++) s += String.fromCodePoint(0x80 + Math.floor(rnd() * 0x2000));
            return Buffer.from(s);
        }
        const b = Buffer.alloc(1 + Math.floor(rnd() * 300));
        for (let k = 0; k < b.length; k++) b[k] = Math.floor(rnd() * 256);
        b[Math.floor(rnd() * b.length)] = 0xff;
        return b;
    }
    case 3: // valid JSON that is not a message object
        return Buffer.from(pick(['[]', '[1]', '1', '"s"', 'true', 'null', '{}', '[{"jsonrpc":"2.0","method":"system.hello","id":1}]']));
    case 4: // wrong or missing members
        return Buffer.from(
            pick([
                '{"jsonrpc":"1.0","method":"system.hello","id":1}',
                '{"method":"system.hello","id":1}',
                '{"jsonrpc":"2.0","id":1}',
                '{"jsonrpc":"2.0","method":"","id":1}',
                '{"jsonrpc":"2.0","method":7,"id":1}',
                '{"jsonrpc":"2.0","method":"system.hello","id":1.5}',
                '{"jsonrpc":"2.0","method":"system.hello","id":[1]}',
                '{"jsonrpc":"2.0","method":"system.hello","id":null}',
                '{"jsonrpc":"2.0","method":"system.hello","params":"x","id":1}',
                '{"jsonrpc":"2.0","method":"system.hello","params":null}',
                '{"jsonrpc":"2.0","method":"system.hello","id":1,"origin":"https://evil.example"}',
                '{"jsonrpc":"2.0","method":"system.hello","method":"system.hello","id":1}',
                '{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"x"},"id":1}',
            ]),
        );
    case 5: // JSON extensions that are not JSON
        return Buffer.from(
            pick([
                '{"jsonrpc":"2.0","method":"system.hello","id":01}',
                '{"jsonrpc":"2.0","method":"system.hello","id":+1}',
                '{"jsonrpc":"2.0","method":"system.hello","id":NaN}',
                "{'jsonrpc':'2.0','method':'system.hello','id':1}",
                '{"jsonrpc":"2.0","method":"system.hello","id":1,}',
                '{"jsonrpc":"2.0",/*c*/"method":"system.hello","id":1}',
                '{"jsonrpc":"2.0","method":"system.hello","id":1}{"x":1}',
                '{"jsonrpc":"2.0","method":"sys\u0001tem","id":1}',
                '{"jsonrpc":"2.0","method":"\\ud800","id":1}',
                '{"jsonrpc":"2.0","method":"a\\u0000b","id":1}',
                '\ufeff{"jsonrpc":"2.0","method":"system.hello","id":1}',
            ]),
        );
    case 6: { // a valid message with one byte replaced by a structural character
        const b = Buffer.from(VALID);
        b[1 + Math.floor(rnd() * (b.length - 2))] = pick([0x7b, 0x5b, 0x22, 0x2c]).valueOf();
        // Some replacements still parse (e.g. '"' inside a string can close and reopen one);
        // make sure the result is not JSON by appending an unmatched brace.
        return Buffer.concat([b, Buffer.from('{')]);
    }
    case 7: // too deep
        return Buffer.from(`{"jsonrpc":"2.0","method":"system.hello","id":1,"params":${'['.repeat(33 + Math.floor(rnd() * 200))}`);
    case 8: // a number too long
        return Buffer.from(`{"jsonrpc":"2.0","method":"system.hello","id":${'9'.repeat(41 + Math.floor(rnd() * 100))}}`);
    default: // empty or whitespace only
        return Buffer.from(pick(['', ' ', '\n\t ', '\r\n']));
    }
}

const REFUSALS = new Set(['PARSE_ERROR', 'INVALID_REQUEST', 'LIMIT_EXCEEDED']);

async function thousandMalformed(c, utf8Only) {
    const rnd = prng(utf8Only ? 1 : 2);
    const sent = [];
    for (let i = 0; i < 1000; i++) {
        const m = malformed(i, rnd, utf8Only);
        sent.push(m);
        c.send(m);
    }
    for (let i = 0; i < 1000; i++) {
        const a = await c.recv();
        assert.ok(a && a.error, `message ${i} ${JSON.stringify(sent[i].toString('latin1'))}: answer ${JSON.stringify(a)}`);
        assert.ok(REFUSALS.has(a.error.data.reason), `message ${i}: ${JSON.stringify(a)}`);
    }
    // Still serving on the same connection.
    assert.equal((await c.call('system.hello', undefined, 'alive')).id, 'alive');
}

test('Unix socket: 1000 malformed messages, each answered with an error; the daemon still serves', async (t) => {
    const d = await new Ukeyd(t).start();
    const c = await UnixClient.connect(d.socket);
    await thousandMalformed(c, false);
    c.close();
    const fresh = await UnixClient.connect(d.socket);
    assert.equal((await fresh.call('system.hello')).result.endpoint, 'unix');
    fresh.close();
    await d.stop();
});

test('WSS: 1000 malformed messages, each answered with an error; the daemon still serves', async (t) => {
    const d = await wssDaemon(t);
    const c = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    await thousandMalformed(c, true);
    assert.equal(c.closeInfo, null, 'the connection is still open');
    await c.close();
    const fresh = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    assert.equal((await fresh.call('system.hello')).result.endpoint, 'wss');
    await fresh.close();
    await d.stop();
});

test('Unix socket: frames split at every byte boundary are reassembled', async (t) => {
    const d = await new Ukeyd(t).start();
    const c = await UnixClient.connect(d.socket);
    const bytes = frame({ jsonrpc: '2.0', method: 'system.hello', id: 'split' });
    // One byte per write, each waiting for the previous one to be flushed to the kernel.
    for (let i = 0; i < bytes.length; i++) await new Promise((resolve) => c.sock.write(bytes.subarray(i, i + 1), resolve));
    assert.equal((await c.recv()).id, 'split');
    // Two frames in one write.
    c.sendRaw(Buffer.concat([frame({ jsonrpc: '2.0', method: 'system.hello', id: 1 }), frame({ jsonrpc: '2.0', method: 'system.hello', id: 2 })]));
    assert.equal((await c.recv()).id, 1);
    assert.equal((await c.recv()).id, 2);
    c.close();
    await d.stop();
});

test('connections over the limit: WSS closes with 1013 (try again later), the socket closes; a freed slot is reusable', async (t) => {
    const d = await new Ukeyd(t, { origins: [ORIGIN], limits: { connections: 2, requests_per_second_per_origin: 100000 } }).start();
    const a = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    const b = await UnixClient.connect(d.socket);
    assert.equal((await a.call('system.hello')).result.endpoint, 'wss');
    assert.equal((await b.call('system.hello')).result.endpoint, 'unix');
    // Third over WSS: upgraded, then closed at once with 1013 and nothing answered.
    const c = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    c.send({ jsonrpc: '2.0', method: 'system.hello', id: 1 });
    assert.equal(await c.recv(), null);
    assert.equal(c.closeInfo.code, 1013);
    // Third over the socket: closed without an answer.
    const u = await UnixClient.connect(d.socket);
    u.send({ jsonrpc: '2.0', method: 'system.hello', id: 1 });
    assert.equal(await u.recv(), null);
    await d.waitCount(/connections open already/, 2);
    // Freeing one lets the next in (the daemon frees the session before it closes the TCP
    // connection, which is what a.close() waits for).
    await a.close();
    const n = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
    const again = await n.call('system.hello', undefined, 2);
    await n.close();
    assert.equal(again.id, 2);
    b.close();
    await d.stop();
});
