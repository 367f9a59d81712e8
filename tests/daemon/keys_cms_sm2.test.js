'use strict';
// GM/T 0010 CMS with SM2 on the real daemon: the soft SKF module of tests/skf (UKSKF_MODULE)
// holding an SM2 signing and encryption pair in container "sm2". sign.cms on "sm2/sign", attached
// and detached, is taken apart here by a DER reader of the test's own: PKCS#7 content types, SM3
// (1.2.156.10197.1.401) as digest, SM2-with-SM3 (1.2.156.10197.1.501) as signature algorithm, the
// three signed attributes, the message digest equal to node's SM3 of the content, and the signature
// over the DER of the signed attributes checked by `openssl pkeyutl -rawin -digest sm3` with the
// GM/T 0009 ID 1234567812345678 (and refused without it). OpenSSL 3.0's `openssl cms -verify`
// cannot check it: its CMS code verifies SM2 with an empty ID and has no option to set one.
// verify.cms accepts ukeyd's output and a SignedData built here by openssl pkeyutl (sm2-1 OID,
// no signing time), refuses other content, a flipped signature and one made with the empty ID.
// Refusals before the PIN (no try spent): SHA-256 with the SM2 key, the encryption key.
// decrypt.cms of GM/T 0010 EnvelopedData (SM2 key transport, SM4-CBC) for the encryption key: the
// soft module unwraps the content key (SKF_ImportSessionKey) and decrypts the content itself, in
// 1024-byte pieces; envelopes for another key, with a corrupted C3 or content, with AES content, or
// naming the signing certificate are refused, and a wrong PIN spends a try.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { Ukeyd, tempDir } = require('./lib/ukeyd');
const { KeysClient } = require('./lib/rig');
const { OID, oidOf, der, oidDer, seq, set, int, octets, attr, signedParts, issuerAndSerial, provisionSm2, sm2Envelope, sm2Verdict } = require('./lib/cms_der');

const TOOL = process.env.UKSKF_TOOL;
const MODULE = process.env.UKSKF_MODULE;
const ID = '1234567812345678';
const PIN = '123456';


const reason = (r) => r && r.error && r.error.data && r.error.data.reason;

function sh(cmd, args, cwd) {
    return execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function waitToken(c, id, ms = 10000) {
    const deadline = Date.now() + ms;
    for (;;) {
        const r = await c.call('token.list');
        const tok = ((r.result && r.result.tokens) || []).find((x) => x.id === id);
        if (tok) return tok;
        if (Date.now() > deadline) assert.fail(`token ${id} never came: ${JSON.stringify(r)}`);
        await new Promise((res) => setTimeout(res, 100));
    }
}

const skip = MODULE && TOOL ? false : 'UKSKF_MODULE and UKSKF_TOOL are not set';

test('sign.cms, verify.cms and decrypt.cms with SM2 keys of a soft SKF device (GM/T 0010)', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukcms2-');
    provisionSm2(dir, TOOL, { serial: 'SKF-C', label: 'SKF CMS' });
    const d = new Ukeyd(t, { config: { log_level: 'debug', skf_modules: [{ path: MODULE, name: 'Soft SKF', ulong_bytes: 4 }] } });
    d.env.UKSKF_DIR = dir;
    d.env.PCSCLITE_CSOCK_NAME = path.join(dir, 'no-pcscd/pcscd.comm');
    await d.start();
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, 'skf:SKF-C');
    const sigDer = fs.readFileSync(path.join(dir, 'sig.der'));
    // No pcscd here: an unknown SKF token is simply not there, a PC/SC one cannot be looked for.
    assert.equal(reason(await c.call('cert.list', { token: 'skf:NOPE' })), 'NO_TOKEN');
    assert.equal(reason(await c.call('cert.list', { token: 'piv:12345678' })), 'NO_SERVICE');
    const data = crypto.randomBytes(1500);
    const dataB64 = data.toString('base64');
    const pkeyutl = (msg, sig, withId) => sm2Verdict(dir, msg, sig, withId);
    const retries = async () => (await waitToken(c, tok.id)).pin_retries;

    for (const detached of [false, true]) {
        await t.test(`sign.cms ${detached ? 'detached' : 'attached'}: GM/T 0010 structure, SM3 digest, SM2 signature with the default ID`, async () => {
            const before = Date.now();
            const r = await c.ok('sign.cms', { token: tok.id, key: 'sm2/sign', data: dataB64, detached, pin: PIN });
            assert.equal(r.hash, 'SM3', 'an SM2 key signs with SM3 when no hash is named');
            assert.equal(r.key, 'sm2/sign');
            assert.equal(r.detached, detached);
            const when = Date.parse(r.signing_time);
            assert.ok(when >= Math.floor(before / 1000) * 1000 - 1000 && when <= Date.now() + 1000, r.signing_time);
            const cms = Buffer.from(r.cms, 'base64');
            const p = signedParts(cms);
            assert.equal(p.contentType, OID.signedData);
            assert.equal(p.eContentType, OID.data);
            assert.deepEqual(p.digestAlgorithms, [OID.sm3]);
            assert.equal(p.digestAlgorithm, OID.sm3);
            assert.equal(p.signatureAlgorithm, OID.sm2WithSm3);
            assert.equal(p.signerVersion, 1);
            assert.deepEqual(p.certificates, [sigDer], 'the signing certificate is carried');
            if (detached) assert.equal(p.content, null);
            else assert.deepEqual(Buffer.from(p.content), data);
            assert.deepEqual(Object.keys(p.attrs).sort(), [OID.contentType, OID.messageDigest, OID.signingTime].sort());
            assert.equal(oidOf(p.attrs[OID.contentType][0]), OID.data);
            assert.deepEqual(Buffer.from(p.attrs[OID.messageDigest][0].value), crypto.createHash('sm3').update(data).digest());
            // The signature: SM2 over the DER of the attributes, Z with the GM/T 0009 ID.
            assert.match(pkeyutl(p.attrsSet, p.signature, true), /Signature Verified Successfully/);
            assert.match(pkeyutl(p.attrsSet, p.signature, false), /^failed/, 'not with the empty ID');
            // ukeyd's own check agrees.
            const params = { cms: r.cms };
            if (detached) params.content = dataB64;
            const v = await c.ok('verify.cms', params);
            assert.equal(v.detached, detached);
            assert.deepEqual(Buffer.from(v.content, 'base64'), data);
            assert.deepEqual(Buffer.from(v.signer.der, 'base64'), sigDer);
            assert.equal(v.signing_time, r.signing_time);
            // Other content, one flipped bit of the signature.
            const other = Buffer.from(data);
            other[3] ^= 1;
            if (detached) assert.equal(reason(await c.call('verify.cms', { cms: r.cms, content: other.toString('base64') })), 'SIGNATURE_INVALID');
            const bad = Buffer.from(cms);
            bad[bad.length - 2] ^= 1;
            const bp = { cms: bad.toString('base64') };
            if (detached) bp.content = dataB64;
            assert.equal(reason(await c.call('verify.cms', bp)), 'SIGNATURE_INVALID');
        });
    }

    await t.test('sign.cms: hash SM3 named; SHA-256 with an SM2 key, and the encryption key, refused before the PIN', async () => {
        const r = await c.ok('sign.cms', { token: tok.id, key: 'sm2/sign', data: dataB64, hash: 'SM3', pin: PIN });
        assert.equal(r.hash, 'SM3');
        const left = await retries();
        assert.equal(reason(await c.call('sign.cms', { token: tok.id, key: 'sm2/sign', data: dataB64, hash: 'SHA-256', pin: '000000' })), 'NOT_SUPPORTED');
        assert.equal(reason(await c.call('sign.cms', { token: tok.id, key: 'sm2/enc', data: dataB64, pin: '000000' })), 'NOT_SUPPORTED');
        assert.equal(await retries(), left, 'no PIN try spent');
    });

    await t.test('verify.cms of an SM2 SignedData built by openssl pkeyutl (sm2-1 OID, no signing time), and with the empty ID', async () => {
        const content = Buffer.from('GM/T 0010 签名数据', 'utf8');
        const attrs = [attr(OID.contentType, oidDer(OID.data)), attr(OID.messageDigest, octets(crypto.createHash('sm3').update(content).digest()))]
            .sort(Buffer.compare);
        const build = (withId) => {
            const tbs = set(...attrs);
            fs.writeFileSync(path.join(dir, 'tbs'), tbs);
            const sig = sh('openssl', ['pkeyutl', '-sign', '-inkey', 'sig.key', '-rawin', '-digest', 'sm3',
                ...(withId ? ['-pkeyopt', `distid:${ID}`] : []), '-in', 'tbs'], dir);
            const sm3 = seq(oidDer(OID.sm3));
            const signerInfo = seq(int(1), issuerAndSerial(sigDer), sm3, der(0xa0, ...attrs), seq(oidDer(OID.sm2Sign)), octets(sig));
            const sd = seq(int(1), set(sm3), seq(oidDer(OID.data), der(0xa0, octets(content))), der(0xa0, sigDer), set(signerInfo));
            return seq(oidDer(OID.signedData), der(0xa0, sd)).toString('base64');
        };
        const v = await c.ok('verify.cms', { cms: build(true) });
        assert.deepEqual(Buffer.from(v.content, 'base64'), content);
        assert.deepEqual(Buffer.from(v.signer.der, 'base64'), sigDer);
        assert.equal(v.signing_time, null);
        assert.equal(reason(await c.call('verify.cms', { cms: build(false) })), 'SIGNATURE_INVALID', 'signed with the empty ID');
    });

    await t.test('decrypt.cms: GM/T 0010 EnvelopedData for the SM2 encryption key, opened on the key', async () => {
        const left = await retries();
        for (const plain of [Buffer.from('secret'), Buffer.alloc(0), crypto.randomBytes(16), crypto.randomBytes(3000), Buffer.from('加密的内容')]) {
            const env = sm2Envelope(dir, plain).toString('base64');
            const r = await c.ok('decrypt.cms', { token: tok.id, cms: env, pin: PIN });
            assert.equal(r.key, 'sm2/enc');
            assert.deepEqual(Buffer.from(r.content, 'base64'), plain, `${plain.length} bytes`);
        }
        assert.equal(await retries(), left, 'the right PIN spends nothing');
    });

    await t.test('decrypt.cms refusals: another key, corrupted, AES content, the signing certificate, a wrong PIN', async () => {
        sh('openssl', ['genpkey', '-algorithm', 'SM2', '-out', 'other.key'], dir);
        sh('openssl', ['pkey', '-in', 'other.key', '-pubout', '-out', 'other.pub'], dir);
        const env = (opts) => sm2Envelope(dir, Buffer.from('not for you'), opts);
        const call = (cms, pin = PIN) => c.call('decrypt.cms', { token: tok.id, cms: Buffer.from(cms).toString('base64'), pin });
        const left = await retries();
        // The content key encrypted to another key: the key's SM2 decryption fails its C3 check.
        assert.equal(reason(await call(env({ pub: 'other.pub' }))), 'DECRYPT_FAILED');
        // C3 changed (32 bytes before C2, the SM2Cipher's last OCTET STRING of 16 bytes).
        const good = env();
        const c3 = Buffer.from(good);
        const at = c3.indexOf(Buffer.from([0x04, 0x20])) + 2;
        assert.ok(at > 2, 'C3 found');
        c3[at] ^= 0x01;
        assert.equal(reason(await call(c3)), 'DECRYPT_FAILED');
        // The last content block changed: its padding breaks.
        const tail = Buffer.from(good);
        tail[tail.length - 1] ^= 0x5a;
        assert.equal(reason(await call(tail)), 'DECRYPT_FAILED');
        assert.equal(await retries(), left, 'the right PIN spends nothing');
        // Before any dialog and the PIN: AES content (a key decrypts SM4 only).
        const before = d.pinentryLog().length;
        assert.equal(reason(await call(env({ aes: true }), '000000')), 'NOT_SUPPORTED');
        assert.equal(d.pinentryLog().length, before, 'no dialog');
        assert.equal(await retries(), left, 'no PIN try spent');
        // Naming the signing certificate: its key cannot open envelopes; refused before the PIN
        // is tried (a wrong one spends nothing).
        assert.equal(reason(await call(env({ recipient: 'sig.der', pub: 'sig.pub' }), '000000')), 'KEY_NOT_FOUND');
        assert.equal(await retries(), left, 'no PIN try spent');
        // A wrong PIN: a try spent, nothing decrypted.
        const r = await call(good, '000000');
        assert.equal(reason(r), 'PIN_INCORRECT', JSON.stringify(r));
        assert.equal(await retries(), left - 1);
        assert.deepEqual(Buffer.from((await c.ok('decrypt.cms', { token: tok.id, cms: Buffer.from(good).toString('base64'), pin: PIN })).content, 'base64'), Buffer.from('not for you'));
        assert.equal(await retries(), left, 'restored by the right PIN');
    });
    c.close();
    await d.stop();
});
