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
const { Ukeyd, tempDir } = require('./lib/ukeyd');
const { KeysClient } = require('./lib/rig');

const { SOFTHSM, LABEL, PIN, unavailable, sh, softhsm, objects, tokenByLabel } = require('./lib/softhsm');

const skip = unavailable();

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

    // A renewal prepared and aborted: abort deletes the staged private key, which SoftHSM shows
    // only after a login, so it asks the PIN like sign (docs/renewal.md, "PKCS#11 tokens"); a
    // cancelled dialog changes nothing.
    const ids = () => objects(env, dir).filter((o) => o.type !== 'data').map((o) => `${o.type}:${o.id}`).sort();
    const a = await c.ok('renewal.prepare', { token, slot: '01', mode: 'extend', pin: PIN });
    assert.ok(ids().includes(`privkey:${a.staged_slot}`), 'the staged key is on the token');
    d.pinentryAnswers(['cancel']);
    const cancelled = await c.call('renewal.abort', { renewal_id: a.renewal_id });
    assert.equal(cancelled.error.data.reason, 'CONSENT_DENIED', JSON.stringify(cancelled));
    assert.ok(ids().includes(`privkey:${a.staged_slot}`), 'a cancelled abort changes nothing');
    assert.equal((await c.ok('renewal.status', { renewal_id: a.renewal_id })).state, 'prepared');
    d.pinentryAnswers([`pin ${PIN}`]);
    await c.ok('renewal.abort', { renewal_id: a.renewal_id });
    const shown = d.pinentryLog();
    assert.equal(shown.length, 2, JSON.stringify(shown));
    assert.equal(shown[1].command, 'GETPIN');
    assert.match(shown[1].description, /delete the key prepared on your USB key/);
    assert.ok(!ids().some((x) => x.endsWith(`:${a.staged_slot}`)), `abort removed the staged key pair: ${ids()}`);
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
    // A wrong PIN: PIN_INCORRECT before anything changes (the retirement would need it).
    const wrongPin = await c.call('renewal.commit', { renewal_id: p.renewal_id, certificate: fs.readFileSync(issued, 'utf8'), pin: '999999' });
    assert.equal(wrongPin.error.data.reason, 'PIN_INCORRECT', JSON.stringify(wrongPin));
    assert.equal((await c.ok('renewal.status', { renewal_id: p.renewal_id })).state, 'prepared');
    assert.ok(ids().includes('privkey:01') && ids().includes('cert:01'), 'the old pair is untouched');
    const done = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: fs.readFileSync(issued, 'utf8'), pin: PIN });
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
    // The old pair (key and certificate 01) was retired once the new one was active.
    assert.deepEqual(ids(), ['cert:02', 'privkey:02', 'pubkey:02', `cert:${p.staged_slot}`, `privkey:${p.staged_slot}`, `pubkey:${p.staged_slot}`].sort());
    c.close();
    await d.stop();
});
