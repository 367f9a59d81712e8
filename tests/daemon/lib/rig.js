'use strict';
// The private rig (scripts/rig: pcscd + vpcd + virtual PIV cards in their own namespaces) from
// node tests: up, DIR/env parsed into an object, the card's fault controls, the independent tools
// (yubico-piv-tool, openssl, uk-pcsc) run asynchronously so the test's event loop keeps reading
// the daemon meanwhile, and always down in a teardown.
//
// Binaries come from the environment (ctest passes its own build's): UK_VPIV, UK_PCSC; else the
// dev build.

const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ROOT, tempDir, Ukeyd, UnixClient, WssClient } = require('./ukeyd');

const RIG = path.join(ROOT, 'scripts/rig');
const VPIV = process.env.UK_VPIV || path.join(ROOT, 'build/dev/tests/vcard/vpiv');
const PCSC = process.env.UK_PCSC || path.join(ROOT, 'build/dev/tests/rig/uk-pcsc');

// Credentials of a freshly provisioned card (docs/testing.md).
const PIN = '123456';
const PUK = '12345678';
const MGM = '010203040506070801020304050607080102030405060708';

// Why the rig cannot run here, or null: it needs root or unprivileged user namespaces (the shell
// tests exit 77 in the same case; node tests skip).
let whyNoRig;
function rigUnavailable() {
    if (whyNoRig !== undefined) return whyNoRig;
    const args = process.getuid() === 0 ? ['--mount', '--net', 'true'] : ['--map-root-user', '--mount', '--net', 'true'];
    const r = spawnSync('unshare', args, { stdio: 'ignore' });
    whyNoRig = r.status === 0 ? null : 'no root and no unprivileged user namespaces: the rig cannot run here';
    return whyNoRig;
}

// Runs file with args; resolves {code, signal, stdout, stderr} (stdout as a Buffer when
// opts.binary). opts: env (added to ours), input (written to stdin), binary.
function exec(file, args, opts = {}) {
    return new Promise((resolve, reject) => {
        const p = spawn(file, args, {
            env: Object.assign({}, process.env, opts.env || {}),
            stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        });
        const out = [];
        const err = [];
        p.stdout.on('data', (d) => out.push(d));
        p.stderr.on('data', (d) => err.push(d));
        p.on('error', reject);
        p.on('close', (code, signal) => {
            const stdout = Buffer.concat(out);
            resolve({
                code,
                signal,
                stdout: opts.binary ? stdout : stdout.toString('utf8'),
                stderr: Buffer.concat(err).toString('utf8'),
            });
        });
        if (opts.input !== undefined) p.stdin.end(opts.input);
    });
}

// exec that must exit 0; resolves stdout.
async function mustExec(file, args, opts = {}) {
    const r = await exec(file, args, opts);
    assert.equal(r.code, 0, `${file} ${args.join(' ')} exited ${r.code} ${r.signal || ''}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
}

// Parses DIR/env (`export NAME='value'` lines, values single-quoted by scripts/rig).
function parseEnv(text) {
    const env = {};
    for (const line of text.split('\n')) {
        const m = line.match(/^export ([A-Z0-9_]+)=(.*)$/);
        if (!m) continue;
        // '...' with ' written as '\'' inside.
        env[m[1]] = m[2].replace(/'\\''/g, "'").replace(/^'|'$/g, '');
    }
    return env;
}

class Rig {
    // opts: cards (1|2), profile, extLength, latencyApduUs, latencyByteUs, t. DIR is a short new
    // temp dir (socket paths); the teardown takes the rig down first and then removes DIR (one
    // hook: node runs `after` hooks in the order they were added, and a DIR removed first would
    // leave `rig down` nothing to find, and the rig running).
    constructor(t, opts = {}) {
        this.t = t;
        this.opts = opts;
        this.top = tempDir(null, 'ukr-');
        this.dir = path.join(this.top, 'rig');
        this.env = null;
        this.upCount = 0;
        // A failing down (a rig process crashed, an ASan report of the card) fails a test that
        // passed; node keeps the test's own error when it failed already.
        if (t)
            t.after(async () => {
                try {
                    await this.down();
                } finally {
                    fs.rmSync(this.top, { recursive: true, force: true });
                }
            });
    }

    args() {
        const a = ['up', this.dir, '--cards', String(this.opts.cards || 1)];
        if (this.opts.profile) a.push('--profile', this.opts.profile);
        if (this.opts.extLength) a.push('--ext-length');
        if (this.opts.latencyApduUs !== undefined) a.push('--latency-apdu-us', String(this.opts.latencyApduUs));
        if (this.opts.latencyByteUs !== undefined) a.push('--latency-byte-us', String(this.opts.latencyByteUs));
        return a;
    }

    // scripts/rig up; resolves once every card is present through PC/SC (that is what `up` waits
    // for) with DIR/env parsed into this.env.
    async up() {
        // UK_RIG_OWNER: the rig goes down by itself if this test process dies without its hooks.
        const r = await exec(RIG, this.args(), { env: { UK_VPIV: VPIV, UK_PCSC: PCSC, UK_RIG_OWNER: String(process.pid) } });
        assert.equal(r.code, 0, `scripts/rig ${this.args().join(' ')} failed:\n${r.stderr}`);
        this.env = parseEnv(fs.readFileSync(path.join(this.dir, 'env'), 'utf8'));
        assert.ok(this.env.PCSCLITE_CSOCK_NAME && this.env.UK_RIG_READER, `incomplete ${this.dir}/env`);
        this.upCount++;
        return this;
    }

    // scripts/rig down; it must exit 0 (3: a rig process crashed or had to be killed), or
    // `expect` when the test killed one itself.
    async down({ expect = 0 } = {}) {
        if (!this.upCount) return;
        // this.env stays: the names in it (reader, sockets) are the same at the next `up`.
        const r = await exec(RIG, ['down', this.dir]);
        if (r.code === expect) return r;
        assert.fail(`scripts/rig down ${this.dir} exited ${r.code}:\n${r.stderr}\n${this.logs()}`);
    }

    // The tails of the rig's logs (for failure messages).
    logs() {
        const d = path.join(this.dir, 'log');
        let s = '';
        for (const f of fs.existsSync(d) ? fs.readdirSync(d) : []) {
            const lines = fs.readFileSync(path.join(d, f), 'utf8').trimEnd().split('\n').slice(-15);
            s += `---- ${f} ----\n${lines.join('\n')}\n`;
        }
        return s;
    }

    get reader() {
        return this.env.UK_RIG_READER;
    }

    // The second reader (slot 1 of vpcd): empty unless --cards 2.
    get reader1() {
        return this.reader.replace(/ 00 00$/, ' 00 01');
    }

    // Environment for PC/SC clients of this rig.
    get pcscEnv() {
        return { PCSCLITE_CSOCK_NAME: this.env.PCSCLITE_CSOCK_NAME };
    }

    cardDir(n = 0) {
        return path.join(this.dir, `card${n}`);
    }

    get demoCa() {
        return path.join(this.cardDir(0), 'demo', 'demo-ca.pem');
    }

    // `vpiv provision --state DIR/cardN/state --force ...` (before `up`: the rig then reuses it).
    async provision(n, args) {
        fs.mkdirSync(path.join(this.cardDir(n), 'demo'), { recursive: true });
        await mustExec(VPIV, ['provision', '--state', path.join(this.cardDir(n), 'state'), '--force', ...args]);
    }

    // `vpiv ctl CTL COMMAND...` for card n; resolves the reply line.
    async ctl(cmd, n = 0) {
        const sock = path.join(this.cardDir(n), 'ctl.sock');
        return (await mustExec(VPIV, ['ctl', sock, ...cmd.split(' ')])).trim();
    }

    // The card's counters as numbers ({apdus_in, apdus_out, bytes_in, bytes_out}).
    async counters(n = 0) {
        const c = {};
        for (const kv of (await this.ctl('counters', n)).split(/\s+/)) {
            const m = kv.match(/^(\w+)=(\d+)$/);
            if (m) c[m[1]] = Number(m[2]);
        }
        assert.ok('apdus_in' in c, 'vpiv ctl counters prints apdus_in');
        return c;
    }

    // yubico-piv-tool -r READER ARGS (must succeed); resolves stdout.
    piv(args, opts = {}) {
        return mustExec('yubico-piv-tool', ['-r', this.reader, ...args], { ...opts, env: this.pcscEnv });
    }

    // yubico-piv-tool that may fail; resolves {code, stdout, stderr}.
    pivTry(args) {
        return exec('yubico-piv-tool', ['-r', this.reader, ...args], { env: this.pcscEnv });
    }

    // uk-pcsc ARGS against this rig's pcscd; resolves {code, stdout, stderr}.
    pcsc(args) {
        return exec(PCSC, args, { env: this.pcscEnv });
    }

    // Waits until the card of `reader` is present|absent through PC/SC (up to ms).
    async wait(state, ms = 10000, reader = this.reader) {
        const r = await this.pcsc(['wait', reader, state, String(ms)]);
        assert.equal(r.code, 0, `card in '${reader}' not ${state} within ${ms} ms: ${r.stderr}`);
    }

    // `uk-pcsc hold READER --MODE SECONDS` in the background; resolves once it printed "held"
    // with {proc, done} (done resolves with the exit code). Stopped in the teardown if still there.
    hold(mode, seconds, reader = this.reader) {
        const p = spawn(PCSC, ['hold', reader, `--${mode}`, String(seconds)], {
            env: Object.assign({}, process.env, this.pcscEnv),
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        const done = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
        if (this.t) this.t.after(() => p.exitCode === null && p.signalCode === null && p.kill('SIGTERM'));
        let out = '';
        let err = '';
        p.stderr.on('data', (d) => (err += d));
        return new Promise((resolve, reject) => {
            p.stdout.on('data', (d) => {
                out += d;
                if (/^held /m.test(out)) resolve({ proc: p, done });
            });
            done.then((code) => reject(new Error(`uk-pcsc hold exited ${code} before holding: ${err}`)));
        });
    }

    // PID of a rig process as recorded in DIR/pids (pcscd, card0, supervisor).
    pid(name) {
        return Number(fs.readFileSync(path.join(this.dir, 'pids', name), 'utf8').split(' ')[0]);
    }
}

// openssl ARGS (must succeed); resolves stdout (a Buffer with opts.binary).
function openssl(args, opts = {}) {
    return mustExec('openssl', args, opts);
}

/* ---------- the daemon on a rig ---------- */

// The allowed web origin of the daemons started here (for WSS clients).
const ORIGIN = 'https://portal.example.cn';

// A private ukeyd (lib/ukeyd.js) whose PC/SC client library talks to the rig's pcscd. opts as
// for Ukeyd; log_level defaults to debug here (the most the log ever says about a card).
async function startUkeyd(t, rig, opts = {}) {
    const config = Object.assign({ log_level: 'debug' }, opts.config || {});
    const d = new Ukeyd(t, Object.assign({ origins: [ORIGIN] }, opts, { config }));
    d.env.PCSCLITE_CSOCK_NAME = rig.env.PCSCLITE_CSOCK_NAME;
    return d.start();
}

// A JSON-RPC client (Unix socket or WSS) that tells answers from notifications: call() resolves
// the answer with its id, notifications queue up for event().
class KeysClient {
    static async unix(d) {
        return new KeysClient(await UnixClient.connect(d.socket));
    }

    static async wss(d) {
        return new KeysClient(await WssClient.open(d.port, { origin: ORIGIN, ca: d.ca }));
    }

    constructor(conn) {
        this.conn = conn;
        this.nextId = 1;
        this.pending = new Map();
        this.events = [];
        this.eventWaiters = [];
        this.pump();
    }

    async pump() {
        for (;;) {
            const m = await this.conn.recv();
            if (m === null) break;
            if (m.id === undefined && typeof m.method === 'string') {
                m.at = performance.now();
                this.events.push(m);
                this.eventWaiters = this.eventWaiters.filter((w) => !w());
            } else if (this.pending.has(m.id)) {
                this.pending.get(m.id)(m);
                this.pending.delete(m.id);
            } else {
                throw new Error(`unexpected message ${JSON.stringify(m)}`);
            }
        }
        for (const resolve of this.pending.values()) resolve(null);
        this.pending.clear();
    }

    // Resolves the answer (the whole response object), or null if the connection closed.
    call(method, params) {
        const id = this.nextId++;
        const req = { jsonrpc: '2.0', method, id };
        if (params !== undefined) req.params = params;
        return new Promise((resolve) => {
            this.pending.set(id, resolve);
            this.conn.send(req);
        });
    }

    // call() that must succeed; resolves the result.
    async ok(method, params) {
        const r = await this.call(method, params);
        assert.ok(r && r.result, `${method} ${JSON.stringify(params)} failed: ${JSON.stringify(r)}`);
        return r.result;
    }

    // Resolves the first queued (or coming) notification for which pred(msg) is true, and removes
    // it and every one before it from the queue. Rejects after ms (a generous bound, never a
    // measurement).
    event(pred, ms = 10000, what = 'a notification') {
        return new Promise((resolve, reject) => {
            const check = () => {
                const i = this.events.findIndex(pred);
                if (i < 0) return false;
                const m = this.events[i];
                this.events.splice(0, i + 1);
                clearTimeout(timer);
                resolve(m);
                return true;
            };
            const timer = setTimeout(() => {
                this.eventWaiters = this.eventWaiters.filter((w) => w !== check);
                reject(new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(this.events)}`));
            }, ms);
            if (!check()) this.eventWaiters.push(check);
        });
    }

    close() {
        this.conn.close();
    }
}

// The token in `reader` once it is identified: subscribes first (so no insertion is missed
// between the two), then token.list, else waits for its token.inserted. Resolves the summary.
async function waitToken(c, reader, ms = 10000) {
    await c.ok('system.subscribe');
    const r = await c.call('token.list');
    const have = r.result && r.result.tokens.find((x) => x.reader === reader && x.present && x.id);
    if (have) return have;
    const ev = await c.event(
        (m) => m.method === 'token.inserted' && m.params.token.reader === reader,
        ms,
        `token.inserted for '${reader}'`,
    );
    return ev.params.token;
}

module.exports = {
    Rig,
    rigUnavailable,
    exec,
    mustExec,
    openssl,
    parseEnv,
    startUkeyd,
    KeysClient,
    waitToken,
    ORIGIN,
    VPIV,
    PCSC,
    PIN,
    PUK,
    MGM,
};
