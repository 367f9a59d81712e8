'use strict';
// 验证签章's check (examples/portal/verify.js): SHA-256(origin) ‖ SHA-256(nonce), verified with
// the certificate's key for each `sign` algorithm; another origin, another nonce, another key or
// a changed signature do not verify.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { PORTAL, tempDir, newKey, openssl } = require('./lib');
const { challengeMessage, verifyChallenge, algParams } = require(path.join(PORTAL, 'verify.js'));

const ORIGIN = 'http://127.0.0.1:8083';

function selfSigned(dir, key) {
    const out = path.join(dir, `${path.basename(key)}.pem`);
    openssl(['req', '-x509', '-new', '-key', key, '-subj', '/CN=t', '-days', '2', '-out', out]);
    return fs.readFileSync(out, 'utf8');
}

test('the signed bytes: SHA-256(origin) then SHA-256(nonce), 64 bytes', () => {
    const nonce = Buffer.from('abc');
    const m = challengeMessage(ORIGIN, nonce);
    assert.equal(m.length, 64);
    assert.deepEqual(m.subarray(0, 32), crypto.createHash('sha256').update(ORIGIN).digest());
    assert.deepEqual(m.subarray(32), crypto.createHash('sha256').update(nonce).digest());
    assert.equal(algParams('MD5'), null);
});

for (const [alg, kind, opts] of [
    ['RSA-PKCS1-SHA256', 'rsa', {}],
    ['RSA-PSS-SHA256', 'rsa', { padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
    ['ECDSA-SHA256', 'ec', { dsaEncoding: 'der' }],
    ['ECDSA-SHA384', 'ec', { dsaEncoding: 'der' }],
]) {
    test(`${alg}: verifies for this origin and nonce only`, (t) => {
        const dir = tempDir(t);
        const keyFile = newKey(dir, 'k', kind);
        const cert = selfSigned(dir, keyFile);
        const key = crypto.createPrivateKey(fs.readFileSync(keyFile));
        const nonce = crypto.randomBytes(32);
        const hash = algParams(alg).hash;
        const sig = crypto.sign(hash, challengeMessage(ORIGIN, nonce), { key, ...opts });
        const v = (o) => verifyChallenge({ certificate: cert, origin: ORIGIN, nonce, algorithm: alg, signature: sig, ...o });
        assert.equal(v({}), true);
        assert.equal(v({ origin: 'https://evil.example' }), false, 'replayed to another site');
        assert.equal(v({ nonce: crypto.randomBytes(32) }), false, 'replayed with another nonce');
        const bad = Buffer.from(sig);
        bad[bad.length - 1] ^= 1;
        assert.equal(v({ signature: bad }), false);
        const other = selfSigned(dir, newKey(dir, 'o', kind));
        assert.equal(v({ certificate: other }), false, 'another certificate');
        assert.equal(v({ algorithm: 'nonsense' }), false);
        assert.equal(v({ certificate: 'not a certificate' }), false);
    });
}
