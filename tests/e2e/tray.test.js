'use strict';
// The tray indicator (ukeyd-tray) on a virtual X display (Xvfb) against a private rig and ukeyd:
//
// - a screenshot of the menu in each state (ukeyd not running, no key, valid, expiring, expired,
//   not yet valid) in zh-CN and one in English, into UK_ARTIFACT_DIR as tray-STATE.png. Xvfb has
//   no StatusNotifierWatcher (no panel), so the indicator itself would show nothing: the shots use
//   the tray's --show-menu mode, which pops the very same GtkMenu up under a plain window with the
//   icon; --screenshot writes the screen once the state is settled and exits.
// - the indicator mode on a D-Bus session bus (dbus-run-session): it follows the key being
//   removed and inserted and ukeyd being stopped and started again (reconnects by itself), uses
//   no CPU while idle, and announces reminders once (remembered across a restart of the tray in
//   tray-reminders.json, mode 0600) and a key that needs repair at every insertion.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken } = require('../daemon/lib/rig');
const { tempDir } = require('../daemon/lib/ukeyd');

const TRAY = process.env.UKEYD_TRAY_BIN;
const ARTIFACTS = process.env.UK_ARTIFACT_DIR || os.tmpdir();
fs.mkdirSync(ARTIFACTS, { recursive: true });
const XVFB = ['/usr/bin/Xvfb'].find((p) => fs.existsSync(p));
const DBUS_RUN = ['/usr/bin/dbus-run-session'].find((p) => fs.existsSync(p));
const skip = rigUnavailable() || (!TRAY || !fs.existsSync(TRAY) ? 'ukeyd-tray was not built' : !XVFB ? 'Xvfb missing' : false);

// An Xvfb of our own on a free display (-displayfd); resolves ":N".
async function xvfb(t) {
    const p = spawn(XVFB, ['-displayfd', '3', '-screen', '0', '1024x768x24', '-nolisten', 'tcp', '-noreset'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
    t.after(() => p.exitCode === null && p.kill('SIGTERM'));
    const n = await new Promise((resolve, reject) => {
        let s = '';
        p.stdio[3].on('data', (d) => {
            s += d;
            if (s.includes('\n')) resolve(s.trim());
        });
        p.on('exit', (code) => reject(new Error(`Xvfb exited ${code}`)));
    });
    return `:${n}`;
}

// Tray environment: the daemon's HOME and XDG dirs, the display, the language.
// Under ASan, leak reports are off for the tray only: GTK, fontconfig and D-Bus keep caches for
// the life of the process by design (the tray's own code is covered by test_tray_state).
function trayEnv(d, display, lang) {
    const env = { ...d.env, DISPLAY: display, LANG: lang, TZ: 'Asia/Shanghai', NO_AT_BRIDGE: '1', GDK_BACKEND: 'x11' };
    env.ASAN_OPTIONS = `${env.ASAN_OPTIONS ? env.ASAN_OPTIONS + ':' : ''}detect_leaks=0`;
    return env;
}

// One screenshot: `ukeyd-tray --show-menu --screenshot FILE --verbose`; resolves the states it
// printed.
async function shot(d, display, name, { lang = 'zh_CN.UTF-8', socket } = {}) {
    const file = path.join(ARTIFACTS, `tray-${name}.png`);
    fs.rmSync(file, { force: true });
    // The tray's own settings: the portal's renewal page (docs/configuration.md).
    const cfgDir = path.join(d.env.XDG_CONFIG_HOME, 'ukeyd');
    fs.mkdirSync(cfgDir, { recursive: true });
    fs.writeFileSync(path.join(cfgDir, 'tray.json'), JSON.stringify({ renewal_url: 'http://127.0.0.1:8083/#/login' }));
    const args = ['--socket', socket || d.socket, '--state-file', path.join(d.dir, `shot-${name}.json`), '--show-menu', '--screenshot', file, '--verbose'];
    const r = await new Promise((resolve) => {
        const p = spawn(TRAY, args, { env: trayEnv(d, display, lang), stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (x) => (out += x));
        p.stderr.on('data', (x) => (err += x));
        const timer = setTimeout(() => p.kill('SIGKILL'), 30000);
        p.on('exit', (code) => {
            clearTimeout(timer);
            resolve({ code, out, err });
        });
    });
    assert.equal(r.code, 0, `ukeyd-tray for ${name}: ${r.out}\n${r.err}`);
    assert.ok(fs.statSync(file).size > 1000, `${file} written`);
    const png = fs.readFileSync(file);
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    console.log(`# ${file}: ${r.out.trim().split('\n').join(', ')}`);
    return r.out.split('\n').filter((l) => l.startsWith('state ')).map((l) => l.slice(6));
}

async function provisioned(t, cards) {
    const rig = new Rig(t, { cards: cards.length });
    for (let i = 0; i < cards.length; i++) {
        const args = ['--serial', String(32000000 + i), '--demo-certs', path.join(rig.cardDir(0), 'demo')];
        if (cards[i].from !== undefined) args.push('--cert-from', String(cards[i].from));
        args.push('--cert-days', String(cards[i].days));
        await rig.provision(i, args);
    }
    return rig.up();
}

test('screenshots of the menu in each state', { skip, timeout: 240000 }, async (t) => {
    const display = await xvfb(t);
    const none = tempDir(t);

    await t.test('ukeyd not running', async () => {
        const fake = { env: { PATH: process.env.PATH, HOME: none, XDG_CONFIG_HOME: path.join(none, 'c'), XDG_STATE_HOME: path.join(none, 's') }, dir: none };
        assert.deepEqual(await shot(fake, display, 'daemon-down', { socket: path.join(none, 'no.sock') }), ['daemon-down']);
    });

    await t.test('valid, then no key', async () => {
        const rig = await new Rig(t).up();
        const d = await startUkeyd(t, rig);
        const c = await KeysClient.unix(d);
        const tok = await waitToken(c, rig.reader);
        assert.deepEqual(await shot(d, display, 'valid'), ['valid']);
        assert.deepEqual(await shot(d, display, 'valid-en', { lang: 'C.UTF-8' }), ['valid']);
        await rig.ctl('remove');
        await c.event((m) => m.method === 'token.removed' && m.params.token.id === tok.id, 10000, 'token.removed');
        assert.deepEqual(await shot(d, display, 'no-key'), ['no-key']);
        c.close();
        await d.stop();
    });

    await t.test('expiring, expired, not yet valid', async () => {
        for (const [name, card] of [['expiring', { days: 20 }], ['expired', { from: -400, days: -1 }], ['not-yet-valid', { from: 2, days: 365 }]]) {
            const rig = await provisioned(t, [card]);
            const d = await startUkeyd(t, rig);
            const c = await KeysClient.unix(d);
            await waitToken(c, rig.reader);
            assert.deepEqual(await shot(d, display, name), [name]);
            c.close();
            await d.stop();
            await rig.down();
        }
    });
});

// A tray in indicator mode on its own session bus; lines() is what it printed so far and
// waitLine(re) resolves once a line matches (rejects after ms).
function startTray(t, d, display, stateFile) {
    const args = ['--socket', d.socket, '--state-file', stateFile, '--verbose'];
    const p = spawn(DBUS_RUN, ['--', TRAY, ...args], { env: trayEnv(d, display, 'C.UTF-8'), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const tray = { proc: p, out: '', err: '', waiters: [] };
    const check = () => (tray.waiters = tray.waiters.filter((w) => !w()));
    p.stdout.on('data', (x) => {
        tray.out += x;
        check();
    });
    p.stderr.on('data', (x) => (tray.err += x));
    tray.exited = new Promise((resolve) => p.on('exit', resolve));
    // SIGTERM to the session's process group (dbus-run-session, its bus and the tray).
    const killGroup = (sig) => {
        try {
            process.kill(-p.pid, sig);
        } catch {
            /* gone */
        }
    };
    tray.stop = async () => {
        if (p.exitCode === null) killGroup('SIGTERM');
        await tray.exited;
    };
    tray.lines = () => tray.out.split('\n').filter(Boolean);
    // Resolves once the n-th line matching re (counted from the start) is there.
    tray.waitLine = (re, n = 1, ms = 20000) =>
        new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no line ${re} (#${n}) within ${ms} ms:\n${tray.out}\n${tray.err}`)), ms);
            const w = () => {
                const l = tray.lines().filter((x) => re.test(x));
                if (l.length < n) return false;
                clearTimeout(timer);
                resolve(l[n - 1]);
                return true;
            };
            if (!w()) tray.waiters.push(w);
        });
    t.after(() => p.exitCode === null && killGroup('SIGKILL'));
    return tray;
}

// CPU ticks (utime + stime) of pid and its children.
function cpuTicks(pid) {
    let total = 0;
    for (const p of [pid, ...spawnSync('pgrep', ['-P', String(pid)]).stdout.toString().split('\n').filter(Boolean).map(Number)]) {
        try {
            const f = fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
            total += Number(f[11]) + Number(f[12]);
        } catch {
            /* gone */
        }
    }
    return total;
}

test('indicator mode: follows the key and ukeyd, idles, reminds once', { skip: skip || (!DBUS_RUN && 'dbus-run-session missing'), timeout: 180000 }, async (t) => {
    const display = await xvfb(t);
    // card 0 expires in 20 days, card 1 expired yesterday (starts removed).
    const rig = await provisioned(t, [{ days: 20 }, { from: -400, days: -1 }]);
    await rig.ctl('remove', 1);
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const stateFile = path.join(d.dir, 'state/tray-reminders.json');

    let tray = startTray(t, d, display, stateFile);
    await tray.waitLine(/^state expiring$/);
    const note = await tray.waitLine(/^notify /);
    assert.match(note, /^notify Your certificate expires in (19|20) days \| The certificate of .* ends on \d{4}-\d\d-\d\d/);

    await t.test('no CPU while idle', async () => {
        await new Promise((r) => setTimeout(r, 1000));
        const before = cpuTicks(tray.proc.pid);
        await new Promise((r) => setTimeout(r, 3000));
        const used = cpuTicks(tray.proc.pid) - before;
        console.log(`# tray CPU over 3 s idle: ${used} ticks`);
        assert.ok(used <= 2, `the idle tray used ${used} clock ticks in 3 s`);
    });

    await t.test('key removed and inserted', async () => {
        await rig.ctl('remove');
        await tray.waitLine(/^state no-key$/);
        await rig.ctl('insert');
        await tray.waitLine(/^state expiring$/, 2);
    });

    await t.test('a key that needs repair inserted: notified at each insertion', async () => {
        await rig.ctl('insert', 1);
        await tray.waitLine(/^notify This key needs repair/);
        await tray.waitLine(/^state expired$/);
        await rig.ctl('remove', 1);
        await tray.waitLine(/^state expiring$/, 3);
        await rig.ctl('insert', 1);
        await tray.waitLine(/^notify This key needs repair/, 2);
        await rig.ctl('remove', 1);
        await tray.waitLine(/^state expiring$/, 4);
    });

    await t.test('ukeyd stopped and started again: the tray reconnects by itself', async () => {
        c.close();
        await d.stop();
        await tray.waitLine(/^state daemon-down$/);
        await d.start();
        await tray.waitLine(/^state expiring$/, 5, 30000);
        console.log(`# tray lines: ${tray.lines().join(' / ')}`);
    });

    await t.test('reminders are remembered across a restart of the tray', async () => {
        await tray.stop();
        assert.equal(fs.statSync(stateFile).mode & 0o777, 0o600);
        const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
        assert.ok(saved.certificates.some((e) => e.notified.includes(30)), JSON.stringify(saved));
        tray = startTray(t, d, display, stateFile);
        await tray.waitLine(/^state expiring$/);
        // The state is applied only after every answer, notifications included: none came.
        assert.deepEqual(tray.lines().filter((l) => l.startsWith('notify ') && /expires in/.test(l)), []);
        await tray.stop();
    });
    assert.equal(tok.reader, rig.reader);
    await d.stop();
});
