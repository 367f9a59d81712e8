'use strict';
// SKF (GM/T 0016) on the real daemon: the soft SKF module of tests/skf (UKSKF_MODULE with 4-byte
// ULONG, UKSKF_MODULE64 with 8-byte ULONG) configured with "skf_modules" next to a path that does
// not load; devices provisioned by the ukskf tool (UKSKF_TOOL) in the test's own UKSKF_DIR; no
// pcscd at all. token.list shows the device as skf:<serial>, cert.list returns the signing and
// the encryption certificate of the container, an SM2-SM3 signature verifies with
// `openssl pkeyutl -rawin -digest sm3 -pkeyopt distid:1234567812345678`, a wrong PIN counts down
// to PIN_LOCKED, and a pulled device goes away.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Ukeyd, tempDir } = require('./lib/ukeyd');
const { KeysClient } = require('./lib/rig');

const TOOL = process.env.UKSKF_TOOL;
const ID = '1234567812345678';
const PIN = '123456';

function sh(cmd, args, cwd) {
    return execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

// An SM2 CA, a signing and an encryption pair certified by it, and device ukey0 (serial SKF-A,
// 3 PIN tries) holding both in container "sm2".
function provision(dir) {
    const o = (...a) => sh('openssl', a, dir);
    const sm3 = ['-sm3', '-sigopt', `distid:${ID}`];
    o('ecparam', '-name', 'SM2', '-genkey', '-noout', '-out', 'ca.key');
    o('req', '-x509', '-new', '-key', 'ca.key', ...sm3, '-subj', '/CN=skf daemon CA', '-days', '30', '-out', 'ca.pem');
    for (const k of ['sig', 'enc']) {
        o('ecparam', '-name', 'SM2', '-genkey', '-noout', '-out', `${k}.key`);
        o('req', '-new', '-key', `${k}.key`, ...sm3, '-subj', `/CN=skf ${k}`, '-out', `${k}.csr`);
        o('x509', '-req', '-in', `${k}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', ...sm3, '-vfyopt', `distid:${ID}`,
            '-days', '30', '-set_serial', k === 'sig' ? '1' : '2', '-out', `${k}.pem`);
        o('x509', '-in', `${k}.pem`, '-outform', 'DER', '-out', `${k}.der`);
        o('x509', '-in', `${k}.pem`, '-noout', '-pubkey', '-out', `${k}.pub`);
    }
    sh(TOOL, ['provision', '--dir', dir, '--device', 'ukey0', '--serial', 'SKF-A', '--label', 'SKF daemon',
        '--retries', '3', '--container', 'sm2', '--key', 'sig.key', '--cert', 'sig.pem',
        '--enc-key', 'enc.key', '--enc-cert', 'enc.pem'], dir);
}

async function waitToken(c, pred, ms = 10000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const r = await c.call('token.list');
        const tokens = (r.result && r.result.tokens) || [];
        if (pred(tokens)) return tokens;
        if (Date.now() > deadline) assert.fail(`token.list never matched: ${JSON.stringify(r)}`);
        await new Promise((res) => setTimeout(res, 100));
    }
}

for (const [width, module] of [[4, process.env.UKSKF_MODULE], [8, process.env.UKSKF_MODULE64]]) {
    const skip = module && TOOL ? false : 'UKSKF_MODULE(64) and UKSKF_TOOL are not set';
    test(`skf (${width}-byte ULONG): token, dual certificates, SM2-SM3 verified by openssl, PIN, removal`, { skip, timeout: 120000 }, async (t) => {
        const dir = tempDir(t, 'ukskf-');
        provision(dir);
        const d = new Ukeyd(t, {
            config: {
                log_level: 'debug',
                skf_modules: [{ path: '/nonexistent/libskf.so', name: 'Broken' }, { path: module, name: 'Soft SKF', ulong_bytes: width }],
            },
        });
        d.env.UKSKF_DIR = dir;
        d.env.PCSCLITE_CSOCK_NAME = path.join(dir, 'no-pcscd/pcscd.comm');
        await d.start();
        const c = await KeysClient.unix(d);
        const [tok] = await waitToken(c, (ts) => ts.some((x) => x.id === 'skf:SKF-A'));
        assert.equal(tok.id, 'skf:SKF-A');
        assert.equal(tok.driver, 'skf');
        assert.equal(tok.label, 'SKF daemon');
        assert.equal(tok.reader, 'Soft SKF: ukey0');
        await d.waitLog(new RegExp(`SKF module Soft SKF loaded from .* \\(${width}-byte ULONG\\)`));
        await d.waitLog(/SKF module Broken: cannot load \/nonexistent\/libskf\.so/);

        // Both certificates of the container, under their key ids.
        const { certificates } = await c.ok('cert.list', { token: tok.id, der: true });
        assert.deepEqual(certificates.map((e) => e.key).sort(), ['sm2/enc', 'sm2/sign']);
        for (const e of certificates) {
            const file = e.key === 'sm2/sign' ? 'sig.der' : 'enc.der';
            assert.deepEqual(Buffer.from(e.der, 'base64'), fs.readFileSync(path.join(dir, file)));
        }

        // SM2 with SM3 and the GM/T 0009 ID, judged by openssl; the same signature fails for
        // other data and without the ID.
        const data = crypto.randomBytes(300);
        fs.writeFileSync(path.join(dir, 'data'), data);
        fs.writeFileSync(path.join(dir, 'other'), 'x');
        const r = await c.ok('sign', { token: tok.id, key: 'sm2/sign', algorithm: 'SM2-SM3', pin: PIN, data: data.toString('base64') });
        assert.equal(r.algorithm, 'SM2-SM3');
        fs.writeFileSync(path.join(dir, 'sig'), Buffer.from(r.signature, 'base64'));
        const verify = (file, opts) => sh('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', 'sig.pub', '-rawin', '-digest', 'sm3',
            ...opts, '-in', file, '-sigfile', 'sig'], dir).toString();
        assert.match(verify('data', ['-pkeyopt', `distid:${ID}`]), /Signature Verified Successfully/);
        assert.throws(() => verify('other', ['-pkeyopt', `distid:${ID}`]));
        assert.throws(() => verify('data', []));
        // The encryption key does not sign (refused before the PIN: no try spent).
        const enc = await c.call('sign', { token: tok.id, key: 'sm2/enc', algorithm: 'SM2-SM3', pin: '000000', data: data.toString('base64') });
        assert.ok(enc.error, JSON.stringify(enc));

        // Wrong PIN: tries left, then locked; the right PIN no longer helps.
        const params = { token: tok.id, key: 'sm2/sign', algorithm: 'SM2-SM3', data: data.toString('base64') };
        let w = await c.call('sign', { ...params, pin: '999999' });
        assert.equal(w.error.data.reason, 'PIN_INCORRECT');
        assert.equal(w.error.data.retries_left, 2);
        w = await c.call('sign', { ...params, pin: '999999' });
        assert.equal(w.error.data.retries_left, 1);
        // With one try left ukeyd asks before spending it: confirmed in the (scripted) dialog.
        d.pinentryAnswers(['ok']);
        w = await c.call('sign', { ...params, pin: '999999' });
        assert.equal(w.error.data.reason, 'PIN_LOCKED');
        w = await c.call('sign', { ...params, pin: PIN });
        assert.equal(w.error.data.reason, 'PIN_LOCKED');
        assert.doesNotMatch(d.log, /999999|123456/, 'a PIN in the log');

        // The key pulled out: the token goes away; back in, it comes back.
        sh(TOOL, ['remove', '--dir', dir, '--device', 'ukey0'], dir);
        await waitToken(c, (ts) => !ts.some((x) => x.id === 'skf:SKF-A'));
        const gone = await c.call('cert.list', { token: tok.id });
        // No pcscd here: the token layer answers an unknown id with NO_SERVICE then (a PC/SC
        // token could not be found either); with pcscd it is NO_TOKEN.
        assert.ok(gone.error && ['NO_TOKEN', 'NO_SERVICE'].includes(gone.error.data.reason), JSON.stringify(gone));
        sh(TOOL, ['insert', '--dir', dir, '--device', 'ukey0'], dir);
        await waitToken(c, (ts) => ts.some((x) => x.id === 'skf:SKF-A'));
        c.close();
        d.allowError(/Broken|libskf\.so/);
        await d.stop();
    });
}
