'use strict';
// `ukeyctl doctor` (docs/doctor.md): every check made to pass and made to fail.
//
// The real daemon on a private rig for the key checks (valid, expired and not-yet-valid
// certificates from vpiv provision, a card held exclusively with `uk-pcsc hold`, pcscd gone, the
// CA bundle, a test signature through the scripted pinentry), listeners opened by this test on
// ukeyd's port and on a vendor's port, NSS databases and native-messaging manifests in the test's
// HOME, a fake `snap` on PATH; and a fake daemon (a Unix socket answering from a table) for what a
// rig cannot show: no reader at all, a reader without a key, an expiring certificate and a
// signature that does not verify against the certificate.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, exec, openssl, PIN } = require('./lib/rig');
const { BIN, tempDir, Ukeyd } = require('./lib/ukeyd');

const skip = rigUnavailable() || false;
const EXT_ID = 'abcdefghijklmnopabcdefghijklmnop';
const VENDOR_PORT = 61232; // China E-Port's UKey client (docs/doctor.md)

// Runs `ukeyctl --config CFG doctor --json ARGS` with the daemon's environment plus env;
// resolves {code, out, get(id) -> [checks], one(id) -> the only check}.
async function doctor(d, args = [], env = {}) {
    const r = await exec(BIN.ctl, ['--config', d.configPath, 'doctor', '--json', ...args], { env: { ...d.env, ...env } });
    let out;
    try {
        out = JSON.parse(r.stdout);
    } catch {
        assert.fail(`doctor printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
    const get = (id) => out.checks.filter((c) => c.id === id);
    const one = (id) => {
        const l = get(id);
        assert.equal(l.length, 1, `one ${id} check: ${JSON.stringify(out.checks, null, 1)}`);
        return l[0];
    };
    const worst = out.checks.reduce((w, c) => Math.max(w, { OK: 0, SKIP: 0, WARN: 1, FAIL: 2 }[c.status]), 0);
    assert.equal(r.code, worst, `the exit status is the worst result: ${JSON.stringify(out.checks, null, 1)}`);
    return { code: r.code, out, get, one, text: JSON.stringify(out.checks, null, 1) };
}

function listen(port) {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(s));
    });
}

// The browser's NSS database in home, with (or without) ukeyd's CA.
async function nssdb(home) {
    const db = path.join(home, '.pki/nssdb');
    fs.mkdirSync(db, { recursive: true });
    const r = await exec('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
    assert.equal(r.code, 0, r.stderr);
    return db;
}

// Our native-messaging manifest for Chromium in XDG_CONFIG_HOME.
function writeManifest(env) {
    const dir = path.join(env.XDG_CONFIG_HOME, 'chromium/NativeMessagingHosts');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'io.ukeyd.host.json'), JSON.stringify({
        name: 'io.ukeyd.host', description: 'test', path: BIN.nm, type: 'stdio',
        allowed_origins: [`chrome-extension://${EXT_ID}/`],
    }));
}

// One request through ukeyd-nm as the extension (its audit line is what doctor looks for).
async function viaExtension(t, d, method, params) {
    const p = spawn(BIN.nm, [`chrome-extension://${EXT_ID}/`], { env: { ...d.env, UKEYD_CONFIG: d.configPath }, stdio: ['pipe', 'pipe', 'ignore'] });
    t.after(() => p.exitCode === null && p.kill('SIGKILL'));
    const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', method, params, id: 1 }));
    const h = Buffer.alloc(4);
    h.writeUInt32LE(body.length);
    p.stdin.write(Buffer.concat([h, body]));
    let buf = Buffer.alloc(0);
    const answer = await new Promise((resolve) => p.stdout.on('data', (x) => {
        buf = Buffer.concat([buf, x]);
        if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0)) resolve(JSON.parse(buf.subarray(4, 4 + buf.readUInt32LE(0))));
    }));
    p.stdin.end();
    await new Promise((resolve) => p.on('exit', resolve));
    return answer;
}

test('a working set-up: every check passes; then each local check made to fail', { skip, timeout: 180000 }, async (t) => {
    const rig = await new Rig(t).up();
    // HOME prepared before ukeyd starts: it adds its CA to the NSS database it finds.
    const d = new Ukeyd(t, { origins: ['https://portal.example.cn'], extension_ids: [EXT_ID], config: { log_level: 'debug' } });
    d.env.PCSCLITE_CSOCK_NAME = rig.env.PCSCLITE_CSOCK_NAME;
    await nssdb(d.env.HOME);
    writeManifest(d.env);
    await d.start();
    d.pinentryAnswers([`pin ${PIN}`]);
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const ext = await viaExtension(t, d, 'cert.list', { token: tok.id });
    assert.ok(ext.result, JSON.stringify(ext));

    await t.test('all OK', async () => {
        const r = await doctor(d, ['--ca-bundle', rig.demoCa]);
        for (const id of ['daemon', 'pcscd', 'readers', 'key', 'exclusive', 'wss_port', 'vendor_ports', 'nss', 'native_messaging', 'extension', 'sandboxed_browsers'])
            assert.equal(r.one(id).status, 'OK', `${id}: ${r.text}`);
        for (const id of ['certificate', 'chain', 'signature']) {
            assert.deepEqual(r.get(id).map((x) => x.status), ['OK', 'OK'].slice(0, id === 'signature' ? 1 : 2), `${id}: ${r.text}`);
        }
        assert.match(r.one('signature').text, /9a .*verified against its certificate/);
        assert.match(r.get('certificate')[0].text, /valid until \d{4}-\d\d-\d\d \(\d+ days left\)/);
        assert.equal(r.code, 0);
        assert.equal(d.pinentryLog().length, 1, 'the test signature asked the PIN in ukeyd\'s dialog');
    });

    await t.test('human output in Chinese and English', async () => {
        const zh = await exec(BIN.ctl, ['--config', d.configPath, 'doctor', '--no-sign'], { env: { ...d.env, LANG: 'zh_CN.UTF-8' } });
        assert.match(zh.stdout, /\[ OK \] ukeyd \S+ 正在运行/);
        assert.match(zh.stdout, /共 \d+ 项检查/);
        const en = await exec(BIN.ctl, ['--config', d.configPath, 'doctor', '--no-sign'], { env: d.env });
        assert.match(en.stdout, /\[ OK \] ukeyd \S+ is running/);
        assert.match(en.stdout, /\[SKIP\] Test signature skipped \(--no-sign\)/);
    });

    await t.test('chain: a bundle with another CA fails; no bundle is skipped', async () => {
        const dir = tempDir(t);
        await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=Other CA',
            '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'other.pem'), '-days', '30']);
        const r = await doctor(d, ['--no-sign', '--ca-bundle', path.join(dir, 'other.pem')]);
        assert.deepEqual(r.get('chain').map((x) => x.status), ['FAIL', 'FAIL'], r.text);
        assert.match(r.get('chain')[0].fix, /not issued by the expected CA/);
        assert.equal(r.code, 2);
        const none = await doctor(d, ['--no-sign']);
        assert.equal(none.one('chain').status, 'SKIP');
        assert.equal(none.one('signature').status, 'SKIP');
    });

    await t.test('signature: the PIN dialog cancelled is a warning', async () => {
        d.pinentryAnswers(['cancel']);
        const r = await doctor(d);
        assert.equal(r.one('signature').status, 'WARN', r.text);
        assert.match(r.one('signature').text, /CONSENT_DENIED/);
    });

    await t.test('wss_port and vendor_ports: listeners of another program are named', async () => {
        let vendor;
        try {
            vendor = await listen(VENDOR_PORT);
        } catch {
            t.diagnostic(`port ${VENDOR_PORT} is taken on this machine: vendor_ports fail case not run`);
        }
        // ukeyd's own port: a second daemon whose first port this process holds.
        const blocker = await listen(0);
        const port = blocker.address().port;
        const fb = await listen(0);
        const fallback = fb.address().port;
        await new Promise((resolve) => fb.close(resolve));
        const d2 = await new Ukeyd(t, { port, fallback: [fallback] }).start();
        const r = await doctor(d2, ['--no-sign']);
        const w = r.one('wss_port');
        assert.equal(w.status, 'WARN', r.text);
        assert.match(w.text, new RegExp(`Port ${port} is taken by node \\(pid ${process.pid}.*ukeyd uses port ${fallback} instead`));
        if (vendor) {
            const v = r.one('vendor_ports');
            assert.equal(v.status, 'WARN', r.text);
            assert.match(v.text, new RegExp(`Port ${VENDOR_PORT} \\(China E-Port.*node \\(pid ${process.pid}`));
            await new Promise((resolve) => vendor.close(resolve));
        }
        await d2.stop();
        await new Promise((resolve) => blocker.close(resolve));
    });

    await t.test('nss: no database warns, a database without our CA fails', async () => {
        const home = tempDir(t);
        const noDb = await doctor(d, ['--no-sign'], { HOME: home, XDG_DATA_HOME: path.join(home, 'share') });
        assert.equal(noDb.one('nss').status, 'WARN', noDb.text);
        await nssdb(home);
        const empty = await doctor(d, ['--no-sign'], { HOME: home });
        assert.equal(empty.one('nss').status, 'FAIL', empty.text);
        assert.match(empty.one('nss').fix, /restart ukeyd/);
    });

    await t.test('native_messaging: Chromium without our manifest fails', async () => {
        const cfg = tempDir(t);
        const r = await doctor(d, ['--no-sign'], { XDG_CONFIG_HOME: cfg });
        const nm = r.get('native_messaging').find((x) => x.text.startsWith('Chromium'));
        assert.equal(nm.status, 'FAIL', r.text);
        assert.match(nm.text, /io\.ukeyd\.host is not registered/);
    });

    await t.test('sandboxed_browsers: a Snap Chromium warns', async () => {
        const bin = tempDir(t);
        fs.writeFileSync(path.join(bin, 'snap'), '#!/bin/sh\n[ "$1" = list ] && printf "Name Version Rev Tracking Publisher Notes\\nchromium 1.0 1 latest/stable canonical -\\n"\n', { mode: 0o755 });
        const r = await doctor(d, ['--no-sign'], { PATH: `${bin}:${process.env.PATH}` });
        assert.equal(r.one('sandboxed_browsers').status, 'WARN', r.text);
        assert.match(r.one('sandboxed_browsers').text, /chromium \(Snap\)/);
    });

    await t.test('exclusive: another program holding the card is named (uk-pcsc)', async () => {
        d.pinentryAnswers([`pin ${PIN}`]);
        const h = await rig.hold('exclusive', 60);
        const r = await doctor(d);
        const x = r.one('exclusive');
        assert.equal(x.status, 'FAIL', r.text);
        assert.match(x.text, new RegExp(`holds the key in ${rig.reader.replace(/[()]/g, '.')} exclusively`));
        assert.match(x.fix, new RegExp(`uk-pcsc \\(pid ${h.proc.pid}`));
        h.proc.kill('SIGTERM');
        await h.done;
    });

    await t.test('pcscd: gone is a failure', async () => {
        await rig.down();
        await c.event((m) => m.method === 'token.removed', 10000, 'token.removed');
        const r = await doctor(d, ['--no-sign']);
        assert.equal(r.one('pcscd').status, 'FAIL', r.text);
        assert.match(r.one('pcscd').fix, /pcscd/);
    });
    c.close();
    await d.stop();

    await t.test('daemon: not running is a failure, the local checks still run', async () => {
        const r = await doctor(d, ['--no-sign']);
        assert.equal(r.one('daemon').status, 'FAIL', r.text);
        assert.equal(r.code, 2);
        assert.ok(r.get('wss_port').length === 1 && r.get('nss').length === 1);
    });
});

test('certificates on the key: expired fails, not yet valid warns (with the dates)', { skip, timeout: 90000 }, async (t) => {
    const rig = new Rig(t, { cards: 2 });
    await rig.provision(0, ['--serial', '31000000', '--demo-certs', path.join(rig.cardDir(0), 'demo'), '--cert-from', '-400', '--cert-days', '-1']);
    await rig.provision(1, ['--serial', '31000001', '--demo-certs', path.join(rig.cardDir(0), 'demo'), '--cert-from', '2', '--cert-days', '30']);
    await rig.up();
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    await waitToken(c, rig.reader);
    await waitToken(c, rig.reader1);
    const r = await doctor(d, ['--no-sign']);
    const certs = r.get('certificate');
    assert.deepEqual(certs.map((x) => x.status).sort(), ['FAIL', 'FAIL', 'WARN', 'WARN'], r.text);
    assert.ok(certs.some((x) => /expired on \d{4}-\d\d-\d\d/.test(x.text) && /Repair/.test(x.fix)), r.text);
    assert.ok(certs.some((x) => /not valid yet: valid from \d{4}-\d\d-\d\d/.test(x.text)), r.text);
    assert.equal(r.code, 2);
    c.close();
    await d.stop();
});

/* ---------- a fake daemon for what the rig cannot show ---------- */

// A Unix socket server answering system.hello, token.list, cert.list, sign, audit.read and
// renewal.list from `table` (method -> result).
async function fakeDaemon(t, table) {
    const dir = tempDir(t);
    const sock = path.join(dir, 'fake.sock');
    const server = net.createServer((s) => {
        let buf = Buffer.alloc(0);
        s.on('data', (x) => {
            buf = Buffer.concat([buf, x]);
            while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0)) {
                const req = JSON.parse(buf.subarray(4, 4 + buf.readUInt32LE(0)));
                buf = buf.subarray(4 + buf.readUInt32LE(0));
                const result = table[req.method] !== undefined ? table[req.method] : {};
                const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: req.id, result: typeof result === 'function' ? result(req.params) : result }));
                const h = Buffer.alloc(4);
                h.writeUInt32LE(body.length);
                s.write(Buffer.concat([h, body]));
            }
        });
        s.on('error', () => {});
    });
    await new Promise((resolve) => server.listen(sock, resolve));
    t.after(() => server.close());
    const env = { PATH: process.env.PATH, HOME: dir, XDG_CONFIG_HOME: path.join(dir, 'cfg'), XDG_DATA_HOME: path.join(dir, 'share'), LANG: 'C.UTF-8' };
    return {
        run: async (args = []) => {
            const r = await exec(BIN.ctl, ['--socket', sock, 'doctor', '--json', ...args], { env });
            const out = JSON.parse(r.stdout);
            return { code: r.code, out, get: (id) => out.checks.filter((c) => c.id === id), text: JSON.stringify(out.checks, null, 1) };
        },
    };
}

const HELLO = { name: 'ukeyd', version: 'fake', wss_port: null };

test('fake daemon: no reader, a reader without key, an expiring certificate, a signature that does not verify', async (t) => {
    await t.test('readers: none is a failure', async () => {
        const f = await fakeDaemon(t, { 'system.hello': HELLO, 'token.list': { tokens: [] } });
        const r = await f.run(['--no-sign']);
        assert.equal(r.get('readers')[0].status, 'FAIL', r.text);
        assert.equal(r.get('pcscd')[0].status, 'OK');
    });
    await t.test('key: a reader without a key is a failure', async () => {
        const f = await fakeDaemon(t, { 'system.hello': HELLO, 'token.list': { tokens: [{ id: null, reader: 'R 00 00', present: false }] } });
        const r = await f.run(['--no-sign']);
        assert.equal(r.get('readers')[0].status, 'OK', r.text);
        assert.equal(r.get('key')[0].status, 'FAIL', r.text);
    });

    // A certificate (EC P-256) and a signature made with another key.
    const dir = tempDir(t);
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=Zhang San/O=NHSA/C=CN',
        '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'), '-days', '20']);
    const der = crypto.createPublicKey(fs.readFileSync(path.join(dir, 'c.pem'))) && new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'c.pem'))).raw;
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const until = new Date(Date.now() + 20 * 86400000).toISOString().replace(/\.\d+Z$/, 'Z');
    const cert = { key: '9a', subject: 'CN=Zhang San,O=NHSA,C=CN', status: 'expiring', days_left: 19, not_before: '2026-01-01T00:00:00Z', not_after: until,
        key_algorithm: 'EC', curve: 'P-256', der: der.toString('base64') };
    const table = {
        'system.hello': HELLO,
        'token.list': { tokens: [{ id: 'piv:1', reader: 'R 00 00', present: true, label: 'PIV 1' }] },
        'cert.list': { token: 'piv:1', certificates: [cert] },
        sign: (p) => ({ signature: crypto.sign('sha256', Buffer.from(p.data, 'base64'), other.privateKey).toString('base64'), algorithm: p.algorithm, key: p.key }),
    };
    await t.test('certificate: expiring is a warning with the date', async () => {
        const f = await fakeDaemon(t, table);
        const r = await f.run(['--no-sign']);
        const x = r.get('certificate')[0];
        assert.equal(x.status, 'WARN', r.text);
        assert.match(x.text, /expires on \d{4}-\d\d-\d\d \(19 days left\)/);
        assert.match(x.fix, /Extend/);
    });
    await t.test('signature: one that does not verify against the certificate is a failure', async () => {
        const f = await fakeDaemon(t, table);
        const r = await f.run([]);
        const s = r.get('signature')[0];
        assert.equal(s.status, 'FAIL', r.text);
        assert.match(s.text, /does NOT verify/);
        assert.equal(r.code, 2);
    });
});
