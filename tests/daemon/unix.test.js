'use strict';
// The Unix-socket endpoint and its command-line client: modes and peer credentials (a client
// running as `nobody` is refused even when the file modes would let it in), one daemon per socket,
// stale sockets, and ukeyctl's output and exit codes.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Ukeyd, UnixClient, BIN, run, tempDir } = require('./lib/ukeyd');

const isRoot = process.getuid() === 0;
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));

// A client, as its own process, that connects to the socket, sends system.hello and prints
// {connected, answer} (answer null when the daemon closed without one) or {error}.
const CLIENT = `
const net = require('net');
const s = net.connect(process.argv[1]);
let buf = Buffer.alloc(0), connected = false;
const done = (o) => { process.stdout.write(JSON.stringify(o)); process.exit(0); };
s.on('connect', () => {
    connected = true;
    const body = Buffer.from('{"jsonrpc":"2.0","method":"system.hello","id":1}');
    const h = Buffer.alloc(4); h.writeUInt32LE(body.length);
    s.write(Buffer.concat([h, body]));
});
s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0))
        done({ connected, answer: JSON.parse(buf.subarray(4, 4 + buf.readUInt32LE(0))) });
});
s.on('error', (e) => done({ connected, error: e.code }));
s.on('close', () => done({ connected, answer: null }));
`;

function runClient(socketPath, asNobody) {
    const argv = ['-e', CLIENT, socketPath];
    const [file, args] = asNobody
        ? [SETPRIV, ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, ...argv]]
        : [process.execPath, argv];
    return new Promise((resolve, reject) => {
        const p = spawn(file, args, { env: { PATH: process.env.PATH, HOME: '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`client exit ${code}: ${err}`))));
    });
}

test('socket 0600 in a 0700 directory', async (t) => {
    const d = await new Ukeyd(t).start();
    assert.equal(fs.statSync(d.socket).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(d.socket)).mode & 0o777, 0o700);
    assert.ok(fs.lstatSync(d.socket).isSocket());
    await d.stop();
});

test('a client running as nobody is refused: by the file modes, and by SO_PEERCRED when the modes would let it in', { skip: !isRoot || !SETPRIV ? 'needs root and setpriv to run a client as nobody' : false }, async (t) => {
    // The test's dir must be searchable by nobody for the second half; the socket's own directory
    // is made 0700 by the daemon.
    const base = tempDir(t);
    fs.chmodSync(base, 0o711);
    const d = await new Ukeyd(t, { dir: base }).start();

    // 1. As installed: nobody cannot even connect.
    const denied = await runClient(d.socket, true);
    assert.deepEqual(denied, { connected: false, error: 'EACCES' });

    // 2. Open the directory and the socket to everyone (what a mistaken packager or umask
    // might do): nobody now connects, and the daemon closes the connection without reading or
    // answering anything, because the peer's uid is not its own.
    fs.chmodSync(path.dirname(d.socket), 0o711);
    fs.chmodSync(d.socket, 0o666);
    const before = d.count(/refused a client of uid/);
    const refused = await runClient(d.socket, true);
    assert.equal(refused.connected, true, JSON.stringify(refused));
    // Closed unanswered: an orderly end, or a reset since the request was never read.
    assert.ok(refused.answer === null || ['ECONNRESET', 'EPIPE'].includes(refused.error), JSON.stringify(refused));
    const line = (await d.waitCount(/refused a client of uid/, before + 1))[before];
    assert.match(line, /uid 65534/);

    // 3. The same path as our own user is answered: the modes were not what refused nobody.
    const ok = await runClient(d.socket, false);
    assert.equal(ok.connected, true);
    assert.equal(ok.answer.result.endpoint, 'unix');
    await d.stop();
});

test('a second ukeyd on the same socket refuses to start; the first keeps serving', async (t) => {
    const d = await new Ukeyd(t).start();
    const second = spawn(BIN.ukeyd, ['--config', d.configPath, '--foreground'], { env: d.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    second.stderr.on('data', (s) => (log += s));
    const [code, signal] = await new Promise((resolve) => second.on('exit', (c, s) => resolve([c, s])));
    await new Promise((resolve) => (second.stderr.readableEnded ? resolve() : second.stderr.on('end', resolve)));
    assert.equal(signal, null);
    assert.equal(code, 1, log);
    assert.match(log, /another ukeyd answers on/);
    assert.match(log, /start-up failed: BUSY/);
    assert.doesNotMatch(log, /ERROR: \w+Sanitizer|runtime error:/);
    // The first one's socket and port file are untouched.
    assert.ok(fs.existsSync(d.socket));
    assert.equal(fs.readFileSync(path.join(d.runtimeDir, 'wss-port'), 'utf8'), `${d.port}\n`);
    const c = await UnixClient.connect(d.socket);
    assert.equal((await c.call('system.hello')).result.wss_port, d.port);
    c.close();
    await d.stop();
});

test('a stale socket left by a killed ukeyd is replaced at the next start', async (t) => {
    const d = await new Ukeyd(t).start();
    d.signal('SIGKILL');
    assert.deepEqual(await d.exited, { code: null, signal: 'SIGKILL' });
    assert.ok(fs.existsSync(d.socket), 'the killed daemon left its socket');
    d.proc = null;
    await d.start();
    const c = await UnixClient.connect(d.socket);
    assert.equal((await c.call('system.hello')).result.endpoint, 'unix');
    c.close();
    await d.stop();
});

test('a socket directory open to others is refused at start-up', async (t) => {
    const d = new Ukeyd(t);
    fs.mkdirSync(d.runtimeDir, { mode: 0o755 });
    fs.chmodSync(d.runtimeDir, 0o755);
    d.port = 0;
    d.opts.wss = false;
    d.writeConfig();
    assert.equal(await d.spawn(), 'exited');
    await d.stderrDone;
    assert.deepEqual(d.exit, { code: 1, signal: null });
    assert.match(d.log, /must belong to uid \d+ and be closed to others/);
    assert.equal(fs.existsSync(d.socket), false);
});

/* ---------- ukeyctl ---------- */

function ctl(d, args) {
    return run(BIN.ctl, args, { env: d.env });
}

test('ukeyctl call system.hello prints plain JSON and exits 0', async (t) => {
    const d = await new Ukeyd(t).start();
    for (const how of [['--config', d.configPath], ['--socket', d.socket]]) {
        const r = ctl(d, [...how, 'call', 'system.hello']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        const lines = r.stdout.split('\n');
        assert.deepEqual(lines.slice(1), [''], 'one line of JSON');
        const hello = JSON.parse(lines[0]);
        assert.equal(hello.name, 'ukeyd');
        assert.equal(hello.endpoint, 'unix');
        assert.equal(hello.wss_port, d.port);
        assert.equal(hello.origin, null);
    }
    const sub = ctl(d, ['--config', d.configPath, 'call', 'system.subscribe', '{"events":["token.inserted"]}']);
    assert.equal(sub.code, 0, sub.stderr);
    assert.deepEqual(JSON.parse(sub.stdout), { events: ['token.inserted'] });
    await d.stop();
});

test('ukeyctl call no.such prints the error JSON and exits 1', async (t) => {
    const d = await new Ukeyd(t).start();
    const r = ctl(d, ['--config', d.configPath, 'call', 'no.such']);
    assert.equal(r.code, 1);
    const err = JSON.parse(r.stdout);
    assert.equal(err.code, -32601);
    assert.equal(err.data.reason, 'METHOD_NOT_FOUND');
    assert.match(r.stderr, /^ukeyctl: .*METHOD_NOT_FOUND\n$/);
    const bad = ctl(d, ['--config', d.configPath, 'call', 'system.hello', '{"x":1}']);
    assert.equal(bad.code, 1);
    assert.equal(JSON.parse(bad.stdout).data.reason, 'INVALID_PARAMS');
    // Usage errors: 2, nothing sent.
    assert.equal(ctl(d, ['--config', d.configPath, 'call', 'system.hello', 'not json']).code, 2);
    assert.equal(ctl(d, ['--config', d.configPath, 'call']).code, 2);
    assert.equal(ctl(d, ['--config', d.configPath, 'frobnicate']).code, 2);
    await d.stop();
});

test('ukeyctl status prints a summary', async (t) => {
    const d = await new Ukeyd(t).start();
    const r = ctl(d, ['--config', d.configPath, 'status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ukeyd \S+ is running$/m);
    assert.ok(r.stdout.includes(d.socket));
    assert.ok(r.stdout.includes(`wss://127.0.0.1:${d.port}`));
    await d.stop();
    const w = await new Ukeyd(t, { wss: false }).start();
    const off = ctl(w, ['--config', w.configPath, 'status']);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /WSS is off/);
    await w.stop();
});

test('ukeyctl without a daemon exits 3', async (t) => {
    const d = new Ukeyd(t);
    d.port = 1;
    d.writeConfig();
    for (const args of [['call', 'system.hello'], ['status']]) {
        const r = ctl(d, ['--config', d.configPath, ...args]);
        assert.equal(r.code, 3, `${args}: ${r.stdout}${r.stderr}`);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, /not running/);
        assert.equal(ctl(d, ['--socket', path.join(d.dir, 'nothing.sock'), ...args]).code, 3);
    }
});
