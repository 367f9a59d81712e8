#!/usr/bin/env node
'use strict';
// The demo portal: the certificate online service platform of the manual (seed/README.md) rebuilt
// on ukeyd. Node's standard library only.
//
//   node examples/portal/server.js [--port 8083] [--data DIR] [--origin URL] [--ca-days 365]
//       [--ca-start now|tomorrow|old-end] [--enroll CARD:SLOT:CERT.pem ...] [--demo-password PW]
//       [--sdk-dir DIR] [--test-mode] [--export-ca DIR]
//
// Pages (public/): login, 我的证书 (certificates by card number, 延期 / 修复), the four-step
// extension / repair page, 验证签章 and 电子印章. The pages reach ukeyd only through the page SDK
// (served from extension/sdk at /sdk/). The JSON API below keeps the records (store.js) and runs
// the test CA (ca.js). --test-mode adds /test/* endpoints (the SMS code, CA switches, a clock
// offset) for the end-to-end tests; never use it for anything else. One CA switch, `dual`, makes
// the CA answer an SM2 request with an SM2 dual certificate: the signing certificate, an
// encryption certificate and its private key enveloped by the test KMC (kmc.js).

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { TestCa, isSm2Request } = require('./ca');
const { TestKmc } = require('./kmc');
const { PortalError } = require('./errors');
const { checkSeal, sampleSeal } = require('./png');
const { Store, certRecord, checkPassword } = require('./store');
const { verifyChallenge } = require('./verify');

const PUBLIC = path.join(__dirname, 'public');
const DEFAULT_SDK = path.resolve(__dirname, '..', '..', 'extension', 'sdk');
const DEMO = {
    account: 'demo',
    password: 'ukey-demo-2026',
    details: { name: '张三', phone: '13800138000', company: '示例医药有限公司', department: '医保结算科' },
};
const LIMITS = { json: 16 * 1024, seal: 2 * 1024 * 1024, sessions: 1000, flows: 20 };
const SESSION_MS = 8 * 3600 * 1000;
const SMS_MS = 5 * 60 * 1000;
const SMS_TRIES = 5;
const NONCE_MS = 5 * 60 * 1000;
const EXPIRING_DAYS = 30;
const DAY = 86400000;

const TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.mjs': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.png': 'image/png',
    '.svg': 'image/svg+xml',
    '.json': 'application/json; charset=utf-8',
    '.ico': 'image/x-icon',
};

// The page may connect to ukeyd on any loopback port (the SDK tries several); nothing else.
const CSP = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self' wss://127.0.0.1:* wss://localhost:*",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
].join('; ');

function fail(code, zh, en, status = 400, extra) {
    return new PortalError(code, zh, en, status, extra);
}

const E = {
    login: () => fail('LOGIN_FAILED', '账号或密码错误。', 'Wrong account or password.', 401),
    locked: () => fail('LOGIN_LOCKED', '登录失败次数过多，请 1 分钟后再试。', 'Too many failed logins. Try again in a minute.', 429),
    auth: () => fail('NOT_LOGGED_IN', '请先登录。', 'Please log in first.', 401),
    csrf: () => fail('CSRF', '页面已过期，请刷新后重试。', 'The page has expired. Reload it and try again.', 403),
    params: (what) => fail('BAD_REQUEST', `请求参数无效（${what}）。`, `Invalid request (${what}).`, 400),
    card: () => fail('CARD_UNKNOWN', '该卡号不属于您的账号。', 'This card number does not belong to your account.', 404),
    flow: () => fail('FLOW_UNKNOWN', '本次操作已失效，请从“读取 CA 证书信息”重新开始。', 'This session has expired. Start again from "Read the CA certificate".', 409),
    order: () => fail('STEP_ORDER', '请按顺序完成前面的步骤。', 'Please complete the previous steps first.', 409),
};

function isoDate(ms) {
    return new Date(ms).toISOString();
}

// valid | expiring | expired | not_yet_valid, with days_left (negative once expired).
function certStatus(c, nowMs) {
    const nb = Date.parse(c.not_before);
    const na = Date.parse(c.not_after);
    const daysLeft = Math.floor((na - nowMs) / DAY);
    let status = 'valid';
    if (nowMs < nb) status = 'not_yet_valid';
    else if (nowMs >= na) status = 'expired';
    else if (na - nowMs <= EXPIRING_DAYS * DAY) status = 'expiring';
    return { status, days_left: daysLeft };
}

function publicCert(c, nowMs) {
    return {
        slot: c.slot,
        serial: c.serial,
        subject: c.subject,
        issuer: c.issuer,
        not_before: c.not_before,
        not_after: c.not_after,
        fingerprint: c.fingerprint,
        state: c.state,
        ...certStatus(c, nowMs),
    };
}

function maskPhone(p) {
    return p ? `${p.slice(0, 3)}****${p.slice(-4)}` : '';
}

function parseCookies(h) {
    const out = {};
    for (const part of (h || '').split(';')) {
        const i = part.indexOf('=');
        if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
}

function safeEqual(a, b) {
    const x = Buffer.from(String(a));
    const y = Buffer.from(String(b));
    return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function str(v, what, max = 4096) {
    if (typeof v !== 'string' || v.length === 0 || v.length > max) throw E.params(what);
    return v;
}

class Portal {
    // opts: dataDir, port, host, origin, testMode, sdkDir, caDays, caStart, demoPassword, enroll
    // ([{card, slot, certPem}]), log (line => void).
    constructor(opts) {
        this.opts = opts;
        this.log = opts.log || ((line) => console.log(line));
        this.testMode = !!opts.testMode;
        this.clockOffset = 0;
        this.now = () => Date.now() + this.clockOffset;
        this.store = new Store(opts.dataDir);
        this.ca = new TestCa({ dir: path.join(opts.dataDir, 'ca'), days: opts.caDays, start: opts.caStart, now: this.now });
        this.kmc = new TestKmc({ dir: path.join(opts.dataDir, 'kmc'), ca: this.ca });
        this.caDual = false; // test switch: SM2 requests get dual certificates
        this.sdkDir = opts.sdkDir || DEFAULT_SDK;
        this.sessions = new Map();
        this.failures = new Map();
        this.smsLog = new Map(); // card -> last code (test mode)
        this.server = http.createServer((req, res) => this.handle(req, res));
    }

    async init() {
        await this.ca.init();
        this.kmc.init();
        const password = this.opts.demoPassword || DEMO.password;
        const acc = this.store.account(DEMO.account);
        if (!acc || !(await checkPassword(acc, password))) await this.store.putAccount(DEMO.account, password, DEMO.details);
        for (const e of this.opts.enroll || []) this.store.enroll(e.card, e.slot, e.certPem, e.account || DEMO.account);
        return this;
    }

    // Listens; resolves the URL.
    listen() {
        return new Promise((resolve, reject) => {
            this.server.once('error', reject);
            this.server.listen({ host: this.opts.host || '127.0.0.1', port: this.opts.port }, () => {
                this.port = this.server.address().port;
                this.origin = this.opts.origin || `http://127.0.0.1:${this.port}`;
                this.origins = new Set([this.origin, `http://127.0.0.1:${this.port}`, `http://localhost:${this.port}`]);
                resolve(`${this.origin}/`);
            });
        });
    }

    close() {
        return new Promise((resolve) => {
            this.server.close(() => resolve());
            this.server.closeAllConnections();
        });
    }

    /* ---------- HTTP plumbing ---------- */

    headers(extra = {}) {
        return {
            'content-security-policy': CSP,
            'x-content-type-options': 'nosniff',
            'x-frame-options': 'DENY',
            'referrer-policy': 'same-origin',
            'cache-control': 'no-store',
            ...extra,
        };
    }

    send(res, status, body, type = 'application/json; charset=utf-8', extra = {}) {
        const data = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
        if (status === 413) extra = { connection: 'close', ...extra };
        res.writeHead(status, this.headers({ 'content-type': type, 'content-length': data.length, ...extra }));
        res.end(data);
        if (status === 413) res.on('finish', () => res.req.socket.destroySoon());
    }

    readBody(req, max) {
        return new Promise((resolve, reject) => {
            const declared = Number(req.headers['content-length'] || 0);
            // Too large: answer 413 and close the connection once the answer is out (the rest
            // of the body is never read).
            const tooLarge = () => {
                reject(fail('TOO_LARGE', '提交的内容过大。', 'The request is too large.', 413));
            };
            if (declared > max) {
                tooLarge();
                return;
            }
            const parts = [];
            let n = 0;
            req.on('data', (d) => {
                n += d.length;
                if (n > max) {
                    req.pause();
                    tooLarge();
                } else parts.push(d);
            });
            req.on('end', () => resolve(Buffer.concat(parts)));
            req.on('error', reject);
        });
    }

    async json(req, max = LIMITS.json) {
        if (!/^application\/json\b/.test(req.headers['content-type'] || '')) throw E.params('content-type');
        const body = await this.readBody(req, max);
        try {
            const v = JSON.parse(body.toString('utf8') || '{}');
            if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error();
            return v;
        } catch {
            throw E.params('JSON');
        }
    }

    session(req) {
        const sid = parseCookies(req.headers.cookie).portal_sid;
        const s = sid && this.sessions.get(sid);
        if (!s) return null;
        if (Date.now() - s.seen > SESSION_MS) {
            this.sessions.delete(sid);
            return null;
        }
        s.seen = Date.now();
        return s;
    }

    // The Origin of a state-changing request must be ours (when the browser sends one; it always
    // does for fetch POSTs).
    checkOrigin(req) {
        const o = req.headers.origin;
        if (o !== undefined && !this.origins.has(o)) throw E.csrf();
    }

    async handle(req, res) {
        try {
            const url = new URL(req.url, 'http://portal.invalid');
            const p = url.pathname;
            if (p.startsWith('/api/')) return await this.api(req, res, p, url);
            if (p.startsWith('/test/')) {
                if (!this.testMode) return this.send(res, 404, { error: { code: 'NOT_FOUND' } });
                return await this.testApi(req, res, p, url);
            }
            if (req.method !== 'GET' && req.method !== 'HEAD') return this.send(res, 405, 'method not allowed', 'text/plain');
            if (p === '/') return this.redirect(res, this.session(req) ? '/certs.html' : '/login.html');
            if (p === '/sample-seal.png') return this.send(res, 200, sampleSeal(), 'image/png');
            if (p.startsWith('/sdk/')) return this.static(res, this.sdkDir, p.slice('/sdk'.length));
            return this.static(res, PUBLIC, p);
        } catch (e) {
            if (e instanceof PortalError) return this.send(res, e.status, { error: e.toJSON() });
            this.log(`error: ${e.stack || e}`);
            return this.send(res, 500, { error: { code: 'INTERNAL', message: { 'zh-CN': '服务器内部错误，请稍后重试。', en: 'Internal server error. Try again later.' } } });
        }
    }

    redirect(res, to) {
        res.writeHead(302, this.headers({ location: to }));
        res.end();
    }

    // A file under root; no traversal (decoded, normalised, and still inside root), no dotfiles,
    // files only.
    static(res, root, urlPath) {
        let rel;
        try {
            rel = decodeURIComponent(urlPath);
        } catch {
            return this.send(res, 400, 'bad path', 'text/plain');
        }
        if (rel.includes('\0') || rel.split('/').some((seg) => seg.startsWith('.'))) return this.send(res, 404, 'not found', 'text/plain');
        const base = path.resolve(root);
        const file = path.resolve(base, `.${path.posix.normalize(`/${rel}`)}`);
        if (!file.startsWith(base + path.sep)) return this.send(res, 404, 'not found', 'text/plain');
        let st;
        try {
            st = fs.statSync(file);
        } catch {
            return this.send(res, 404, 'not found', 'text/plain');
        }
        if (!st.isFile()) return this.send(res, 404, 'not found', 'text/plain');
        const type = TYPES[path.extname(file).toLowerCase()] || 'application/octet-stream';
        return this.send(res, 200, fs.readFileSync(file), type);
    }

    /* ---------- API ---------- */

    async api(req, res, p, url) {
        const ok = (body) => this.send(res, 200, body);
        if (req.method === 'POST') this.checkOrigin(req);
        if (p === '/api/login' && req.method === 'POST') return this.login(req, res);
        const s = this.session(req);
        if (!s) throw E.auth();
        if (req.method === 'POST') {
            if (!safeEqual(req.headers['x-csrf-token'] || '', s.csrf)) throw E.csrf();
        } else if (req.method !== 'GET') throw E.params('method');
        const route = `${req.method} ${p}`;
        switch (route) {
            case 'GET /api/session': {
                const a = this.store.account(s.account);
                return ok({ account: s.account, name: a.name, company: a.company, csrf: s.csrf, test_mode: this.testMode });
            }
            case 'POST /api/logout':
                this.sessions.delete(s.sid);
                return this.send(res, 200, {}, undefined, { 'set-cookie': 'portal_sid=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0' });
            case 'GET /api/certs':
                return ok(this.listCerts(s));
            case 'POST /api/renewal/start':
                return ok(this.renewalStart(s, await this.json(req)));
            case 'POST /api/renewal/sms':
                return ok(this.renewalSms(s, await this.json(req)));
            case 'POST /api/renewal/verify-sms':
                return ok(this.renewalVerifySms(s, await this.json(req)));
            case 'POST /api/renewal/csr':
                return ok(await this.renewalCsr(s, await this.json(req)));
            case 'POST /api/renewal/issue':
                return ok(await this.renewalIssue(s, await this.json(req)));
            case 'POST /api/renewal/complete':
                return ok(this.renewalComplete(s, await this.json(req)));
            case 'GET /api/verify/nonce':
                return ok(this.verifyNonce(s));
            case 'POST /api/verify':
                return ok(this.verify(s, req, await this.json(req)));
            case 'GET /api/seals':
                return ok(this.listSeals(s));
            case 'POST /api/seals':
                return ok(this.addSeal(s, await this.json(req, LIMITS.seal)));
            case 'POST /api/seals/delete':
                return ok(this.deleteSeal(s, await this.json(req)));
            default: {
                const m = /^\/api\/seals\/(\d{1,9})\.png$/.exec(p);
                if (m && req.method === 'GET') return this.sealImage(s, res, Number(m[1]));
                return this.send(res, 404, { error: { code: 'NOT_FOUND' } });
            }
        }
    }

    async login(req, res) {
        const b = await this.json(req);
        const account = typeof b.account === 'string' ? b.account.slice(0, 64) : '';
        const f = this.failures.get(account);
        if (f && f.count >= 5 && Date.now() - f.last < 60000) throw E.locked();
        const rec = this.store.account(account);
        if (!rec || typeof b.password !== 'string' || !(await checkPassword(rec, b.password))) {
            const n = f && Date.now() - f.last < 60000 ? f.count + 1 : 1;
            this.failures.set(account, { count: n, last: Date.now() });
            throw E.login();
        }
        this.failures.delete(account);
        if (this.sessions.size >= LIMITS.sessions) {
            const oldest = [...this.sessions.values()].sort((a, b2) => a.seen - b2.seen)[0];
            this.sessions.delete(oldest.sid);
        }
        const sid = crypto.randomBytes(32).toString('base64url');
        const s = { sid, account, csrf: crypto.randomBytes(32).toString('base64url'), seen: Date.now(), flows: new Map(), nonces: new Map() };
        this.sessions.set(sid, s);
        this.log(`login: ${account}`);
        return this.send(res, 200, { account, csrf: s.csrf }, undefined, {
            'set-cookie': `portal_sid=${sid}; HttpOnly; SameSite=Strict; Path=/`,
        });
    }

    ownedCard(s, number) {
        const c = typeof number === 'string' && this.store.card(number);
        if (!c || c.account !== s.account) throw E.card();
        this.store.refresh(number, this.now());
        return c;
    }

    listCerts(s) {
        const now = this.now();
        const cards = this.store.cardsOf(s.account).map((c) => {
            this.store.refresh(c.number, now);
            const fresh = this.store.card(c.number);
            return {
                card: c.number,
                certificates: fresh.certs.filter((x) => x.state === 'active' || x.state === 'pending').map((x) => publicCert(x, now)),
            };
        });
        return { now: isoDate(now), cards };
    }

    /* ---------- the four steps ---------- */

    flow(s, id) {
        const f = typeof id === 'string' && s.flows.get(id);
        if (!f) throw E.flow();
        return f;
    }

    // Step 1 (读取CA证书信息): what the page read from the key must be the certificate on record.
    renewalStart(s, b) {
        const card = str(b.card, 'card', 64);
        const slot = b.slot === '9c' ? '9c' : b.slot === '9a' ? '9a' : null;
        const mode = b.mode === 'repair' ? 'repair' : b.mode === 'extend' ? 'extend' : null;
        if (!slot || !mode) throw E.params('slot/mode');
        const fp = str(b.fingerprint, 'fingerprint', 128).toLowerCase();
        this.ownedCard(s, card);
        const now = this.now();
        const rec = this.store.active(card, slot);
        if (!rec) throw fail('NO_RECORD', '平台上没有该卡的证书记录。', 'The platform has no certificate on record for this card.', 404);
        const pend = this.store.pending(card, slot);
        if (pend)
            throw fail(
                'ALREADY_RENEWED',
                `该证书已完成${mode === 'repair' ? '修复' : '延期'}，新证书将于 ${pend.not_before.slice(0, 10)} 生效，届时会自动启用，无需再次操作。`,
                `This certificate was already renewed; the new one becomes valid on ${pend.not_before.slice(0, 10)} and is then used automatically. Nothing more to do.`,
                409,
            );
        if (rec.fingerprint !== fp)
            throw fail(
                'CERT_MISMATCH',
                `USB Key 中的证书与平台记录的卡号 ${card} 的证书不一致。请确认插入的是正确的 USB Key。`,
                `The certificate on the USB key is not the one on record for card ${card}. Check that you inserted the right key.`,
                409,
            );
        const st = certStatus(rec, now).status;
        if (mode === 'extend' && st === 'expired')
            throw fail('USE_REPAIR', '证书已过期，不能延期，请返回“我的证书”点击“修复”。', 'The certificate has expired and cannot be extended. Go back to "My certificates" and click "Repair".', 409);
        if (mode === 'repair' && st !== 'expired')
            throw fail('USE_EXTEND', '证书尚未过期，无需修复，请使用“延期”。', 'The certificate has not expired; use "Extend" instead of "Repair".', 409);
        if (s.flows.size >= LIMITS.flows) s.flows.delete(s.flows.keys().next().value);
        const id = crypto.randomBytes(16).toString('hex');
        s.flows.set(id, { id, card, slot, mode, oldCertDer: Buffer.from(rec.der, 'base64'), sms: null, smsOk: false, renewalId: null, csrPem: null, issued: null });
        const acc = this.store.account(s.account);
        this.log(`renewal ${id}: start ${mode} card ${card} slot ${slot}`);
        return { flow: id, certificate: publicCert(rec, now), phone: maskPhone(acc.phone) };
    }

    // Step 2a (获取短信验证码): the code goes to the server log (the demo has no SMS gateway).
    renewalSms(s, b) {
        const f = this.flow(s, b.flow);
        if (f.sms && Date.now() - f.sms.sent < 30000 && !this.testMode)
            throw fail('SMS_WAIT', '验证码已发送，请 30 秒后再重新获取。', 'A code was just sent; wait 30 seconds before asking again.', 429);
        const code = String(crypto.randomInt(0, 1000000)).padStart(6, '0');
        f.sms = { code, sent: Date.now(), tries: 0 };
        f.smsOk = false;
        const phone = maskPhone(this.store.account(s.account).phone);
        this.smsLog.set(f.card, code);
        this.log(`sms to ${phone} (card ${f.card}): 您的验证码为 ${code}，5 分钟内有效。`);
        return { phone, expires_in: SMS_MS / 1000 };
    }

    // Step 2b: the code typed.
    renewalVerifySms(s, b) {
        const f = this.flow(s, b.flow);
        if (!f.sms) throw E.order();
        if (Date.now() - f.sms.sent > SMS_MS || f.sms.tries >= SMS_TRIES)
            throw fail('SMS_EXPIRED', '验证码已失效，请重新获取短信验证码。', 'The code has expired. Get a new SMS code.', 409);
        const code = typeof b.code === 'string' ? b.code.trim() : '';
        if (!safeEqual(code, f.sms.code)) {
            f.sms.tries++;
            const left = SMS_TRIES - f.sms.tries;
            throw fail(
                'SMS_WRONG',
                left > 0 ? `短信验证码错误，请重新输入（还可尝试 ${left} 次）。` : '短信验证码错误次数过多，请重新获取。',
                left > 0 ? `Wrong SMS code. Enter it again (${left} tries left).` : 'Too many wrong codes. Get a new SMS code.',
                422,
                { tries_left: left },
            );
        }
        f.smsOk = true;
        return { verified: true };
    }

    // Step 3 (初始化证书): the request the key made; checked now so that a bad one is reported at
    // this step, and again by the CA when it issues.
    async renewalCsr(s, b) {
        const f = this.flow(s, b.flow);
        if (!f.smsOk) throw E.order();
        const renewalId = str(b.renewal_id, 'renewal_id', 64);
        const csrPem = str(b.csr_pem, 'csr_pem', 8192);
        await this.ca.checkCsr(csrPem, f.oldCertDer);
        f.renewalId = renewalId;
        f.csrPem = csrPem;
        f.issued = null;
        this.log(`renewal ${f.id}: request for ukeyd renewal ${renewalId} accepted`);
        return { accepted: true };
    }

    // Step 4a (执行延期 / 执行修复): the CA issues (once per request; asking again answers the
    // same certificate, so the page can retry writing it after the key was pulled).
    async renewalIssue(s, b) {
        const f = this.flow(s, b.flow);
        if (!f.csrPem) throw E.order();
        if (!f.issued) {
            let cert;
            let dual = null;
            if (this.caDual && isSm2Request(f.csrPem)) {
                // The signing certificate is the one the records follow (it is what the key signs
                // with); the encryption pair is the KMC's (escrowed there) and only travels to the key.
                const d = await this.kmc.issueDual({ csrPem: f.csrPem, oldCertDer: f.oldCertDer });
                cert = d.signing;
                dual = {
                    encryption_certificate: d.encryption.pem,
                    enveloped_key: { skf_blob: d.blob.toString('base64'), sm2_enveloped_key: d.asn1.toString('base64') },
                };
                this.log(`renewal ${f.id}: KMC enveloped the encryption key of serial ${d.encryption.serial}`);
            } else cert = await this.ca.issue({ csrPem: f.csrPem, oldCertDer: f.oldCertDer, slot: f.slot });
            const c = this.store.card(f.card);
            const rec = certRecord(cert.der, { slot: f.slot, state: 'issued', source: 'renewal', time: isoDate(this.now()) });
            c.certs.push(rec);
            this.store.save();
            f.issued = { pem: cert.pem, fingerprint: rec.fingerprint, dual };
            this.log(`renewal ${f.id}: issued serial ${cert.serial}, valid ${cert.notBefore} .. ${cert.notAfter}`);
        }
        const rec = this.store.card(f.card).certs.find((x) => x.fingerprint === f.issued.fingerprint);
        return { certificate: f.issued.pem, renewal_id: f.renewalId, issued: publicCert(rec, this.now()), ...(f.issued.dual || {}) };
    }

    // Step 4b: the page reports what renewal.commit said: `done` (the key uses the new
    // certificate) or `written` (on the key, valid later).
    renewalComplete(s, b) {
        const f = this.flow(s, b.flow);
        if (!f.issued) throw E.order();
        const state = b.state === 'done' ? 'active' : b.state === 'written' ? 'pending' : null;
        if (!state) throw E.params('state');
        const c = this.store.card(f.card);
        const rec = c.certs.find((x) => x.fingerprint === f.issued.fingerprint);
        if (rec.state === 'issued') {
            if (state === 'active') for (const x of c.certs) if (x.slot === f.slot && x.state === 'active') x.state = 'replaced';
            rec.state = state;
            this.store.save();
            this.log(`renewal ${f.id}: card ${f.card} now holds serial ${rec.serial} (${state})`);
        }
        s.flows.delete(f.id);
        this.store.refresh(f.card, this.now());
        return { certificate: publicCert(rec, this.now()) };
    }

    /* ---------- 验证签章 ---------- */

    verifyNonce(s) {
        for (const [id, n] of s.nonces) if (Date.now() > n.expires) s.nonces.delete(id);
        if (s.nonces.size > 20) s.nonces.delete(s.nonces.keys().next().value);
        const id = crypto.randomBytes(12).toString('hex');
        const nonce = crypto.randomBytes(32);
        s.nonces.set(id, { nonce, expires: Date.now() + NONCE_MS });
        return { nonce_id: id, nonce: nonce.toString('base64') };
    }

    verify(s, req, b) {
        const card = str(b.card, 'card', 64);
        const slot = b.key === '9c' ? '9c' : '9a';
        const n = typeof b.nonce_id === 'string' && s.nonces.get(b.nonce_id);
        if (n) s.nonces.delete(b.nonce_id);
        if (!n || Date.now() > n.expires)
            throw fail('NONCE', '验证请求已过期，请重新点击“验证签章”。', 'The verification request has expired. Click "Verify signing" again.', 409);
        // The origin the browser reported (one of ours: checkOrigin), else our own.
        const origin = req.headers.origin || this.origin;
        const signature = Buffer.from(str(b.signature, 'signature', 2048), 'base64');
        const c = this.ownedCard(s, card);
        const now = this.now();
        const candidates = c.certs.filter((x) => x.slot === slot && (x.state === 'active' || x.state === 'pending' || x.state === 'issued'));
        const hit = candidates.find((x) =>
            verifyChallenge({ certificate: Buffer.from(x.der, 'base64'), origin, nonce: n.nonce, algorithm: b.algorithm, signature }),
        );
        if (!hit) {
            this.log(`verify: card ${card} slot ${slot}: signature does not verify`);
            throw fail('SIGNATURE_INVALID', '签章验证失败：签名与平台记录的证书不符。', 'Verification failed: the signature does not match the certificate on record.', 422);
        }
        const st = certStatus(hit, now);
        if (st.status === 'not_yet_valid')
            throw fail('CERT_NOT_YET_VALID', `证书未生效，将于 ${hit.not_before.slice(0, 10)} 生效。`, `The certificate is not valid yet; it becomes valid on ${hit.not_before.slice(0, 10)}.`, 422);
        if (st.status === 'expired')
            throw fail('CERT_EXPIRED', '证书已过期，请先修复证书。', 'The certificate has expired. Repair it first.', 422);
        if (hit.state !== 'active') {
            // The key signs with it: it is the one in use.
            for (const x of c.certs) if (x.slot === slot && x.state === 'active') x.state = 'replaced';
            hit.state = 'active';
            this.store.save();
        }
        this.log(`verify: card ${card} slot ${slot}: ok with serial ${hit.serial}`);
        return { ok: true, certificate: publicCert(hit, now), origin };
    }

    /* ---------- 电子印章 ---------- */

    listSeals(s) {
        const acc = this.store.account(s.account);
        const seals = this.store.data.seals.filter((x) => x.account === s.account).map(({ account, file, ...x }) => x);
        return { seals, cards: this.store.cardsOf(s.account).map((c) => c.number), company: acc.company, department: acc.department, applicant: acc.name };
    }

    addSeal(s, b) {
        const type = ['公章', '法人章', '财务章', '合同章', '个人章'].includes(b.type) ? b.type : null;
        if (!type) throw E.params('type');
        const name = str(b.name, 'name', 64);
        const card = str(b.card, 'card', 64);
        this.ownedCard(s, card);
        const image = Buffer.from(str(b.image, 'image', LIMITS.seal), 'base64');
        const info = checkSeal(image);
        const acc = this.store.account(s.account);
        const id = this.store.data.next_seal++;
        const file = `${id}.png`;
        fs.writeFileSync(path.join(this.store.dir, 'seals', file), image, { mode: 0o600 });
        const seal = { id, type, name, card, company: acc.company, department: acc.department, applicant: acc.name, status: 'registered', account: s.account, file, width: info.width, height: info.height, time: isoDate(this.now()) };
        this.store.data.seals.push(seal);
        this.store.save();
        this.log(`seal ${id}: registered for card ${card}`);
        const { account, file: f2, ...pub } = seal;
        return { seal: pub };
    }

    deleteSeal(s, b) {
        const i = this.store.data.seals.findIndex((x) => x.id === b.id && x.account === s.account);
        if (i < 0) throw fail('SEAL_UNKNOWN', '未找到该印章。', 'Seal not found.', 404);
        const [seal] = this.store.data.seals.splice(i, 1);
        fs.rmSync(path.join(this.store.dir, 'seals', seal.file), { force: true });
        this.store.save();
        return {};
    }

    sealImage(s, res, id) {
        const seal = this.store.data.seals.find((x) => x.id === id && x.account === s.account);
        if (!seal) return this.send(res, 404, { error: { code: 'NOT_FOUND' } });
        return this.send(res, 200, fs.readFileSync(path.join(this.store.dir, 'seals', seal.file)), 'image/png');
    }

    /* ---------- test mode ---------- */

    async testApi(req, res, p, url) {
        const ok = (body) => this.send(res, 200, body);
        if (req.method === 'GET' && p === '/test/sms-code') {
            const code = this.smsLog.get(url.searchParams.get('card') || '');
            return code ? ok({ code }) : this.send(res, 404, { error: { code: 'NO_SMS' } });
        }
        if (req.method === 'POST' && p === '/test/ca') {
            const b = await this.json(req);
            if (b.refuse !== undefined) this.ca.refuse = !!b.refuse;
            if (b.start !== undefined) {
                if (!['now', 'tomorrow', 'old-end'].includes(b.start)) throw E.params('start');
                this.ca.start = b.start;
            }
            if (b.days !== undefined) this.ca.days = Number(b.days);
            if (b.dual !== undefined) {
                if (typeof b.dual !== 'boolean') throw E.params('dual');
                this.caDual = b.dual;
            }
            this.log(`test: CA refuse=${this.ca.refuse} start=${this.ca.start} days=${this.ca.days} dual=${this.caDual}`);
            return ok({ refuse: this.ca.refuse, start: this.ca.start, days: this.ca.days, dual: this.caDual });
        }
        if (req.method === 'POST' && p === '/test/clock') {
            const b = await this.json(req);
            this.clockOffset = Number(b.offset_ms) || 0;
            this.log(`test: clock offset ${this.clockOffset} ms`);
            return ok({ now: isoDate(this.now()) });
        }
        return this.send(res, 404, { error: { code: 'NOT_FOUND' } });
    }
}

/* ---------- command line ---------- */

function parseArgs(argv) {
    const o = {
        port: Number(process.env.PORTAL_PORT || 8083),
        dataDir: process.env.PORTAL_DATA || path.join(process.cwd(), 'portal-data'),
        enroll: [],
        caDays: 365,
        caStart: 'now',
    };
    const need = (i) => {
        if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
        return argv[i + 1];
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        switch (a) {
            case '--port': o.port = Number(need(i)); i++; break;
            case '--data': o.dataDir = path.resolve(need(i)); i++; break;
            case '--origin': o.origin = need(i); i++; break;
            case '--ca-days': o.caDays = Number(need(i)); i++; break;
            case '--ca-start': o.caStart = need(i); i++; break;
            case '--sdk-dir': o.sdkDir = path.resolve(need(i)); i++; break;
            case '--demo-password': o.demoPassword = need(i); i++; break;
            case '--export-ca': o.exportCa = path.resolve(need(i)); i++; break;
            case '--test-mode': o.testMode = true; break;
            case '--enroll': {
                const m = /^([^:]+):(9a|9c):(.+)$/.exec(need(i));
                if (!m) throw new Error('--enroll CARD:9a|9c:CERT.pem');
                o.enroll.push({ card: m[1], slot: m[2], certPem: fs.readFileSync(m[3]) });
                i++;
                break;
            }
            case '-h':
            case '--help':
                o.help = true;
                break;
            default:
                throw new Error(`unknown option ${a}`);
        }
    }
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error('bad --port');
    if (!(o.caDays > 0)) throw new Error('bad --ca-days');
    if (!['now', 'tomorrow', 'old-end'].includes(o.caStart)) throw new Error('--ca-start now|tomorrow|old-end');
    return o;
}

async function main() {
    let o;
    try {
        o = parseArgs(process.argv.slice(2));
    } catch (e) {
        console.error(`portal: ${e.message}`);
        process.exit(2);
    }
    if (o.help) {
        console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(2, 16).join('\n').replace(/^\/\/ ?/gm, ''));
        return;
    }
    const portal = new Portal(o);
    await portal.init();
    if (o.exportCa) {
        // Only write the CA where `vpiv provision --demo-certs` reads it, then exit.
        portal.ca.exportForVpiv(o.exportCa);
        console.log(`portal: CA written to ${o.exportCa}/demo-ca.{pem,key}`);
        return;
    }
    const url = await portal.listen();
    console.log(`portal: listening on ${url}${o.testMode ? ' (TEST MODE: /test/* endpoints are on)' : ''}`);
    console.log(`portal: demo login: account ${DEMO.account}, password ${o.demoPassword || DEMO.password}`);
    const stop = () => portal.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

if (require.main === module) main();

module.exports = { Portal, parseArgs, certStatus, DEMO, CSP };
