'use strict';
// PKCS#11 on the real daemon: a SoftHSM2 token (its own SOFTHSM2_CONF and token dir in the test's
// temp dir, an RSA key + certificate imported with softhsm2-util and pkcs11-tool, and a P-256 key
// + certificate) configured with "pkcs11_modules"; no pcscd at all. token.list shows it, cert.list
// returns the certificates, sign (RSA PKCS#1, RSA-PSS, ECDSA) verifies with openssl, and a module
// path that does not load is reported without stopping the daemon.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Ukeyd, tempDir } = require('./lib/ukeyd');
const { KeysClient } = require('./lib/rig');

const SOFTHSM = '/usr/lib/softhsm/libsofthsm2.so';
const LABEL = 'ukeyd-daemon';
const PIN = '123456';
const skip = fs.existsSync(SOFTHSM) ? false : `SoftHSM2 is not installed (${SOFTHSM})`;

function sh(cmd, args, env, cwd) {
    return execFileSync(cmd, args, { env: Object.assign({}, process.env, env), cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

// A SoftHSM2 token in dir with key + certificate pairs (RSA id 01, P-256 id 02). Returns the env.
function softhsm(dir) {
    const tokens = path.join(dir, 'tokens');
    fs.mkdirSync(tokens);
    const conf = path.join(dir, 'softhsm2.conf');
    fs.writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    const env = { SOFTHSM2_CONF: conf };
    sh('softhsm2-util', ['--init-token', '--free', '--label', LABEL, '--so-pin', '12345678', '--pin', PIN], env, dir);
    for (const [id, keyArgs] of [['01', ['-newkey', 'rsa:2048']], ['02', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']]]) {
        sh('openssl', ['req', '-x509', ...keyArgs, '-nodes', '-keyout', `k${id}.pem`, '-out', `c${id}.pem`, '-subj', `/CN=p11 ${id}`, '-days', '30'], env, dir);
        sh('openssl', ['pkcs8', '-topk8', '-nocrypt', '-in', `k${id}.pem`, '-out', `k${id}.p8`], env, dir);
        sh('openssl', ['x509', '-in', `c${id}.pem`, '-outform', 'DER', '-out', `c${id}.der`], env, dir);
        sh('softhsm2-util', ['--import', `k${id}.p8`, '--token', LABEL, '--label', `k${id}`, '--id', id, '--pin', PIN], env, dir);
        sh('pkcs11-tool', ['--module', SOFTHSM, '--token-label', LABEL, '--login', '--pin', PIN, '--write-object', `c${id}.der`, '--type', 'cert', '--id', id], env, dir);
        sh('openssl', ['x509', '-in', `c${id}.pem`, '-noout', '-pubkey', '-out', `p${id}.pem`], env, dir);
    }
    return env;
}

async function tokenByLabel(c, label, ms = 10000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const r = await c.call('token.list');
        const tok = r.result && r.result.tokens.find((x) => x.label === label && x.id);
        if (tok) return tok;
        if (Date.now() > deadline) assert.fail(`no token labelled ${label}: ${JSON.stringify(r)}`);
        await new Promise((res) => setTimeout(res, 100));
    }
}

test('pkcs11: SoftHSM2 token listed, certificates, RSA and ECDSA signatures verified by openssl', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukp11-');
    const env = softhsm(dir);
    const d = new Ukeyd(t, {
        config: { log_level: 'debug', pkcs11_modules: [{ path: '/nonexistent/broken.so', name: 'Broken' }, { path: SOFTHSM, name: 'SoftHSM' }] },
    });
    Object.assign(d.env, env);
    // No pcscd for this daemon: the PC/SC side has nothing, the module still answers.
    d.env.PCSCLITE_CSOCK_NAME = path.join(dir, 'no-pcscd/pcscd.comm');
    await d.start();
    const c = await KeysClient.unix(d);
    const tok = await tokenByLabel(c, LABEL);
    assert.match(tok.id, /^p11:[0-9a-f]+$/);
    assert.equal(tok.driver, 'p11');
    assert.equal(tok.model, 'SoftHSM v2');
    assert.match(tok.reader, /^SoftHSM: /);
    await d.waitLog(/PKCS#11 module Broken: cannot load \/nonexistent\/broken\.so/);

    const { certificates } = await c.ok('cert.list', { token: tok.id, der: true });
    assert.deepEqual(certificates.map((e) => e.key).sort(), ['01', '02']);
    for (const e of certificates)
        assert.deepEqual(Buffer.from(e.der, 'base64'), fs.readFileSync(path.join(dir, `c${e.key}.der`)));

    const data = crypto.randomBytes(700);
    const dataFile = path.join(dir, 'data');
    fs.writeFileSync(dataFile, data);
    for (const [alg, key] of [['RSA-PKCS1-SHA256', '01'], ['RSA-PSS-SHA384', '01'], ['ECDSA-SHA256', '02'], ['ECDSA-SHA512', '02']]) {
        const r = await c.ok('sign', { token: tok.id, key, algorithm: alg, pin: PIN, data: data.toString('base64') });
        const sig = Buffer.from(r.signature, 'base64');
        const sigFile = path.join(dir, `sig-${alg}`);
        fs.writeFileSync(sigFile, sig);
        const hash = alg.split('-').pop().toLowerCase();
        const args = ['dgst', `-${hash}`, '-verify', path.join(dir, `p${key}.pem`), '-signature', sigFile];
        if (alg.startsWith('RSA-PSS')) args.push('-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:-1');
        args.push(dataFile);
        assert.match(sh('openssl', args, {}, dir).toString(), /Verified OK/, alg);
        // and the same check fails for other data: the verification can fail
        fs.writeFileSync(path.join(dir, 'other'), 'x');
        assert.throws(() => sh('openssl', args.slice(0, -1).concat(path.join(dir, 'other')), {}, dir));
    }
    const wrong = await c.call('sign', { token: tok.id, key: '01', algorithm: 'RSA-PKCS1-SHA256', pin: '999999', data: data.toString('base64') });
    assert.equal(wrong.error.data.reason, 'PIN_INCORRECT');
    assert.doesNotMatch(d.log, /999999|123456/, 'a PIN in the log');
    c.close();
    // A clean stop (sanitizer builds: no leak, no error) with the broken module's error expected.
    d.allowError(/Broken|broken\.so/);
    await d.stop();
});

test('pkcs11: renewal extend of an RSA key on SoftHSM2: CSR, commit, the new key signs as the role', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukp11r-');
    const env = softhsm(dir);
    const ca = path.join(dir, 'ca');
    sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-subj', '/CN=p11 renewal CA', '-days', '30'], {}, dir);
    const d = new Ukeyd(t, { config: { log_level: 'debug', pkcs11_modules: [{ path: SOFTHSM, name: 'SoftHSM' }] } });
    Object.assign(d.env, env);
    d.env.PCSCLITE_CSOCK_NAME = path.join(dir, 'no-pcscd/pcscd.comm');
    await d.start();
    const c = await KeysClient.unix(d);
    const token = (await tokenByLabel(c, LABEL)).id;
    const oldDer = fs.readFileSync(path.join(dir, 'c01.der')).toString('base64');

    // A renewal prepared and aborted: the staged public key goes and nothing public names the id
    // any more; abort has no PIN, so the private key stays, unused (docs/drivers.md).
    const publicObjs = () => sh('pkcs11-tool', ['--module', SOFTHSM, '--token-label', LABEL, '-O'], env, dir).toString();
    const a = await c.ok('renewal.prepare', { token, slot: '01', mode: 'extend', pin: PIN });
    assert.match(publicObjs(), new RegExp(`ID:\\s+${a.staged_slot}`), 'the staged key is on the token');
    await c.ok('renewal.abort', { renewal_id: a.renewal_id });
    assert.doesNotMatch(publicObjs(), new RegExp(`ID:\\s+${a.staged_slot}`), 'abort removed the staged public key');
    assert.equal((await c.ok('renewal.status', { renewal_id: a.renewal_id })).state, 'aborted');

    const p = await c.ok('renewal.prepare', { token, slot: '01', mode: 'extend', pin: PIN });
    assert.equal(p.state, 'prepared');
    assert.match(p.staged_slot, /^[0-9a-f]{8}$/, 'a fresh CKA_ID');
    const csr = path.join(dir, 'r.csr');
    fs.writeFileSync(csr, p.csr_pem);
    const v = sh('openssl', ['req', '-in', csr, '-noout', '-verify'], {}, dir).toString();
    assert.doesNotMatch(v, /fail/i);
    const issued = path.join(dir, 'r.pem');
    sh('openssl', ['x509', '-req', '-in', csr, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-days', '20', '-out', issued], {}, dir);
    const done = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: fs.readFileSync(issued, 'utf8') });
    assert.equal(done.state, 'done');
    assert.equal(done.certificate.key, '01');

    // cert.list shows the new certificate for the role 01; the new key signs for it.
    const newDer = Buffer.from(new crypto.X509Certificate(fs.readFileSync(issued)).raw).toString('base64');
    const listed = (await c.ok('cert.list', { token, der: true })).certificates;
    assert.equal(listed.find((e) => e.key === '01').der, newDer);
    assert.ok(!listed.some((e) => e.der === oldDer && e.key === '01'), 'the old certificate is no longer the role\'s');
    const data = crypto.randomBytes(100);
    const s = await c.ok('sign', { token, key: '01', algorithm: 'RSA-PKCS1-SHA256', data: data.toString('base64'), pin: PIN });
    assert.ok(crypto.verify('sha256', data, crypto.createPublicKey(fs.readFileSync(issued)), Buffer.from(s.signature, 'base64')));
    // Other PKCS#11 software sees the new pair under its own CKA_ID.
    const objs = sh('pkcs11-tool', ['--module', SOFTHSM, '--token-label', LABEL, '-O'], env, dir).toString();
    assert.match(objs, new RegExp(`ID:\\s+${p.staged_slot}`));
    c.close();
    await d.stop();
});
