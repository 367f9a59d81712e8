'use strict';
// The native-messaging host ukeyd-nm as Chrome runs it: `ukeyd-nm chrome-extension://ID/`, 4-byte
// native-endian length + UTF-8 JSON on stdin/stdout, configuration from UKEYD_CONFIG. Allowed and
// refused extensions, framing (short reads, a length over the limit, invalid UTF-8), and starting
// ukeyd when it is not running.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Ukeyd, FrameReader, BIN, assertError, processGone } = require('./lib/ukeyd');

const ID = 'abcdefghijklmnopabcdefghijklmnop';
const OTHER_ID = 'ponmlkjihgfedcbaponmlkjihgfedcba';
const NM_IN_LIMIT = 1024 * 1024; // UK_LIMIT_NM_FRAME_IN

// Native-endian framing; the machines we run on are little-endian (ukeyd-nm asserts it too).
function nmFrame(body) {
    const b = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = Buffer.alloc(4);
    if (require('node:os').endianness() === 'LE') h.writeUInt32LE(b.length);
    else h.writeUInt32BE(b.length);
    return Buffer.concat([h, b]);
}

// Starts ukeyd-nm for `origin` with the daemon's config and environment; stderr goes to a file
// (a daemon the host starts inherits it and keeps writing after the host exits).
function startNm(t, d, origin, { bin = BIN.nm } = {}) {
    const logPath = path.join(d.dir, `nm-${process.hrtime.bigint()}.log`);
    const logFd = fs.openSync(logPath, 'w');
    const p = spawn(bin, [origin], {
        env: { ...d.env, UKEYD_CONFIG: d.configPath },
        stdio: ['pipe', 'pipe', logFd],
    });
    fs.closeSync(logFd);
    const nm = {
        proc: p,
        logPath,
        log: () => fs.readFileSync(logPath, 'utf8'),
        reader: new FrameReader(p.stdout),
        exited: new Promise((resolve) => p.on('exit', (code, signal) => resolve({ code, signal }))),
        send: (body) => p.stdin.write(nmFrame(body)),
        raw: (bytes) => p.stdin.write(bytes),
        end: () => p.stdin.end(),
        recv: async () => {
            const f = await nm.reader.next();
            return f === null ? null : JSON.parse(f.toString('utf8'));
        },
        call: async (method, params, id = 1) => {
            const req = { jsonrpc: '2.0', method, id };
            if (params !== undefined) req.params = params;
            nm.send(req);
            return nm.recv();
        },
    };
    p.stdin.on('error', () => {});
    t.after(() => {
        if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    });
    return nm;
}

function assertNmLogClean(nm) {
    assert.doesNotMatch(nm.log(), /ERROR: \w+Sanitizer|runtime error:/);
}

test('an allowed extension gets system.hello through the host (endpoint native-messaging, its origin)', async (t) => {
    const d = await new Ukeyd(t, { extension_ids: [ID] }).start();
    const nm = startNm(t, d, `chrome-extension://${ID}/`);
    const hello = await nm.call('system.hello', undefined, 'h1');
    assert.equal(hello.id, 'h1');
    assert.equal(hello.result.endpoint, 'native-messaging');
    assert.equal(hello.result.origin, `chrome-extension://${ID}`);
    assert.equal(hello.result.wss_port, d.port);
    assert.ok(!hello.result.methods.includes('system.attach'), 'local-only methods are not offered to the extension');
    // The extension cannot re-attach itself as another extension.
    assertError(await nm.call('system.attach', { extension: `chrome-extension://${OTHER_ID}/` }, 2), 'METHOD_NOT_ALLOWED', 2);
    // Errors come back as they are, with their ids; notifications are not answered.
    assertError(await nm.call('no.such', undefined, 3), 'METHOD_NOT_FOUND', 3);
    nm.send({ jsonrpc: '2.0', method: 'no.such' });
    assert.equal((await nm.call('system.hello', undefined, 4)).id, 4);
    await d.waitLog(/native messaging: attached extension abcdefghijklmnopabcdefghijklmnop/);
    // The browser closes the port: the host exits 0.
    nm.end();
    assert.deepEqual(await nm.exited, { code: 0, signal: null });
    assertNmLogClean(nm);
    await d.stop();
});

test('an extension ID not in the config gets ORIGIN_NOT_ALLOWED and the host exits; the daemon is not even woken', async (t) => {
    // No daemon runs: a refused host must not start one.
    const d = new Ukeyd(t, { extension_ids: [ID] });
    d.port = 1;
    d.writeConfig();
    for (const origin of [`chrome-extension://${OTHER_ID}/`, `chrome-extension://${ID}/x`, `chrome-extension://${ID.toUpperCase()}/`, 'chrome-extension://short/']) {
        const nm = startNm(t, d, origin);
        const err = await nm.recv();
        assertError(err, 'ORIGIN_NOT_ALLOWED', null);
        assert.equal(err.error.code, -32001);
        assert.equal(await nm.recv(), null, 'nothing after the error');
        const exit = await nm.exited;
        assert.equal(exit.signal, null);
        assert.notEqual(exit.code, 0, `${origin}: exit status`);
        assertNmLogClean(nm);
    }
    assert.equal(fs.existsSync(d.socket), false, 'no ukeyd was started');
    // Not started by Chrome (no extension origin): usage, exit 2, nothing on stdout.
    const bare = startNm(t, d, 'https://portal.example.cn');
    assert.equal(await bare.recv(), null);
    assert.deepEqual(await bare.exited, { code: 2, signal: null });
});

test('the daemon refuses system.attach for an extension that is not allowed, even from the local socket', async (t) => {
    // The host checks the ID itself; this is the daemon's own check behind it, when the host's
    // config and the daemon's differ (here: the daemon was reloaded without the ID).
    const d = await new Ukeyd(t, { extension_ids: [ID] }).start();
    const nm = startNm(t, d, `chrome-extension://${ID}/`);
    assert.equal((await nm.call('system.hello')).result.endpoint, 'native-messaging');
    nm.end();
    assert.equal((await nm.exited).code, 0);
    // The host reads the new config (without ID) only at its start, the daemon at SIGHUP.
    fs.writeFileSync(d.configPath, JSON.stringify({ ...d.config(), extension_ids: [OTHER_ID] }));
    d.signal('SIGHUP');
    await d.waitLog(/SIGHUP: reloaded/);
    fs.writeFileSync(d.configPath, JSON.stringify({ ...d.config(), extension_ids: [ID] }));
    const refused = startNm(t, d, `chrome-extension://${ID}/`);
    const err = await refused.recv();
    assertError(err, 'ORIGIN_NOT_ALLOWED');
    assert.notEqual((await refused.exited).code, 0);
    await d.waitLog(/native messaging: refused extension abcdefghijklmnopabcdefghijklmnop/);
    await d.stop();
});

test('framing: half a header, then the browser goes away: clean exit 0', async (t) => {
    const d = await new Ukeyd(t, { extension_ids: [ID] }).start();
    const nm = startNm(t, d, `chrome-extension://${ID}/`);
    assert.equal((await nm.call('system.hello')).result.endpoint, 'native-messaging');
    nm.raw(Buffer.from([0x10, 0x00]));
    nm.end();
    assert.deepEqual(await nm.exited, { code: 0, signal: null });
    assert.equal(await nm.recv(), null);
    assertNmLogClean(nm);
    await d.stop();
});

test('framing: half a body, then the browser goes away: clean exit 0', async (t) => {
    const d = await new Ukeyd(t, { extension_ids: [ID] }).start();
    const nm = startNm(t, d, `chrome-extension://${ID}/`);
    const whole = nmFrame({ jsonrpc: '2.0', method: 'system.hello', id: 1 });
    nm.raw(whole.subarray(0, 4 + 10));
    nm.end();
    assert.deepEqual(await nm.exited, { code: 0, signal: null });
    assert.equal(await nm.recv(), null, 'nothing was relayed');
    assertNmLogClean(nm);
    await d.stop();
});

test('framing: a length over 1 MiB gets LIMIT_EXCEEDED, then the host exits', async (t) => {
    const d = await new Ukeyd(t, { extension_ids: [ID] }).start();
    const nm = startNm(t, d, `chrome-extension://${ID}/`);
    assert.equal((await nm.call('system.hello')).result.endpoint, 'native-messaging');
    const h = Buffer.alloc(4);
    h.writeUInt32LE(NM_IN_LIMIT + 1);
    nm.raw(h); // the length alone decides; no body follows
    const err = await nm.recv();
    assertError(err, 'LIMIT_EXCEEDED', null);
    assert.equal(err.error.code, -32002);
    assert.equal(await nm.recv(), null);
    const exit = await nm.exited;
    assert.equal(exit.signal, null);
    assert.notEqual(exit.code, 0);
    assertNmLogClean(nm);
    // The daemon serves the next host.
    const next = startNm(t, d, `chrome-extension://${ID}/`);
    assert.equal((await next.call('system.hello')).result.endpoint, 'native-messaging');
    next.end();
    assert.equal((await next.exited).code, 0);
    await d.stop();
});

test('framing: invalid UTF-8 in a frame gets PARSE_ERROR and the relay continues', async (t) => {
    const d = await new Ukeyd(t, { extension_ids: [ID] }).start();
    const nm = startNm(t, d, `chrome-extension://${ID}/`);
    nm.send(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","method":"system.hello","id":1,"params":{"s":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}}')]));
    assertError(await nm.recv(), 'PARSE_ERROR', null);
    assert.equal((await nm.call('system.hello', undefined, 'after')).id, 'after');
    // An empty frame too.
    nm.send(Buffer.alloc(0));
    assertError(await nm.recv(), 'PARSE_ERROR', null);
    assert.equal((await nm.call('system.hello', undefined, 'again')).id, 'again');
    nm.end();
    assert.deepEqual(await nm.exited, { code: 0, signal: null });
    assertNmLogClean(nm);
    await d.stop();
});

// uk_limits.h (UK_LIMIT_NM_FRAME_IN): "a frame up to this size is read whole and answered with
// LIMIT_EXCEEDED carrying the request id"; the host answers it itself and the relay goes on.
for (const kib of [70, 300]) {
    test(`framing: a ${kib} KiB frame (over 64 KiB, under 1 MiB) is answered with LIMIT_EXCEEDED and its id; the relay continues`, async (t) => {
        const d = await new Ukeyd(t, { extension_ids: [ID] }).start();
        const nm = startNm(t, d, `chrome-extension://${ID}/`);
        nm.send(`{"jsonrpc":"2.0","method":"system.hello","id":5,"params":{"p":"${'x'.repeat(kib * 1024)}"}}`);
        try {
            assertError(await nm.recv(), 'LIMIT_EXCEEDED', 5);
            assert.equal((await nm.call('system.hello', undefined, 6)).id, 6);
        } finally {
            nm.end();
            await nm.exited;
            await d.stop();
        }
    });
}

test('framing: a frame over 64 KiB and under 1 MiB never crashes the host or the daemon', async (t) => {
    const d = await new Ukeyd(t, { extension_ids: [ID] }).start();
    for (const kib of [70, 300, 1000]) {
        const nm = startNm(t, d, `chrome-extension://${ID}/`);
        nm.send(`{"jsonrpc":"2.0","method":"system.hello","id":5,"params":{"p":"${'x'.repeat(kib * 1024)}"}}`);
        const a = await nm.recv();
        assert.ok(a && a.error, `${kib} KiB: an error frame`);
        nm.end();
        assert.equal((await nm.exited).signal, null);
        assertNmLogClean(nm);
    }
    await d.stop();
});

test('the host starts ukeyd when it is not running', async (t) => {
    const d = new Ukeyd(t, { extension_ids: [ID] });
    d.port = 0;
    d.opts.wss = false; // no port to collide with: this daemon is not started by the harness
    d.writeConfig();
    // Installed layout: ukeyd next to ukeyd-nm (the host starts the ukeyd of its own directory).
    const bin = path.join(d.dir, 'bin');
    fs.mkdirSync(bin);
    fs.copyFileSync(BIN.nm, path.join(bin, 'ukeyd-nm'));
    fs.copyFileSync(BIN.ukeyd, path.join(bin, 'ukeyd'));
    fs.chmodSync(path.join(bin, 'ukeyd-nm'), 0o755);
    fs.chmodSync(path.join(bin, 'ukeyd'), 0o755);
    let daemonPid = null;
    t.after(() => {
        if (daemonPid !== null && !processGone(daemonPid)) process.kill(daemonPid, 'SIGKILL');
    });

    const nm = startNm(t, d, `chrome-extension://${ID}/`, { bin: path.join(bin, 'ukeyd-nm') });
    const hello = await nm.call('system.hello');
    assert.equal(hello.result.endpoint, 'native-messaging');
    assert.equal(hello.result.origin, `chrome-extension://${ID}`);
    assert.ok(fs.existsSync(d.socket));
    nm.end();
    assert.deepEqual(await nm.exited, { code: 0, signal: null });

    // The daemon outlives the host; find it by its config path and stop it by pid.
    const pids = execFileSync('pgrep', ['-f', '--', `--config ${d.configPath}`], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map(Number);
    assert.equal(pids.length, 1, `one ukeyd for this config: ${pids}`);
    daemonPid = pids[0];
    assert.equal(fs.readlinkSync(`/proc/${daemonPid}/exe`), path.join(bin, 'ukeyd'));
    process.kill(daemonPid, 'SIGTERM');
    // It is not our child, so its exit status is not ours to read: its last log line says how it
    // ended ("stopped cleanly" is written only after uv_loop_close() returned 0).
    while (!processGone(daemonPid)) await new Promise((resolve) => setTimeout(resolve, 20));
    const log = nm.log();
    assert.match(log, /ready: socket/);
    assert.match(log, /stopped cleanly/);
    d.checkLog(log);
    assert.equal(fs.existsSync(d.socket), false);
});
