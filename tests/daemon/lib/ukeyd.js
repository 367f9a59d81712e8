'use strict';
// Test harness for the daemon-level tests: a private ukeyd per test (own temp dir, config, ports,
// socket, HOME and XDG_* dirs), clients for the Unix socket, WSS and the raw WebSocket upgrade,
// and the checks every test ends with (exit status 0 after SIGTERM, a clean log).
//
// Binaries come from the environment (ctest passes them from generator expressions), else from
// the dev build: UKEYD_BIN, UKEYD_NM_BIN, UKEYCTL_BIN.

const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');
const WebSocket = require('ws');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = {
    ukeyd: process.env.UKEYD_BIN || path.join(ROOT, 'build/dev/daemon/main/ukeyd'),
    nm: process.env.UKEYD_NM_BIN || path.join(ROOT, 'build/dev/daemon/nm/ukeyd-nm'),
    ctl: process.env.UKEYCTL_BIN || path.join(ROOT, 'build/dev/tray/ukeyctl'),
    pinentry: process.env.UK_PINENTRY_BIN || path.join(ROOT, 'build/dev/tests/pinentry/uk-pinentry-script'),
};
const VECTORS_DIR = path.join(ROOT, 'protocol/vectors');

// Lines that fail any test: sanitizer reports and the daemon's own error-level lines (<3>, or
// lower), minus the ones a test expects (see Ukeyd.checkLog).
// How long waitLog/waitFor wait by default: far beyond any step under ASan on a loaded machine.
const WAIT_MS = 90000;
// How long stop() gives ukeyd to exit after SIGTERM (it takes milliseconds).
const STOP_MS = 30000;
const GDB = ['/usr/bin/gdb', '/bin/gdb'].find((p) => fs.existsSync(p));
const SANITIZER = /ERROR: (Address|Leak|Memory|Thread|Undefined)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer/;
const ERROR_LINE = /^<[0-3]>/;

// Whether a binary carries the ASan runtime (clang links it statically): such runs are several
// times slower, and some tools (libfaketime) do not mix with it.
function instrumented(bin = BIN.ukeyd) {
    return fs.readFileSync(bin).includes('__asan_init');
}

/* ---------- temp dirs and ports ---------- */

// A short temp dir (socket paths must fit in 108 bytes), removed when the test ends.
function tempDir(t, prefix = 'ukt-') {
    const dir = fs.mkdtempSync(path.join('/tmp', prefix));
    if (t) t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
}

function canBind(port) {
    return new Promise((resolve) => {
        const s = net.createServer();
        s.once('error', () => resolve(false));
        s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
    });
}

// A random high port that is free now (another process may still take it: callers retry).
async function freePort(avoid = []) {
    for (;;) {
        const port = 20000 + crypto.randomInt(40000);
        if (!avoid.includes(port) && (await canBind(port))) return port;
    }
}

/* ---------- waiting for events (never for time) ---------- */

function once(emitter, event) {
    return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)));
}

/* ---------- the daemon ---------- */

// The environment every child gets: HOME and XDG_* in the test's dir, sanitizer options kept.
function childEnv(dir, extra = {}) {
    const env = {
        PATH: process.env.PATH,
        LANG: 'C.UTF-8',
        HOME: path.join(dir, 'home'),
        XDG_CONFIG_HOME: path.join(dir, 'home/.config'),
        XDG_STATE_HOME: path.join(dir, 'home/.local/state'),
        XDG_DATA_HOME: path.join(dir, 'home/.local/share'),
        XDG_CACHE_HOME: path.join(dir, 'home/.cache'),
        XDG_RUNTIME_DIR: path.join(dir, 'xdg-run'),
    };
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'])
        if (process.env[k] !== undefined) env[k] = process.env[k];
    fs.mkdirSync(env.HOME, { recursive: true, mode: 0o700 });
    fs.mkdirSync(env.XDG_RUNTIME_DIR, { recursive: true, mode: 0o700 });
    return Object.assign(env, extra);
}

// [file, args] that run bin so that it is killed if this test process dies (setpriv execs, so the
// pid is bin's own).
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
function orphanKilled(bin, args) {
    return SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', bin, ...args]] : [bin, args];
}

class Ukeyd {
    // opts: origins, extension_ids, limits, wss (false: WSS off), fallbackPorts (count of extra
    // ports), config (extra keys), dir (reuse), bin (another ukeyd binary), t (node:test context,
    // for cleanup).
    constructor(t, opts = {}) {
        this.t = t;
        this.opts = opts;
        this.dir = opts.dir || tempDir(t);
        this.configPath = path.join(this.dir, 'config.json');
        this.runtimeDir = opts.runtimeDir || path.join(this.dir, 'run');
        this.stateDir = path.join(this.dir, 'state');
        this.socket = opts.socket || path.join(this.runtimeDir, 'ukeyd.sock');
        // Never the machine's /etc/ukeyd: a file there would change what the tests see.
        this.systemConfigPath = path.join(this.dir, 'system-config.json');
        // Dialogs go to the scripted pinentry (tests/pinentry): answers from pinentryScript, one
        // per line, consumed in order; what each dialog showed goes to pinentryLogPath. With no
        // answers left it cancels, so an unexpected dialog fails the request, never hangs it.
        this.pinentryScript = path.join(this.dir, 'pinentry-script');
        this.pinentryLogPath = path.join(this.dir, 'pinentry-log');
        this.env = childEnv(this.dir, {
            UK_PINENTRY_SCRIPT: this.pinentryScript,
            UK_PINENTRY_LOG: this.pinentryLogPath,
        });
        this.pinentryAnswers([]);
        // The binary: the build under test, unless a test needs another (see journey.test.js).
        this.bin = opts.bin || BIN.ukeyd;
        this.log = '';
        this.proc = null;
        this.exit = null;
        this.allowedErrors = [];
        this.logWaiters = [];
        if (t) t.after(() => this.kill());
    }

    get caPath() {
        return path.join(this.stateDir, 'tls/ca.pem');
    }

    get ca() {
        return fs.readFileSync(this.caPath);
    }

    // Replaces the scripted pinentry's answers ('pin 123456', 'ok', 'cancel', ...).
    pinentryAnswers(lines) {
        fs.writeFileSync(this.pinentryScript, lines.map((l) => l + '\n').join(''));
        fs.rmSync(this.pinentryScript + '.pos', { force: true });
    }

    // What the dialogs showed so far: one object per dialog (texts decoded, never a PIN).
    pinentryLog() {
        if (!fs.existsSync(this.pinentryLogPath)) return [];
        return fs
            .readFileSync(this.pinentryLogPath, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l));
    }

    // The administrator's file (--system-config); null removes it.
    writeSystemConfig(obj) {
        if (obj === null) fs.rmSync(this.systemConfigPath, { force: true });
        else fs.writeFileSync(this.systemConfigPath, JSON.stringify(obj, null, 2), { mode: 0o644 });
    }

    config() {
        const c = {
            origins: this.opts.origins || [],
            extension_ids: this.opts.extension_ids || [],
            wss_port: this.opts.wss === false ? 0 : this.port,
            wss_fallback_ports: this.fallback || [],
            socket: this.socket,
            state_dir: this.stateDir,
            runtime_dir: this.runtimeDir,
            log_level: 'info',
            pinentry: BIN.pinentry,
        };
        if (this.opts.limits) c.limits = this.opts.limits;
        return Object.assign(c, this.opts.config || {});
    }

    writeConfig(extra = {}) {
        fs.writeFileSync(this.configPath, JSON.stringify(Object.assign(this.config(), extra), null, 2));
    }

    // Starts `ukeyd --config FILE --foreground` and resolves once it logged "ready", retrying with
    // other random ports if one was taken meanwhile.
    async start() {
        for (let attempt = 0; ; attempt++) {
            if (this.opts.port === undefined) {
                this.port = await freePort();
                this.fallback = [];
                for (let i = 0; i < (this.opts.fallbackPorts || 0); i++)
                    this.fallback.push(await freePort([this.port, ...this.fallback]));
            } else {
                this.port = this.opts.port;
                this.fallback = this.opts.fallback || [];
            }
            this.writeConfig();
            const r = await this.spawn();
            if (r === 'ready') return this;
            const busy = /every port is taken/.test(this.log) && this.opts.port === undefined;
            if (!busy || attempt >= 5)
                assert.fail(`ukeyd did not start (exit ${JSON.stringify(this.exit)}):\n${this.log}`);
        }
    }

    // Spawns and resolves 'ready' or 'exited'.
    spawn(args = []) {
        this.log = '';
        this.exit = null;
        const p = spawn(...orphanKilled(this.bin, ['--config', this.configPath, '--system-config', this.systemConfigPath, '--foreground', ...args]), {
            env: this.env,
            stdio: ['ignore', 'ignore', 'pipe'],
        });
        this.proc = p;
        this.pid = p.pid;
        this.exited = new Promise((resolve) =>
            p.on('exit', (code, signal) => {
                this.exit = { code, signal };
                resolve(this.exit);
            }),
        );
        // stderr fully read (the pipe closes after exit): the log is complete then.
        this.stderrDone = new Promise((resolve) => p.stderr.on('end', resolve));
        p.stderr.setEncoding('utf8');
        p.stderr.on('data', (s) => {
            this.log += s;
            this.logWaiters = this.logWaiters.filter((w) => !w.check());
        });
        return Promise.race([
            this.waitLog(/ ready: socket /).then(() => 'ready'),
            this.exited.then(() => 'exited'),
        ]);
    }

    // Resolves when the log (from its start) matches re; rejects if the daemon exits first.
    waitLog(re, ms) {
        return this.waitFor(() => this.log.match(re), String(re), ms);
    }

    // Resolves with probe()'s value once it is truthy, re-checked on every log write; rejects if
    // the daemon exits first, or after ms (WAIT_MS by default) with the log so far, so that a
    // line that never comes names itself instead of running into the test's own timeout.
    waitFor(probe, what, ms = WAIT_MS) {
        return new Promise((resolve, reject) => {
            let timer = null;
            const w = {
                check: () => {
                    const m = probe();
                    if (m) {
                        clearTimeout(timer);
                        resolve(m);
                    }
                    return !!m;
                },
            };
            if (w.check()) return;
            this.logWaiters.push(w);
            timer = setTimeout(() => {
                this.logWaiters = this.logWaiters.filter((x) => x !== w);
                // A daemon that hangs names where: every thread's stack next to the log.
                reject(new Error(`ukeyd did not log ${what} within ${ms} ms:\n${this.log.slice(-20000)}\n--- stacks:\n${this.stacks()}`));
            }, ms);
            timer.unref();
            if (this.exited)
                this.exited.then(() =>
                    this.stderrDone.then(() => {
                        if (w.check()) return;
                        clearTimeout(timer);
                        reject(new Error(`ukeyd exited before logging ${what}:\n${this.log}`));
                    }),
                );
        });
    }

    // Resolves with the matching lines once at least n complete lines of the log match re.
    waitCount(re, n) {
        return this.waitFor(() => {
            const lines = this.log.split('\n').slice(0, -1).filter((l) => re.test(l));
            return lines.length >= n ? lines : null;
        }, `${n} lines matching ${re}`);
    }

    // Count of log lines matching re (the log so far).
    count(re) {
        return this.log.split('\n').filter((l) => re.test(l)).length;
    }

    allowError(re) {
        this.allowedErrors.push(re);
    }

    checkLog(log = this.log) {
        const lines = log.split('\n');
        const bad = lines.filter(
            (l) => SANITIZER.test(l) || (ERROR_LINE.test(l) && !this.allowedErrors.some((re) => re.test(l))),
        );
        assert.deepEqual(bad, [], `unexpected error lines in the ukeyd log:\n${log}`);
    }

    // Every thread's stack of the running daemon (gdb, when there), for a hang's report.
    stacks() {
        if (!this.proc || this.exit !== null) return '(not running)';
        if (!GDB) return '(no gdb)';
        const r = spawnSync(GDB, ['-p', String(this.pid), '-batch', '-ex', 'thread apply all bt'], { encoding: 'utf8', timeout: 60000 });
        return `${r.stdout || ''}${r.stderr || ''}`;
    }

    signal(sig) {
        process.kill(this.pid, sig);
    }

    // SIGTERM by pid; the daemon must exit 0 (it exits 1 when uv_loop_close() fails) with a clean
    // log that ends in "stopped cleanly".
    async stop() {
        assert.equal(this.exit, null, `ukeyd exited early:\n${this.log}`);
        process.kill(this.pid, 'SIGTERM');
        const exit = await Promise.race([this.exited, new Promise((r) => setTimeout(r, STOP_MS).unref())]);
        if (!exit) {
            // A shutdown that hangs: every thread's stack (gdb, when there) before the kill.
            const bt = this.stacks();
            this.kill();
            await this.exited;
            assert.fail(`ukeyd did not exit within ${STOP_MS} ms of SIGTERM:\n${bt}\n${this.log.slice(-20000)}`);
        }
        await this.stderrDone;
        assert.deepEqual(exit, { code: 0, signal: null }, `ukeyd did not exit 0 after SIGTERM:\n${this.log}`);
        assert.match(this.log, /stopped cleanly/);
        this.checkLog();
        assert.equal(fs.existsSync(this.socket), false, 'the socket is removed at exit');
        this.proc = null;
    }

    kill() {
        if (this.proc && this.exit === null) {
            try {
                process.kill(this.pid, 'SIGKILL');
            } catch {
                /* gone */
            }
        }
    }
}

/* ---------- Unix socket: 4-byte little-endian length + JSON ---------- */

function frame(body) {
    const b = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = Buffer.alloc(4);
    h.writeUInt32LE(b.length);
    return Buffer.concat([h, b]);
}

// Reads frames off a byte stream; endian: 'LE' (the socket) or native (native messaging: LE here).
class FrameReader {
    constructor(stream) {
        this.buf = Buffer.alloc(0);
        this.frames = [];
        this.waiters = [];
        this.ended = false;
        stream.on('data', (d) => {
            this.buf = Buffer.concat([this.buf, d]);
            while (this.buf.length >= 4) {
                const n = this.buf.readUInt32LE(0);
                if (this.buf.length < 4 + n) break;
                this.frames.push(this.buf.subarray(4, 4 + n));
                this.buf = this.buf.subarray(4 + n);
            }
            this.flush();
        });
        const end = () => {
            this.ended = true;
            this.flush();
        };
        stream.on('end', end);
        stream.on('close', end);
        stream.on('error', end);
    }

    flush() {
        while (this.waiters.length && (this.frames.length || this.ended)) {
            const w = this.waiters.shift();
            w(this.frames.length ? this.frames.shift() : null);
        }
    }

    // Next frame as a Buffer, or null once the stream ended.
    next() {
        return new Promise((resolve) => {
            this.waiters.push(resolve);
            this.flush();
        });
    }

    async json() {
        const f = await this.next();
        return f === null ? null : JSON.parse(f.toString('utf8'));
    }
}

class UnixClient {
    static connect(socketPath) {
        return new Promise((resolve, reject) => {
            const s = net.connect(socketPath);
            s.once('error', reject);
            s.once('connect', () => {
                s.off('error', reject);
                resolve(new UnixClient(s));
            });
        });
    }

    constructor(sock) {
        this.sock = sock;
        this.reader = new FrameReader(sock);
        this.closed = new Promise((resolve) => sock.on('close', resolve));
        sock.on('error', () => {});
    }

    send(body) {
        this.sock.write(frame(body));
    }

    sendRaw(bytes) {
        this.sock.write(bytes);
    }

    recv() {
        return this.reader.json();
    }

    async call(method, params, id = 1) {
        const req = { jsonrpc: '2.0', method, id };
        if (params !== undefined) req.params = params;
        this.send(req);
        return this.recv();
    }

    close() {
        this.sock.end();
        this.sock.destroy();
    }
}

/* ---------- WSS ---------- */

// A WebSocket client on wss://127.0.0.1:PORT with the daemon's CA trusted and the given Origin.
// Resolves once open; rejects with the refusal (status code) otherwise.
class WssClient {
    static open(port, { origin, ca, host } = {}) {
        return new Promise((resolve, reject) => {
            const opts = { ca, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 };
            if (origin !== undefined) opts.origin = origin;
            if (host !== undefined) opts.headers = { Host: host };
            const ws = new WebSocket(`wss://127.0.0.1:${port}/`, opts);
            const c = new WssClient(ws);
            ws.once('open', () => resolve(c));
            ws.once('unexpected-response', (req, res) => {
                const e = new Error(`upgrade refused: ${res.statusCode}`);
                e.status = res.statusCode;
                req.destroy();
                reject(e);
            });
            ws.once('error', (e) => reject(e));
        });
    }

    constructor(ws) {
        this.ws = ws;
        this.msgs = [];
        this.waiters = [];
        this.closeInfo = null;
        this.closed = new Promise((resolve) =>
            ws.on('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString() };
                this.flush();
                resolve(this.closeInfo);
            }),
        );
        ws.on('message', (data, isBinary) => {
            this.msgs.push({ data, isBinary });
            this.flush();
        });
        ws.on('error', () => {});
    }

    flush() {
        while (this.waiters.length && (this.msgs.length || this.closeInfo)) {
            const w = this.waiters.shift();
            w(this.msgs.length ? this.msgs.shift() : null);
        }
    }

    // Next message as parsed JSON, or null once closed.
    recv() {
        return new Promise((resolve) => {
            this.waiters.push(resolve);
            this.flush();
        }).then((m) => (m === null ? null : JSON.parse(m.data.toString('utf8'))));
    }

    // Sends text (a string, an object as JSON, or raw bytes sent as a text frame).
    send(body, opts = {}) {
        const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
        this.ws.send(data, { binary: false, ...opts });
    }

    async call(method, params, id = 1) {
        const req = { jsonrpc: '2.0', method, id };
        if (params !== undefined) req.params = params;
        this.send(req);
        return this.recv();
    }

    close() {
        this.ws.close();
        return this.closed;
    }
}

// The raw HTTP upgrade request over TLS, with exactly the given headers (an array of [name,
// value]; a value may be a Buffer for raw bytes). Resolves {status, head} with the response head;
// the connection is closed afterwards.
function rawUpgrade(port, headers, { ca, path: reqPath = '/' } = {}) {
    return new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca });
        let got = Buffer.alloc(0);
        let done = false;
        const finish = () => {
            if (done) return;
            done = true;
            const text = got.toString('latin1');
            const end = text.indexOf('\r\n\r\n');
            const head = end >= 0 ? text.slice(0, end) : text;
            const m = head.match(/^HTTP\/1\.[01] (\d{3})/);
            s.destroy();
            if (!m) reject(new Error(`no HTTP answer: ${JSON.stringify(text)}`));
            else resolve({ status: Number(m[1]), head });
        };
        s.on('secureConnect', () => {
            const parts = [Buffer.from(`GET ${reqPath} HTTP/1.1\r\n`)];
            for (const [k, v] of headers) parts.push(Buffer.from(`${k}: `), Buffer.from(v), Buffer.from('\r\n'));
            parts.push(Buffer.from('\r\n'));
            s.write(Buffer.concat(parts));
        });
        s.on('data', (d) => {
            got = Buffer.concat([got, d]);
            if (got.includes('\r\n\r\n')) finish();
        });
        s.on('end', finish);
        s.on('close', finish);
        s.on('error', (e) => (got.length ? finish() : done || ((done = true), reject(e))));
    });
}

// The headers of a well-formed browser upgrade request to 127.0.0.1:port from origin.
function upgradeHeaders(port, { origin, host } = {}) {
    const h = [
        ['Host', host === undefined ? `127.0.0.1:${port}` : host],
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Key', crypto.randomBytes(16).toString('base64')],
        ['Sec-WebSocket-Version', '13'],
    ];
    if (origin !== undefined) h.push(['Origin', origin]);
    return h.filter(([, v]) => v !== null);
}

/* ---------- vectors and comparisons ---------- */

function loadVectors() {
    return fs
        .readdirSync(VECTORS_DIR)
        .filter((f) => /^\d{3}-.*\.json$/.test(f))
        .sort()
        .map((f) => {
            const v = JSON.parse(fs.readFileSync(path.join(VECTORS_DIR, f), 'utf8'));
            v.name = f;
            v.bytes = v.request_base64 !== undefined ? Buffer.from(v.request_base64, 'base64') : Buffer.from(v.request, 'utf8');
            try {
                new TextDecoder('utf-8', { fatal: true }).decode(v.bytes);
                v.utf8 = true;
            } catch {
                v.utf8 = false;
            }
            return v;
        });
}

// The vectors' rule: every member of expected is in actual with an equal value (objects
// recursively, arrays element by element and of the same length), numbers by value.
function subsetMismatch(expected, actual, where = '') {
    if (expected === null || typeof expected !== 'object')
        return Object.is(expected, actual) || expected === actual ? null : `${where || '.'}: ${JSON.stringify(actual)} != ${JSON.stringify(expected)}`;
    if (Array.isArray(expected)) {
        if (!Array.isArray(actual) || actual.length !== expected.length) return `${where}: not an array of ${expected.length}`;
        for (let i = 0; i < expected.length; i++) {
            const m = subsetMismatch(expected[i], actual[i], `${where}[${i}]`);
            if (m) return m;
        }
        return null;
    }
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return `${where || '.'}: not an object`;
    for (const k of Object.keys(expected)) {
        if (!(k in actual)) return `${where}.${k}: missing`;
        const m = subsetMismatch(expected[k], actual[k], `${where}.${k}`);
        if (m) return m;
    }
    return null;
}

function assertSubset(actual, expected, msg = '') {
    const m = subsetMismatch(expected, actual);
    assert.equal(m, null, `${msg} ${m}\nactual: ${JSON.stringify(actual)}`);
}

// An error response with this reason (and, when given, this id).
function assertError(msg, reason, id) {
    assert.ok(msg && msg.error, `expected an error ${reason}, got ${JSON.stringify(msg)}`);
    assert.equal(msg.jsonrpc, '2.0');
    assert.equal(msg.error.data.reason, reason, JSON.stringify(msg));
    if (id !== undefined) assert.deepEqual(msg.id, id);
}

/* ---------- /proc/net/tcp ---------- */

// Listening sockets on port: [{family, addr}] from /proc/net/tcp and tcp6 (this network namespace).
function listeners(port) {
    const out = [];
    for (const [file, family] of [
        ['/proc/net/tcp', 4],
        ['/proc/net/tcp6', 6],
    ]) {
        let text = '';
        try {
            text = fs.readFileSync(file, 'utf8');
        } catch {
            continue;
        }
        for (const line of text.split('\n').slice(1)) {
            const f = line.trim().split(/\s+/);
            if (f.length < 4) continue;
            const [addr, p] = f[1].split(':');
            if (parseInt(p, 16) === port && f[3] === '0A') out.push({ family, addr });
        }
    }
    return out;
}

/* ---------- other binaries ---------- */

function run(bin, args, opts = {}) {
    const r = spawnSync(bin, args, { encoding: 'utf8', ...opts });
    if (r.error) throw new Error(`cannot run ${bin}: ${r.error.message}`);
    return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

// Whether pid is gone (or a zombie nobody reaps: its work is over).
function processGone(pid) {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
    } catch {
        return true;
    }
}

module.exports = {
    BIN,
    instrumented,
    ROOT,
    Ukeyd,
    UnixClient,
    WssClient,
    FrameReader,
    frame,
    rawUpgrade,
    upgradeHeaders,
    loadVectors,
    assertSubset,
    assertError,
    subsetMismatch,
    listeners,
    freePort,
    tempDir,
    orphanKilled,
    childEnv,
    once,
    run,
    processGone,
    SANITIZER,
    ERROR_LINE,
};
