'use strict';
// sign on the real daemon against the virtual PIV card: every algorithm of the protocol on the
// key types it is meant for (RSA-2048 in 9a, P-256 in 9c, a P-384 key generated in 9d by
// yubico-piv-tool), with data and with a ready digest, each signature verified by
// `openssl dgst -verify` against the certificate's public key; the answers to bad parameters;
// the PIN refused over WSS (tests/daemon/security.test.js has the dialogs).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { tempDir } = require('./lib/ukeyd');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, openssl, exec, PIN } = require('./lib/rig');

const skip = rigUnavailable() || false;

const HASH = { SHA256: 'sha256', SHA384: 'sha384', SHA512: 'sha512' };
// Algorithm -> the keys it is checked on.
const ALGS = {
    'RSA-PKCS1-SHA256': ['9a'],
    'RSA-PKCS1-SHA384': ['9a'],
    'RSA-PKCS1-SHA512': ['9a'],
    'RSA-PSS-SHA256': ['9a'],
    'RSA-PSS-SHA384': ['9a'],
    'RSA-PSS-SHA512': ['9a'],
    'ECDSA-SHA256': ['9c', '9d'],
    'ECDSA-SHA384': ['9c', '9d'],
    'ECDSA-SHA512': ['9c', '9d'],
};

// openssl dgst -verify of sig over the file data with the public key pub; resolves openssl's
// answer (the caller asserts "Verified OK").
async function opensslVerify(dir, alg, pub, sig, data) {
    const hash = HASH[alg.split('-').pop()];
    const sigFile = path.join(dir, `sig-${crypto.randomBytes(4).toString('hex')}`);
    fs.writeFileSync(sigFile, sig);
    const args = ['dgst', `-${hash}`, '-verify', pub, '-signature', sigFile];
    if (alg.startsWith('RSA-PSS')) args.push('-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:-1');
    args.push(data);
    const r = await exec('openssl', args);
    return (r.stdout + r.stderr).trim();
}

test('sign: every algorithm, data and digest, verified by openssl; bad parameters; PIN over WSS', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'uks-');
    const rig = await new Rig(t).up();

    // A P-384 key generated on the card in 9d and a certificate for it from the demo CA.
    const pub384 = path.join(dir, 'gen384.pub');
    await rig.piv(['-a', 'generate', '-s', '9d', '-A', 'ECCP384', '-o', pub384]);
    const demo = path.join(rig.cardDir(0), 'demo');
    await openssl([
        'x509', '-new', '-subj', '/CN=P-384 on the card', '-force_pubkey', pub384, '-CA', path.join(demo, 'demo-ca.pem'),
        '-CAkey', path.join(demo, 'demo-ca.key'), '-days', '30', '-out', path.join(dir, 'gen384.pem'),
    ]);
    await rig.piv(['-a', 'import-certificate', '-s', '9d', '-i', path.join(dir, 'gen384.pem')]);

    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const id = tok.id;

    // The public key of each certificate, as openssl reads it from the DER cert.list gives.
    const { certificates } = await c.ok('cert.list', { token: id, der: true });
    assert.deepEqual(certificates.map((e) => e.key), ['9a', '9c', '9d']);
    assert.deepEqual([certificates[2].key_algorithm, certificates[2].curve], ['EC', 'P-384']);
    const pub = {};
    for (const e of certificates) {
        const der = path.join(dir, `${e.key}.der`);
        fs.writeFileSync(der, Buffer.from(e.der, 'base64'));
        pub[e.key] = path.join(dir, `${e.key}.pub`);
        fs.writeFileSync(pub[e.key], await openssl(['x509', '-inform', 'DER', '-in', der, '-noout', '-pubkey']));
    }
    const data = crypto.randomBytes(1500);
    const dataFile = path.join(dir, 'data');
    fs.writeFileSync(dataFile, data);

    for (const [alg, keys] of Object.entries(ALGS)) {
        for (const key of keys) {
            await t.test(`${alg} with ${key}: data and digest verify with openssl`, async () => {
                const hash = HASH[alg.split('-').pop()];
                for (const input of ['data', 'digest']) {
                    const params = { token: id, key, algorithm: alg, pin: PIN };
                    params[input] = (input === 'data' ? data : crypto.createHash(hash).update(data).digest()).toString('base64');
                    const r = await c.ok('sign', params);
                    assert.equal(r.algorithm, alg);
                    assert.equal(r.key, key);
                    const sig = Buffer.from(r.signature, 'base64');
                    if (alg.startsWith('RSA')) assert.equal(sig.length, 256, 'RSA-2048 signature length');
                    else assert.equal(sig[0], 0x30, 'ECDSA signature is DER');
                    assert.equal(await opensslVerify(dir, alg, pub[key], sig, dataFile), 'Verified OK', `${alg} ${key} ${input}`);
                }
            });
        }
    }

    await t.test('bad parameters: the answers', async () => {
        const b64 = (n) => crypto.randomBytes(n).toString('base64');
        const base = { token: id, key: '9a', algorithm: 'RSA-PKCS1-SHA256', pin: PIN };
        const cases = [
            ['unknown algorithm', { ...base, algorithm: 'RSA-PKCS1-SHA1', data: b64(10) }, 'INVALID_PARAMS'],
            ['algorithm in lower case', { ...base, algorithm: 'rsa-pkcs1-sha256', data: b64(10) }, 'INVALID_PARAMS'],
            ['both data and digest', { ...base, data: b64(10), digest: b64(32) }, 'INVALID_PARAMS'],
            ['neither data nor digest', { ...base }, 'INVALID_PARAMS'],
            ['digest of the wrong length', { ...base, digest: b64(31) }, 'INVALID_PARAMS'],
            ['a SHA-384 digest for a SHA-256 algorithm', { ...base, digest: b64(48) }, 'INVALID_PARAMS'],
            ['data that is not base64', { ...base, data: '***' }, 'INVALID_PARAMS'],
            ['an unknown parameter', { ...base, data: b64(10), slot: '9a' }, 'INVALID_PARAMS'],
            ['no token', { key: '9a', algorithm: 'RSA-PKCS1-SHA256', pin: PIN, data: b64(10) }, 'INVALID_PARAMS'],
            ['an empty slot (9e)', { ...base, key: '9e', algorithm: 'ECDSA-SHA256', data: b64(10) }, 'KEY_NOT_FOUND'],
            ['a retired slot without a key (95)', { ...base, key: '95', algorithm: 'ECDSA-SHA256', data: b64(10) }, 'KEY_NOT_FOUND'],
            ['a key id that is no slot (zz)', { ...base, key: 'zz', data: b64(10) }, 'INVALID_PARAMS'],
            ['an unknown token', { ...base, token: 'piv:00000000', data: b64(10) }, 'NO_TOKEN'],
            ['ECDSA with the RSA key', { ...base, algorithm: 'ECDSA-SHA256', data: b64(10) }, 'INVALID_PARAMS'],
            ['RSA with the EC key', { ...base, key: '9c', data: b64(10) }, 'INVALID_PARAMS'],
            // No PIN: ukeyd asks in its dialog, which the scripted pinentry cancels here.
            ['no PIN', { token: id, key: '9a', algorithm: 'RSA-PKCS1-SHA256', data: b64(10) }, 'CONSENT_DENIED'],
            ['a PIN of 3 digits', { ...base, pin: '123', data: b64(10) }, 'PIN_INVALID'],
            ['a PIN of 9 digits', { ...base, pin: '123456789', data: b64(10) }, 'PIN_INVALID'],
        ];
        const table = [];
        const wrong = [];
        for (const [what, params, want] of cases) {
            const r = await c.call('sign', params);
            const got = r.error ? r.error.data.reason : 'a signature';
            table.push(`#   ${what}: ${got}`);
            if (got !== want) wrong.push(`${what}: ${got}, expected ${want}`);
        }
        console.log(`# sign with bad parameters:\n${table.join('\n')}`);
        assert.deepEqual(wrong, []);
        // None of them cost a PIN try.
        const { tokens } = await c.ok('token.list');
        assert.equal(tokens[0].pin_retries, 3);
        assert.ok(/Verified OK/.test(await opensslVerify(dir, 'RSA-PKCS1-SHA256', pub['9a'], Buffer.from((await c.ok('sign', { ...base, data: data.toString('base64') })).signature, 'base64'), dataFile)));
    });

    await t.test('over WSS: a PIN is PIN_FROM_PAGE_DISABLED, no PIN opens the PIN dialog', async () => {
        const w = await KeysClient.wss(d);
        const params = { token: id, key: '9a', algorithm: 'RSA-PKCS1-SHA256', data: data.toString('base64') };
        let r = await w.call('sign', { ...params, pin: PIN });
        assert.equal(r.error && r.error.data.reason, 'PIN_FROM_PAGE_DISABLED', JSON.stringify(r));
        r = await w.call('sign', params);
        assert.equal(r.error && r.error.data.reason, 'CONSENT_DENIED', JSON.stringify(r));
        // Even a malformed request with a PIN is refused for the PIN first.
        r = await w.call('sign', { token: 'x', pin: PIN });
        assert.equal(r.error && r.error.data.reason, 'PIN_FROM_PAGE_DISABLED', JSON.stringify(r));
        // The rest of the key methods work over WSS.
        assert.equal((await w.ok('token.list')).tokens[0].id, id);
        assert.equal((await w.ok('cert.list', { token: id })).certificates.length, 3);
        w.close();
    });

    // The driver checks the key and the algorithm (check_sign) before the PIN is verified, so a
    // request that can never succeed never spends a PIN try.
    await t.test(
        'a request that cannot succeed (no key, wrong algorithm for the key) costs no PIN try',
        async () => {
            const b64 = data.toString('base64');
            const got = [];
            for (const [key, algorithm] of [
                ['9e', 'ECDSA-SHA256'],
                ['9a', 'ECDSA-SHA256'],
            ]) {
                const r = await c.call('sign', { token: id, key, algorithm, data: b64, pin: '99999999' });
                got.push(`${key} ${algorithm}: ${r.error && r.error.data.reason}`);
            }
            // A right PIN restores the retries (whatever the outcome above).
            assert.ok((await c.ok('sign', { token: id, key: '9c', algorithm: 'ECDSA-SHA256', data: b64, pin: PIN })).signature);
            console.log(`# with a wrong PIN: ${got.join(', ')}`);
            assert.deepEqual(got, ['9e ECDSA-SHA256: KEY_NOT_FOUND', '9a ECDSA-SHA256: INVALID_PARAMS']);
        },
    );

    c.close();
    await d.stop();
});
