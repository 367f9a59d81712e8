'use strict';
// Start-up and shutdown of the real daemon: a clean exit (0, "stopped cleanly", so
// uv_loop_close() returned 0) on SIGTERM and SIGINT also with clients of every kind still
// connected or half-way through a handshake; the command line and configuration errors.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const tls = require('node:tls');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const { Ukeyd, UnixClient, WssClient, FrameReader, BIN, run, once, frame, processGone } = require('./lib/ukeyd');

const ORIGIN = 'https://portal.example.cn';
const ID = 'abcdefghijklmnopabcdefghijklmnop';

for (const sig of ['SIGTERM', 'SIGINT']) {
    test(`${sig} with clients of every kind connected: every one is closed and ukeyd exits 0`, async (t) => {
        const d = await new Ukeyd(t, { origins: [ORIGIN], extension_ids: [ID] }).start();
        // An established WSS session, subscribed to events.
        const w = await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca });
        assert.equal((await w.call('system.subscribe')).id, 1);
        // A Unix client in the middle of a frame.
        const u = await UnixClient.connect(d.socket);
        assert.equal((await u.call('system.hello')).result.endpoint, 'unix');
        u.sendRaw(frame({ jsonrpc: '2.0', method: 'system.hello', id: 2 }).subarray(0, 7));
        // A TCP connection that never starts TLS, and a TLS one that never sends its upgrade.
        const tcp = net.connect({ host: '127.0.0.1', port: d.port });
        const tcpClosed = once(tcp, 'close');
        tcp.on('error', () => {});
        await once(tcp, 'connect');
        const tlsOnly = tls.connect({ host: '127.0.0.1', port: d.port, ca: d.ca });
        const tlsClosed = once(tlsOnly, 'close');
        tlsOnly.on('error', () => {});
        await once(tlsOnly, 'secureConnect');
        // A native-messaging host attached to the daemon.
        const nm = spawn(BIN.nm, [`chrome-extension://${ID}/`], { env: { ...d.env, UKEYD_CONFIG: d.configPath }, stdio: ['pipe', 'pipe', 'pipe'] });
        t.after(() => nm.exitCode === null && nm.kill('SIGKILL'));
        let nmLog = '';
        nm.stderr.on('data', (s) => (nmLog += s));
        const nmReader = new FrameReader(nm.stdout);
        const nmExit = new Promise((resolve) => nm.on('exit', (code, signal) => resolve({ code, signal })));
        nm.stdin.write(frame({ jsonrpc: '2.0', method: 'system.hello', id: 1 }));
        assert.equal(JSON.parse((await nmReader.next()).toString()).result.endpoint, 'native-messaging');

        d.signal(sig);
        const exit = await d.exited;
        await d.stderrDone;
        assert.deepEqual(exit, { code: 0, signal: null }, d.log);
        assert.match(d.log, new RegExp(`${sig}: shutting down`));
        assert.match(d.log, /stopped cleanly/);
        d.checkLog();
        // Every client learns that the daemon is gone.
        assert.equal(await w.recv(), null);
        assert.ok(w.closeInfo.code === 1001 || w.closeInfo.code === 1006, `WSS close ${w.closeInfo.code}`);
        assert.equal(await u.recv(), null);
        await Promise.all([tcpClosed, tlsClosed]);
        // The host tells the extension and exits (not a crash).
        const last = JSON.parse((await nmReader.next()).toString());
        assert.equal(last.error.data.reason, 'DAEMON_UNAVAILABLE');
        const ne = await nmExit;
        assert.equal(ne.signal, null);
        assert.doesNotMatch(nmLog, /Sanitizer|runtime error:/);
        assert.equal(fs.existsSync(d.socket), false);
        d.proc = null;
    });
}

test('--version and --help', () => {
    const v = run(BIN.ukeyd, ['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^ukeyd \d+\.\d+\.\d+\n$/);
    const h = run(BIN.ukeyd, ['--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /usage: ukeyd \[--config FILE\] \[--system-config FILE\] \[--foreground\]/);
    assert.match(h.stdout, /tls-setup/);
    assert.equal(run(BIN.ukeyd, ['--no-such-option']).code, 2);
    assert.equal(run(BIN.ukeyd, ['no-such-command']).code, 2);
});

test('configuration errors: ukeyd refuses to start, names the problem, exits non-zero', async (t) => {
    const d = new Ukeyd(t);
    d.port = 1;
    const cases = [
        ['unknown key', { orgins: [ORIGIN] }, /unknown key "orgins"/],
        ['origin not canonical', { origins: ['https://Portal.example.cn/'] }, /origin|Portal/i],
        ['origin null', { origins: ['null'] }, /origin|null/i],
        ['extension id malformed', { extension_ids: ['not-an-id'] }, /extension/i],
        ['port out of range', { wss_port: 70000 }, /wss_port/],
        ['limit out of range', { limits: { message_size: 1 } }, /message_size/],
    ];
    for (const [what, extra, re] of cases) {
        d.writeConfig(extra);
        const r = run(BIN.ukeyd, ['--config', d.configPath, '--foreground'], { env: d.env });
        // 2 when the file is refused as read, 1 when the policy refuses an entry at start-up.
        assert.ok(r.code === 1 || r.code === 2, `${what}: exit ${r.code} ${r.signal}: ${r.stderr}`);
        assert.match(r.stderr, re, what);
        assert.doesNotMatch(r.stderr, /Sanitizer|runtime error:/);
        assert.equal(fs.existsSync(d.socket), false, what);
    }
    fs.writeFileSync(d.configPath, '{"origins": [');
    assert.equal(run(BIN.ukeyd, ['--config', d.configPath, '--foreground'], { env: d.env }).code, 2);
    assert.equal(run(BIN.ukeyd, ['--config', `${d.configPath}.missing`, '--foreground'], { env: d.env }).code, 2);
});

test('without --foreground ukeyd returns once it is ready and keeps running in the background', async (t) => {
    const d = new Ukeyd(t, { origins: [ORIGIN] });
    d.port = 0;
    d.opts.wss = false;
    d.writeConfig();
    // Its log goes to a file, which the background process keeps writing.
    const logPath = `${d.dir}/background.log`;
    const logFd = fs.openSync(logPath, 'w');
    const r = run(BIN.ukeyd, ['--config', d.configPath], { env: d.env, stdio: ['ignore', 'pipe', logFd] });
    fs.closeSync(logFd);
    assert.equal(r.code, 0, fs.readFileSync(logPath, 'utf8'));
    // Ready means the socket answers now.
    const c = await UnixClient.connect(d.socket);
    assert.equal((await c.call('system.hello')).result.wss_port, null);
    c.close();
    const pid = Number(require('node:child_process').execFileSync('pgrep', ['-f', '--', `--config ${d.configPath}$`], { encoding: 'utf8' }).trim());
    t.after(() => {
        try {
            process.kill(pid, 'SIGKILL');
        } catch {
            /* gone */
        }
    });
    process.kill(pid, 'SIGTERM');
    while (!processGone(pid)) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(fs.existsSync(d.socket), false);
    const log = fs.readFileSync(logPath, 'utf8');
    assert.match(log, /stopped cleanly/);
    d.checkLog(log);
});
