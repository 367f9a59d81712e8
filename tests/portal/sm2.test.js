'use strict';
// The portal's SM2 test CA (examples/portal/ca.js) and test KMC (examples/portal/kmc.js).
//
// Judges are independent of the code under test: `openssl verify -vfyopt distid:…` and
// `openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:…` for signatures, `openssl
// pkeyutl -decrypt` + node:crypto's sm4-ecb for the envelopes (the blob is taken apart here by
// offsets, the private key compared with `openssl pkey -text`), `openssl asn1parse` for the DER,
// and tests/skf's soft GM/T 0016 module (SKF_ImportECCKeyPair through tests/portal/skf_import.c)
// for the C blob. The module tests need the built module: ctest passes UKSKF_MODULE,
// UKSKF_MODULE64, UKSKF_TOOL, PORTAL_SKF_IMPORT and PORTAL_SKF_IMPORT64 (tests/portal/CMakeLists.txt);
// without them those tests are skipped, saying so.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { PORTAL, SM2_ID, tempDir, openssl, newKey, csr, sm2Csr, certFor } = require('./lib');
const { TestCa } = require(path.join(PORTAL, 'ca.js'));
const kmcMod = require(path.join(PORTAL, 'kmc.js'));
const { TestKmc } = kmcMod;
const { parseCert, parseCsr, pemToDer, derToPem } = require(path.join(PORTAL, 'der.js'));

const DAY = 86400000;
const DISTID = `distid:${SM2_ID}`;
const SAR_OK = 0;
const SAR_INVALIDPARAMERR = 0x0a000006;
const SAR_INDATAERR = 0x0a000011;

async function setup(t, opts = {}) {
    const dir = tempDir(t);
    const ca = await new TestCa({ dir: path.join(dir, 'ca'), ...opts }).init();
    return { dir, ca };
}

// An SM2 "card": the old certificate (from the SM2 CA) and a new key with its request.
function sm2Renewal(dir, ca, { id } = {}) {
    const oldPem = certFor(dir, ca.dir, newKey(dir, `old-${Math.random().toString(36).slice(2)}`, 'sm2'), { sm2: true });
    const key = newKey(dir, `new-${Math.random().toString(36).slice(2)}`, 'sm2');
    return { oldDer: new crypto.X509Certificate(oldPem).raw, key, csrPem: sm2Csr(dir, key, undefined, id) };
}

function write(dir, name, data) {
    const f = path.join(dir, name);
    fs.writeFileSync(f, data);
    return f;
}

// `openssl verify` against the SM2 CA, with or without the ID: true when it says OK.
function verifies(dir, caPem, certPem, withId) {
    const r = spawnSync('openssl', ['verify', '-CAfile', write(dir, 'v-ca.pem', caPem), ...(withId ? ['-vfyopt', DISTID] : []), write(dir, 'v-cert.pem', certPem)], { encoding: 'utf8' });
    return r.status === 0 && /: OK\s*$/.test(r.stdout);
}

// The signature of a certificate checked by hand: TBS and signature cut out with asn1parse,
// verified with pkeyutl (SM3, the given ID or none) under pubPem.
function pkeyutlVerify(dir, certPem, pubPem, id) {
    const cert = write(dir, 'p-cert.pem', certPem);
    const lines = openssl(['asn1parse', '-in', cert]).split('\n');
    const sigOff = lines.filter((l) => /^\s*\d+:d=1 .*BIT STRING/.test(l)).map((l) => Number(l.trim().split(':')[0]))[0];
    openssl(['asn1parse', '-in', cert, '-strparse', '4', '-noout', '-out', path.join(dir, 'p-tbs.der')]);
    openssl(['asn1parse', '-in', cert, '-strparse', String(sigOff), '-noout', '-out', path.join(dir, 'p-sig.der')]);
    const r = spawnSync('openssl', [
        'pkeyutl', '-verify', '-rawin', '-digest', 'sm3', '-pubin', '-inkey', write(dir, 'p-pub.pem', pubPem), '-in', path.join(dir, 'p-tbs.der'),
        '-sigfile', path.join(dir, 'p-sig.der'), ...(id ? ['-pkeyopt', `distid:${id}`] : []),
    ], { encoding: 'utf8' });
    return r.status === 0 && /Signature Verified Successfully/.test(r.stdout);
}

function pubOf(dir, certPem) {
    return openssl(['x509', '-in', write(dir, 'c.pem', certPem), '-noout', '-pubkey']);
}

function ext(dir, certPem, name) {
    return openssl(['x509', '-in', write(dir, 'e.pem', certPem), '-noout', '-ext', name]);
}

// The private scalar and public point of a key file as `openssl pkey -text` prints them.
function keyText(file) {
    const text = openssl(['pkey', '-in', file, '-noout', '-text']);
    const block = (label) => {
        const m = new RegExp(`${label}:\\n((?:\\s+[0-9a-f:]+\\n)+)`).exec(text);
        return Buffer.from(m[1].replace(/[\s:]/g, ''), 'hex');
    };
    const priv = block('priv');
    return { d: Buffer.concat([Buffer.alloc(32), priv]).subarray(-32), point: block('pub') };
}

// A test's own DER for SM2Cipher from raw parts (not kmc.js's encoder): INTEGERs minimal.
function testSm2Cipher(x, y, hash, c2) {
    const tl = (tag, b) => Buffer.concat([Buffer.from([tag, b.length]), b]); // every part < 128 bytes
    const int = (v) => {
        let i = 0;
        while (i < 31 && v[i] === 0) i++;
        const m = v.subarray(i);
        return tl(0x02, m[0] & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m);
    };
    return tl(0x30, Buffer.concat([int(x), int(y), tl(0x04, hash), tl(0x04, c2)]));
}

function sm2Decrypt(dir, keyFile, cipherDer) {
    return execFileSync('openssl', ['pkeyutl', '-decrypt', '-inkey', keyFile, '-in', write(dir, 'ct.der', cipherDer)], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function sm4EcbDecrypt(key, data) {
    const d = crypto.createDecipheriv('sm4-ecb', key, null);
    d.setAutoPadding(false);
    return Buffer.concat([d.update(data), d.final()]);
}

// The blob taken apart by the standard's offsets (U = ULONG bytes).
function splitBlob(b, U = 4) {
    const u = (off) => (U === 4 ? b.readUInt32LE(off) : Number(b.readBigUInt64LE(off)));
    const pub = 3 * U + 64;
    const cb = pub + U + 128;
    return {
        version: u(0),
        alg: u(U),
        bits: u(2 * U),
        encPri: b.subarray(3 * U, 3 * U + 64),
        pubBits: u(pub),
        pubX: b.subarray(pub + U, pub + U + 64),
        pubY: b.subarray(pub + U + 64, pub + U + 128),
        c1x: b.subarray(cb, cb + 64),
        c1y: b.subarray(cb + 64, cb + 128),
        hash: b.subarray(cb + 128, cb + 160),
        cipherLen: u(cb + 160),
        cipher: b.subarray(cb + 160 + U),
        cipherOff: cb + 160 + U,
    };
}

/* ---------- the SM2 CA ---------- */

test('SM2 CA: an SM2 root signed with SM3 under the GM/T 0009 ID, made once, next to the EC CA', async (t) => {
    const { dir, ca } = await setup(t);
    const pem = ca.sm2CertPem;
    const text = openssl(['x509', '-in', ca.sm2CertPath, '-noout', '-text']);
    assert.match(text, /Signature Algorithm: SM2-with-SM3/);
    assert.match(text, /ASN1 OID: SM2/);
    assert.match(text, /CN = ukeyd Demo Portal SM2 CA/);
    assert.match(text, /CA:TRUE/);
    const pub = pubOf(dir, pem);
    assert.ok(pkeyutlVerify(dir, pem, pub, SM2_ID), 'self-signature with 1234567812345678');
    assert.ok(!pkeyutlVerify(dir, pem, pub, null), 'and not with OpenSSL\'s empty ID');
    assert.equal(fs.statSync(ca.sm2KeyPath).mode & 0o077, 0, 'the CA key is private');
    assert.match(new crypto.X509Certificate(ca.certPem).subject, /CN=ukeyd Demo Portal CA$/, 'the EC CA is still there');
    const again = await new TestCa({ dir: ca.dir }).init();
    assert.equal(again.sm2CertPem, pem, 'kept across restarts');
});

test('SM2 CA issues for `openssl req -new -key sm2.pem -sm3 -sigopt distid:1234567812345678`: signing profile, the ID', async (t) => {
    const { dir, ca } = await setup(t, { days: 90 });
    const r = sm2Renewal(dir, ca);
    const before = Date.now();
    const got = await ca.issue({ csrPem: r.csrPem, oldCertDer: r.oldDer, slot: '9c' });
    assert.equal(got.sm2, true);
    assert.ok(verifies(dir, ca.sm2CertPem, got.pem, true), 'openssl verify -vfyopt distid:1234567812345678');
    assert.ok(!verifies(dir, ca.sm2CertPem, got.pem, false), 'fails with the empty ID: the ID was used');
    assert.ok(pkeyutlVerify(dir, got.pem, pubOf(dir, ca.sm2CertPem), SM2_ID), 'TBS signature by the SM2 CA key');
    assert.ok(!verifies(dir, ca.certPem, got.pem, true), 'not by the EC CA');
    const text = openssl(['x509', '-in', write(dir, 'g.pem', got.pem), '-noout', '-text']);
    assert.match(text, /Signature Algorithm: SM2-with-SM3/);
    // GM/T 0015 signing certificate: digitalSignature + nonRepudiation, critical, whatever the slot.
    assert.match(ext(dir, got.pem, 'keyUsage'), /critical\n\s+Digital Signature, Non Repudiation\n/);
    assert.match(ext(dir, got.pem, 'basicConstraints'), /critical\n\s+CA:FALSE/);
    const parts = parseCert(got.der);
    assert.ok(parts.subject.equals(parseCert(r.oldDer).subject), 'the old subject byte for byte');
    assert.ok(parts.spki.equals(parseCsr(pemToDer(r.csrPem, 'CERTIFICATE REQUEST')).spki), 'the request\'s key');
    const x = new crypto.X509Certificate(got.pem);
    assert.ok(Math.abs(Date.parse(x.validFrom) - before) < 5000);
    assert.equal(Date.parse(x.validTo) - Date.parse(x.validFrom), 90 * DAY);
    assert.equal(x.issuer, new crypto.X509Certificate(ca.sm2CertPem).subject);
    // node:crypto cannot check it (no way to pass the ID): the reason the CLI is the judge.
    assert.equal(x.verify(new crypto.X509Certificate(ca.sm2CertPem).publicKey), false);
});

test('SM2 CA refuses: the wrong ID, OpenSSL\'s empty ID, an SM2 key with another hash, a changed request, another subject', async (t) => {
    const { dir, ca } = await setup(t);
    const r = sm2Renewal(dir, ca);
    const refuses = (csrPem, code) => assert.rejects(ca.issue({ csrPem, oldCertDer: r.oldDer }), { code });
    await refuses(sm2Csr(dir, r.key, undefined, '1234567812345679'), 'CSR_SIGNATURE');
    await refuses(sm2Csr(dir, r.key, undefined, null), 'CSR_SIGNATURE');
    await refuses(csr(dir, r.key), 'CSR_SIGNATURE'); // openssl's default digest with an SM2 key: not SM2-with-SM3
    const der = Buffer.from(pemToDer(r.csrPem, 'CERTIFICATE REQUEST'));
    der[der.indexOf(Buffer.from('NHSA'))] ^= 0x20; // the signed subject changed after signing
    await refuses(derToPem(der, 'CERTIFICATE REQUEST'), 'CSR_SIGNATURE');
    await refuses(sm2Csr(dir, r.key, '/C=CN/O=NHSA/CN=李四'), 'SUBJECT_MISMATCH');
    // An EC request is still the EC CA's (and an SM2 old certificate does not change that).
    const ec = newKey(dir, 'ec', 'ec');
    const oldEc = new crypto.X509Certificate(certFor(dir, ca.dir, ec)).raw;
    const got = await ca.issue({ csrPem: csr(dir, ec), oldCertDer: oldEc });
    assert.equal(got.sm2, false);
    assert.ok(new crypto.X509Certificate(got.pem).verify(new crypto.X509Certificate(ca.certPem).publicKey));
    // The right one still goes through after all that.
    assert.equal((await ca.issue({ csrPem: r.csrPem, oldCertDer: r.oldDer })).sm2, true);
});

/* ---------- the conversions ---------- */

test('SM2Cipher DER <-> parts: OpenSSL\'s own ciphertexts round-trip; short and 00-led INTEGERs; strictness', (t) => {
    const dir = tempDir(t);
    const key = newKey(dir, 'k', 'sm2');
    const pub = openssl(['pkey', '-in', key, '-pubout']);
    for (let i = 0; i < 8; i++) {
        const ct = execFileSync('openssl', ['pkeyutl', '-encrypt', '-pubin', '-inkey', write(dir, 'pub.pem', pub), '-in', write(dir, 'm', crypto.randomBytes(16))]);
        const p = kmcMod.sm2CipherFromDer(ct);
        assert.equal(p.x.length, 32);
        assert.equal(p.y.length, 32);
        assert.equal(p.cipher.length, 16);
        assert.ok(kmcMod.sm2CipherToDer(p).equals(ct), 'the same bytes back');
        assert.ok(testSm2Cipher(p.x, p.y, p.hash, p.cipher).equals(ct), 'and what an independent encoder makes');
    }
    // x with leading zero bytes (a 30-byte INTEGER) and y needing a 00 (top bit set).
    const x = Buffer.concat([Buffer.alloc(2), crypto.randomBytes(30)]);
    x[2] |= 0x01;
    x[2] &= 0x7f;
    const y = crypto.randomBytes(32);
    y[0] |= 0x80;
    const h = crypto.randomBytes(32);
    const der = testSm2Cipher(x, y, h, Buffer.from('abc'));
    assert.equal(der[3], 30, 'the encoder under test really got a short INTEGER');
    const p = kmcMod.sm2CipherFromDer(der);
    assert.ok(p.x.equals(x) && p.y.equals(y) && p.hash.equals(h) && p.cipher.equals(Buffer.from('abc')));
    assert.ok(kmcMod.sm2CipherToDer(p).equals(der));
    // Refused: trailing bytes, nothing, three fields, a 31-byte hash, a negative INTEGER, a
    // 33-byte magnitude, a non-minimal INTEGER.
    const tl = (tag, b) => Buffer.concat([Buffer.from([tag, b.length]), b]);
    const seq = (...xs) => tl(0x30, Buffer.concat(xs));
    const c2 = tl(0x04, Buffer.from('abc'));
    const hh = tl(0x04, h);
    const yi = tl(0x02, Buffer.concat([Buffer.from([0]), y]));
    const bad = [
        Buffer.concat([der, Buffer.from([0])]),
        Buffer.alloc(0),
        seq(tl(0x02, x.subarray(2)), yi, hh),
        seq(tl(0x02, x.subarray(2)), yi, tl(0x04, h.subarray(1)), c2),
        seq(tl(0x02, x.subarray(2)), tl(0x02, y), hh, c2), // y's top bit set, no 00: negative
        seq(tl(0x02, Buffer.concat([Buffer.from([1]), y])), yi, hh, c2),
        seq(tl(0x02, Buffer.concat([Buffer.from([0]), x.subarray(2)])), yi, hh, c2),
    ];
    assert.doesNotThrow(() => kmcMod.sm2CipherFromDer(seq(tl(0x02, x.subarray(2)), yi, hh, c2)), 'the pieces themselves are fine');
    for (const b of bad) assert.throws(() => kmcMod.sm2CipherFromDer(b), /./, b.toString('hex'));
});

test('blob layout: ECCPUBLICKEYBLOB, ECCCIPHERBLOB and ENVELOPEDKEYBLOB at the standard\'s offsets, 4- and 8-byte ULONG', () => {
    const x = crypto.randomBytes(32);
    const y = crypto.randomBytes(32);
    const hash = crypto.randomBytes(32);
    const c2 = crypto.randomBytes(16);
    const pub = kmcMod.eccPublicKeyBlob({ x, y });
    assert.equal(pub.length, 132);
    assert.equal(pub.readUInt32LE(0), 256);
    assert.ok(pub.subarray(4, 36).equals(Buffer.alloc(32)) && pub.subarray(36, 68).equals(x), 'X right-aligned');
    assert.ok(pub.subarray(100, 132).equals(y), 'Y right-aligned');
    const cb = kmcMod.eccCipherBlob({ x, y, hash, cipher: c2 });
    assert.equal(cb.length, 165 + 15);
    assert.ok(cb.subarray(32, 64).equals(x) && cb.subarray(96, 128).equals(y));
    assert.ok(cb.subarray(128, 160).equals(hash), 'HASH at 128');
    assert.equal(cb.readUInt32LE(160), 16, 'CipherLen at 160');
    assert.ok(cb.subarray(164).equals(c2), 'Cipher at 164');
    const encryptedPriKey = crypto.randomBytes(64);
    for (const U of [4, 8]) {
        const b = kmcMod.envelopedKeyBlob({ encryptedPriKey, pub: { x, y }, cipher: { x, y, hash, cipher: c2 } }, U);
        // sizeof(ENVELOPEDKEYBLOB) = 5U + 353 with Cipher[1]; with 16 cipher bytes 15 more.
        assert.equal(b.length, 5 * U + 353 + 15);
        const s = splitBlob(b, U);
        assert.deepEqual([s.version, s.alg, s.bits, s.pubBits, s.cipherLen], [1, 0x401, 256, 256, 16]);
        assert.ok(s.encPri.equals(encryptedPriKey) && s.pubX.subarray(32).equals(x) && s.c1y.subarray(32).equals(y));
        assert.ok(s.hash.equals(hash) && s.cipher.equals(c2));
    }
    assert.throws(() => kmcMod.fixed(Buffer.from([1, ...crypto.randomBytes(32)]), 32));
    assert.ok(kmcMod.fixed(Buffer.from([0, 0, 7]), 32).equals(Buffer.concat([Buffer.alloc(31), Buffer.from([7])])));
});

test('SM2 private keys: SEC 1 (openssl pkey) and PKCS#8 DER give what `openssl pkey -text` prints; other curves refused', (t) => {
    const dir = tempDir(t);
    const key = newKey(dir, 'k', 'sm2');
    const want = keyText(key);
    const sec1 = execFileSync('openssl', ['pkey', '-in', key, '-outform', 'DER']);
    const p8 = execFileSync('openssl', ['pkcs8', '-topk8', '-nocrypt', '-in', key, '-outform', 'DER']);
    for (const der of [sec1, p8]) {
        const k = kmcMod.sm2PrivateFromDer(der);
        assert.ok(k.d.equals(want.d));
        assert.ok(Buffer.concat([Buffer.from([4]), k.x, k.y]).equals(want.point));
    }
    const ec = execFileSync('openssl', ['pkey', '-in', newKey(dir, 'e', 'ec'), '-outform', 'DER']);
    assert.throws(() => kmcMod.sm2PrivateFromDer(ec), /not an SM2 key/);
});

/* ---------- the KMC ---------- */

async function dual(t, kmcOpts = {}) {
    const { dir, ca } = await setup(t, { days: 60 });
    const kmc = new TestKmc({ dir: path.join(dir, 'kmc'), ca, ...kmcOpts }).init();
    const r = sm2Renewal(dir, ca);
    const got = await kmc.issueDual({ csrPem: r.csrPem, oldCertDer: r.oldDer });
    const escrow = path.join(kmc.dir, 'escrow', `${got.encryption.serial}.key`);
    return { dir, ca, kmc, r, got, escrow };
}

test('KMC dual issue: an encryption certificate for a new escrowed key, same subject and validity, its own serial and profile', async (t) => {
    const { dir, ca, r, got, escrow } = await dual(t);
    const { signing, encryption } = got;
    assert.ok(verifies(dir, ca.sm2CertPem, signing.pem, true));
    assert.ok(verifies(dir, ca.sm2CertPem, encryption.pem, true), 'the encryption certificate: SM2 CA, the ID');
    assert.ok(!verifies(dir, ca.sm2CertPem, encryption.pem, false));
    assert.notEqual(encryption.serial, signing.serial);
    assert.match(ext(dir, encryption.pem, 'keyUsage'), /critical\n\s+Key Encipherment, Data Encipherment, Key Agreement\n/);
    assert.match(ext(dir, signing.pem, 'keyUsage'), /Digital Signature, Non Repudiation\n/);
    const s = parseCert(signing.der);
    const e = parseCert(encryption.der);
    assert.ok(e.subject.equals(s.subject) && e.subject.equals(parseCert(r.oldDer).subject), 'same subject, byte for byte');
    assert.ok(!e.spki.equals(s.spki), 'another key');
    assert.deepEqual([encryption.notBefore, encryption.notAfter], [signing.notBefore, signing.notAfter]);
    // The escrowed key is the certificate's (openssl compares, not kmc.js).
    assert.equal(fs.statSync(escrow).mode & 0o077, 0);
    assert.equal(openssl(['pkey', '-in', escrow, '-pubout']), pubOf(dir, encryption.pem));
    // Refusals of the CA are the KMC's too, and an EC request gets no dual pair.
    ca.refuse = true;
    await assert.rejects(new TestKmc({ dir: path.join(dir, 'kmc2'), ca }).init().issueDual({ csrPem: r.csrPem, oldCertDer: r.oldDer }), { code: 'CA_REFUSED' });
    ca.refuse = false;
    const ec = newKey(dir, 'ec', 'ec');
    await assert.rejects(
        new TestKmc({ dir: path.join(dir, 'kmc2'), ca }).init().issueDual({ csrPem: csr(dir, ec), oldCertDer: new crypto.X509Certificate(certFor(dir, ca.dir, ec)).raw }),
        /needs an SM2 request/,
    );
});

for (const form of ['whole', 'short']) {
    test(`ENVELOPEDKEYBLOB (${form} cbEncryptedPriKey) opens with the signing key to the escrowed private key`, async (t) => {
        const { dir, r, got, escrow } = await dual(t, { priKeyForm: form });
        const want = keyText(escrow);
        const b = splitBlob(got.blob);
        assert.equal(got.blob.length, 388);
        assert.deepEqual([b.version, b.alg, b.bits, b.pubBits, b.cipherLen], [1, 0x401, 256, 256, 16]);
        assert.ok(Buffer.concat([Buffer.from([4]), b.pubX.subarray(32), b.pubY.subarray(32)]).equals(want.point), 'PubKey is the escrowed key');
        for (const f of [b.pubX, b.pubY, b.c1x, b.c1y]) assert.ok(f.subarray(0, 32).equals(Buffer.alloc(32)), 'right-aligned');
        const sm4 = sm2Decrypt(dir, r.key, testSm2Cipher(b.c1x.subarray(32), b.c1y.subarray(32), b.hash, b.cipher));
        assert.equal(sm4.length, 16);
        let plain;
        if (form === 'whole') plain = sm4EcbDecrypt(sm4, b.encPri);
        else {
            assert.ok(b.encPri.subarray(0, 32).equals(Buffer.alloc(32)), 'short form: upper half zero');
            plain = Buffer.concat([Buffer.alloc(32), sm4EcbDecrypt(sm4, b.encPri.subarray(32))]);
        }
        assert.ok(plain.subarray(0, 32).equals(Buffer.alloc(32)));
        assert.ok(plain.subarray(32).equals(want.d), 'the private key');
        // Only the signing key opens it.
        assert.throws(() => sm2Decrypt(dir, newKey(dir, 'other', 'sm2'), testSm2Cipher(b.c1x.subarray(32), b.c1y.subarray(32), b.hash, b.cipher)));
    });
}

test('SM2EnvelopedKey (GM/T 0009) parses with openssl asn1parse and opens to the same private key', async (t) => {
    const { dir, r, got, escrow } = await dual(t);
    const want = keyText(escrow);
    const f = write(dir, 'env.der', got.asn1);
    const lines = openssl(['asn1parse', '-inform', 'DER', '-in', f]).trim().split('\n');
    const shape = lines.map((l) => l.replace(/^\s*\d+:d=(\d+)\s+hl=\d+ l=\s*(\d+) (prim|cons):\s*(\S+(?: STRING)?).*$/, '$1 $2 $4'));
    assert.deepEqual(shape, [
        `0 ${got.asn1.length - 3} SEQUENCE`,
        '1 9 SEQUENCE',
        '2 7 OBJECT',
        ...shape.slice(3, 4), // SM2Cipher: 120..122 bytes (INTEGERs with or without 00)
        ...shape.slice(4, 6),
        '2 32 OCTET STRING',
        '2 16 OCTET STRING',
        '1 66 BIT STRING',
        '1 33 BIT STRING',
    ]);
    assert.match(lines[2], /:1\.2\.156\.10197\.1\.104\s*$/, 'symAlgID: SM4');
    assert.match(shape[3], /^1 1[12]\d SEQUENCE$/);
    assert.match(shape[4], /^2 3[23] INTEGER$/);
    assert.match(shape[5], /^2 3[23] INTEGER$/);
    // symEncryptedKey is an SM2Cipher openssl decrypts as it stands.
    const off = Number(lines[3].trim().split(':')[0]);
    const hl = Number(/hl=(\d+)/.exec(lines[3])[1]);
    const len = Number(/ l=\s*(\d+)/.exec(lines[3])[1]); // not "hl="
    const sm4 = sm2Decrypt(dir, r.key, got.asn1.subarray(off, off + hl + len));
    // sm2PublicKey: 04 || x || y of the escrowed key; sm2EncryptedPrivateKey: SM4-ECB of d.
    const tail = got.asn1.subarray(off + hl + len);
    assert.equal(tail[0], 0x03);
    assert.ok(tail.subarray(3, 68).equals(want.point));
    assert.equal(tail[3 + 65], 0x03);
    assert.ok(sm4EcbDecrypt(sm4, tail.subarray(71, 103)).equals(want.d));
    // The blob and the ASN.1 carry the same wrapped SM4 key.
    const b = splitBlob(got.blob);
    assert.ok(sm2Decrypt(dir, r.key, testSm2Cipher(b.c1x.subarray(32), b.c1y.subarray(32), b.hash, b.cipher)).equals(sm4));
    // The ECB arc instead when asked.
    const alt = await dual(t, { sm4Oid: kmcMod.OID_SM4_ECB });
    assert.match(openssl(['asn1parse', '-inform', 'DER', '-in', write(dir, 'alt.der', alt.got.asn1)]), /OBJECT\s+:sm4-ecb\s*\n/, "1.2.156.10197.1.104.1 is OpenSSL's sm4-ecb");
});

/* ---------- against the soft SKF module ---------- */

const SKF = {
    module: process.env.UKSKF_MODULE,
    module64: process.env.UKSKF_MODULE64,
    tool: process.env.UKSKF_TOOL,
    import: process.env.PORTAL_SKF_IMPORT,
    import64: process.env.PORTAL_SKF_IMPORT64,
};
const noSkf = !(SKF.module && SKF.module64 && SKF.tool && SKF.import && SKF.import64) && 'the soft SKF module is not built (run under ctest)';

// A soft SKF token holding the renewal's new signing key and certificate in container "sig".
function skfToken(dir, keyFile, certPem) {
    const d = path.join(dir, `skf-${Math.random().toString(36).slice(2)}`);
    fs.mkdirSync(d);
    execFileSync(SKF.tool, ['provision', '--dir', d, '--device', 'ukey0', '--container', 'sig', '--key', keyFile, '--cert', write(dir, 'sig.pem', certPem)]);
    return d;
}

function skfImport(dir, token, blob, wide = false) {
    const r = spawnSync(wide ? SKF.import64 : SKF.import, [wide ? SKF.module64 : SKF.module, 'ukey0', 'ukeyd', 'sig', '123456', write(dir, 'blob.bin', blob)], {
        env: { ...process.env, UKSKF_DIR: token },
        encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const m = /^import 0x([0-9a-f]{8})$/m.exec(r.stdout);
    const pub = /^enc-pub ([0-9a-f]{64}) ([0-9a-f]{64})$/m.exec(r.stdout);
    return { sar: parseInt(m[1], 16), point: pub ? Buffer.from(`04${pub[1]}${pub[2]}`, 'hex') : null };
}

for (const [form, wide] of [['whole', false], ['short', false], ['whole', true]]) {
    test(`soft SKF module: SKF_ImportECCKeyPair takes the KMC's blob (${form}, ${wide ? 8 : 4}-byte ULONG)`, { skip: noSkf }, async (t) => {
        const { dir, r, got, escrow } = await dual(t, { priKeyForm: form, ulongBytes: wide ? 8 : 4 });
        const token = skfToken(dir, r.key, got.signing.pem);
        const res = skfImport(dir, token, got.blob, wide);
        assert.equal(res.sar, SAR_OK);
        assert.ok(res.point.equals(keyText(escrow).point), 'the module holds the escrowed key as the encryption key');
    });
}

test('soft SKF module refuses corrupted blobs and a blob for another key', { skip: noSkf }, async (t) => {
    const { dir, ca, r, got, kmc } = await dual(t);
    const token = skfToken(dir, r.key, got.signing.pem);
    const s = splitBlob(got.blob);
    const cbOff = 3 * 4 + 64 + 132;
    const cases = [
        ['C2 (the wrapped SM4 key)', s.cipherOff + 3, SAR_INDATAERR],
        ['C3 (HASH)', cbOff + 128, SAR_INDATAERR],
        ['C1 (off the curve)', cbOff + 63, SAR_INDATAERR],
        ['cbEncryptedPriKey', 12 + 40, SAR_INDATAERR],
        ['PubKey', 12 + 64 + 4 + 127, SAR_INDATAERR],
        ['ulSymmAlgID (SM4-ECB -> SM4-CBC)', 4, SAR_INVALIDPARAMERR],
    ];
    for (const [what, off, sar] of cases) {
        const b = Buffer.from(got.blob);
        b[off] ^= off === 4 ? 0x03 : 0x01;
        assert.equal(skfImport(dir, token, b).sar, sar, what);
    }
    // Sealed to another signing key.
    const other = sm2Renewal(dir, ca);
    const foreign = await kmc.issueDual({ csrPem: other.csrPem, oldCertDer: other.oldDer });
    assert.equal(skfImport(dir, token, foreign.blob).sar, SAR_INDATAERR);
    // And the untouched one goes in after all that.
    assert.equal(skfImport(dir, token, got.blob).sar, SAR_OK);
});

/* ---------- the portal's renewal flow ---------- */

function request(port, method, p, body, headers = {}) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
        const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: { ...(data ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
            const parts = [];
            res.on('data', (d) => parts.push(d));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, json: JSON.parse(Buffer.concat(parts).toString('utf8') || 'null') }));
        });
        req.on('error', reject);
        if (data) req.write(data);
        req.end();
    });
}

test('portal test mode: /test/ca {dual: true} makes an SM2 renewal answer the encryption certificate and both envelopes', async (t) => {
    const { Portal, DEMO } = require(path.join(PORTAL, 'server.js'));
    const dir = tempDir(t);
    const portal = new Portal({ dataDir: path.join(dir, 'data'), port: 0, testMode: true, log: () => {} });
    await portal.init();
    await portal.listen();
    t.after(() => portal.close());
    const port = portal.port;
    const origin = `http://127.0.0.1:${port}`;
    const card = '20304050';
    const oldPem = certFor(dir, portal.ca.dir, newKey(dir, 'old', 'sm2'), { sm2: true, fromDays: -345, toDays: 20 });
    portal.store.enroll(card, '9a', oldPem, DEMO.account);
    const login = await request(port, 'POST', '/api/login', { account: DEMO.account, password: DEMO.password }, { origin });
    const h = { cookie: login.headers['set-cookie'][0].split(';')[0], 'x-csrf-token': login.json.csrf, origin };
    const post = (p, b) => request(port, 'POST', p, b, h);

    assert.equal((await request(port, 'POST', '/test/ca', { dual: 'yes' })).status, 400);
    const sw = await request(port, 'POST', '/test/ca', { dual: true });
    assert.equal(sw.json.dual, true);

    let activePem = oldPem;
    const renew = async (csrPem) => {
        const fp = new crypto.X509Certificate(activePem).fingerprint256.replace(/:/g, '').toLowerCase();
        const flow = (await post('/api/renewal/start', { card, slot: '9a', mode: 'extend', fingerprint: fp })).json.flow;
        await post('/api/renewal/sms', { flow });
        await post('/api/renewal/verify-sms', { flow, code: (await request(port, 'GET', `/test/sms-code?card=${card}`)).json.code });
        const c = await post('/api/renewal/csr', { flow, renewal_id: 'r1', csr_pem: csrPem });
        assert.equal(c.json.accepted, true, JSON.stringify(c.json));
        return { flow, issued: await post('/api/renewal/issue', { flow }) };
    };
    const key = newKey(dir, 'new', 'sm2');
    const { flow, issued } = await renew(sm2Csr(dir, key));
    assert.equal(issued.status, 200, JSON.stringify(issued.json));
    const j = issued.json;
    assert.ok(verifies(dir, portal.ca.sm2CertPem, j.certificate, true));
    assert.ok(verifies(dir, portal.ca.sm2CertPem, j.encryption_certificate, true));
    assert.match(ext(dir, j.encryption_certificate, 'keyUsage'), /Key Encipherment/);
    const blob = Buffer.from(j.enveloped_key.skf_blob, 'base64');
    const asn1 = Buffer.from(j.enveloped_key.sm2_enveloped_key, 'base64');
    const b = splitBlob(blob);
    const sm4 = sm2Decrypt(dir, key, testSm2Cipher(b.c1x.subarray(32), b.c1y.subarray(32), b.hash, b.cipher));
    const d = sm4EcbDecrypt(sm4, b.encPri).subarray(32);
    const escrow = path.join(portal.kmc.dir, 'escrow', `${new crypto.X509Certificate(j.encryption_certificate).serialNumber.toLowerCase()}.key`);
    assert.ok(d.equals(keyText(escrow).d));
    assert.equal(asn1[0], 0x30);
    // Asking again answers the same issue (the page may retry after a pulled key).
    assert.deepEqual((await post('/api/renewal/issue', { flow })).json, j);
    // The records follow the signing certificate.
    assert.equal((await post('/api/renewal/complete', { flow, state: 'done' })).json.certificate.serial, new crypto.X509Certificate(j.certificate).serialNumber.toLowerCase());
    activePem = j.certificate;

    // Switched off: an SM2 request gets its signing certificate alone.
    await request(port, 'POST', '/test/ca', { dual: false });
    const { issued: single } = await renew(sm2Csr(dir, newKey(dir, 'n2', 'sm2')));
    assert.ok(single.json.certificate);
    assert.equal(single.json.encryption_certificate, undefined);
    assert.equal(single.json.enveloped_key, undefined);
});
