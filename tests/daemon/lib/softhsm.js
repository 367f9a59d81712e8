'use strict';
// SoftHSM2 tokens for the daemon tests: each one in the test's own temp dir (its own
// SOFTHSM2_CONF and token dir, never the machine's), with key + certificate pairs imported by
// softhsm2-util and pkcs11-tool; a daemon configured with the module and no pcscd at all.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so';
const LABEL = 'ukeyd-daemon';
const PIN = '123456';
const unavailable = () => (fs.existsSync(SOFTHSM) ? false : `SoftHSM2 is not installed (${SOFTHSM})`);

function sh(cmd, args, env, cwd) {
    return execFileSync(cmd, args, { env: Object.assign({}, process.env, env), cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

// The key pairs softhsm() imports: RSA-2048 under CKA_ID 01, P-256 under 02.
const KEYS = { '01': ['-newkey', 'rsa:2048'], '02': ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] };

// A SoftHSM2 token in dir with key + certificate pairs (files k<id>.pem, c<id>.pem, c<id>.der,
// p<id>.pem in dir). Returns the environment that selects it (SOFTHSM2_CONF).
function softhsm(dir, ids = ['01', '02']) {
    const tokens = path.join(dir, 'tokens');
    fs.mkdirSync(tokens);
    const conf = path.join(dir, 'softhsm2.conf');
    fs.writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    const env = { SOFTHSM2_CONF: conf };
    sh('softhsm2-util', ['--init-token', '--free', '--label', LABEL, '--so-pin', '12345678', '--pin', PIN], env, dir);
    for (const id of ids) {
        sh('openssl', ['req', '-x509', ...KEYS[id], '-nodes', '-keyout', `k${id}.pem`, '-out', `c${id}.pem`, '-subj', `/CN=p11 ${id}`, '-days', '30'], env, dir);
        sh('openssl', ['pkcs8', '-topk8', '-nocrypt', '-in', `k${id}.pem`, '-out', `k${id}.p8`], env, dir);
        sh('openssl', ['x509', '-in', `c${id}.pem`, '-outform', 'DER', '-out', `c${id}.der`], env, dir);
        sh('softhsm2-util', ['--import', `k${id}.p8`, '--token', LABEL, '--label', `k${id}`, '--id', id, '--pin', PIN], env, dir);
        writeCert(env, dir, id, path.join(dir, `c${id}.der`));
        sh('openssl', ['x509', '-in', `c${id}.pem`, '-noout', '-pubkey', '-out', `p${id}.pem`], env, dir);
    }
    return env;
}

function tool(env, dir, args) {
    return sh('pkcs11-tool', ['--module', SOFTHSM, '--token-label', LABEL, ...args], env, dir).toString();
}

// Replaces the certificate of CKA_ID id with the DER file der (the key stays).
function writeCert(env, dir, id, der) {
    try {
        tool(env, dir, ['--login', '--pin', PIN, '--delete-object', '--type', 'cert', '--id', id]);
    } catch (e) {
        // none yet
    }
    tool(env, dir, ['--login', '--pin', PIN, '--write-object', der, '--type', 'cert', '--id', id]);
}

// Every object of the token, private ones included (a login): [{type, id}], type one of
// 'privkey', 'pubkey', 'cert', 'data'.
function objects(env, dir) {
    const out = tool(env, dir, ['--login', '--pin', PIN, '--list-objects']);
    const list = [];
    let type = null;
    for (const line of out.split('\n')) {
        const m = line.match(/^(Private Key|Public Key|Certificate|Data) Object/);
        if (m) {
            type = { 'Private Key': 'privkey', 'Public Key': 'pubkey', Certificate: 'cert', Data: 'data' }[m[1]];
            list.push({ type, id: null });
            continue;
        }
        const id = line.match(/^\s+ID:\s+([0-9a-f]+)/);
        if (id && list.length) list[list.length - 1].id = id[1];
    }
    assert.ok(list.length > 0 && list.every((o) => o.id !== null || o.type === 'data'), `unexpected pkcs11-tool output:\n${out}`);
    return list;
}

async function tokenByLabel(c, label = LABEL, ms = 10000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const r = await c.call('token.list');
        const tok = r.result && r.result.tokens.find((x) => x.label === label && x.id);
        if (tok) return tok;
        if (Date.now() > deadline) assert.fail(`no token labelled ${label}: ${JSON.stringify(r)}`);
        await new Promise((res) => setTimeout(res, 100));
    }
}

module.exports = { SOFTHSM, LABEL, PIN, unavailable, sh, softhsm, writeCert, objects, tokenByLabel };
