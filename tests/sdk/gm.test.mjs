// extension/sdk/gm.js (SM3, SM4-CBC, SM2 encryption in the page) against the standards' vectors,
// node:crypto's SM3 and SM4-CBC, and `openssl pkeyutl -decrypt` for SM2 (OpenSSL 3.0 reads the
// GM/T 0009 SM2Cipher DER).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sm3, sm4CbcEncrypt, sm2Encrypt, sm2CipherDer, SM2_CURVE } from '../../extension/sdk/gm.js';

if (!globalThis.crypto) globalThis.crypto = crypto.webcrypto;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uk-gm-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const f = (name) => path.join(dir, name);
const hex = (b) => Buffer.from(b).toString('hex');
const u8 = (b) => new Uint8Array(b);

test('SM3: GM/T 0004 vectors and node:crypto on inputs of 0..200 bytes', () => {
    assert.equal(hex(sm3(new TextEncoder().encode('abc'))), '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
    assert.equal(hex(sm3(new TextEncoder().encode('abcd'.repeat(16)))), 'debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732');
    for (let n = 0; n <= 200; n++) {
        const m = crypto.randomBytes(n);
        assert.equal(hex(sm3(u8(m))), crypto.createHash('sm3').update(m).digest('hex'), `length ${n}`);
    }
    const big = crypto.randomBytes(100000);
    assert.equal(hex(sm3(u8(big))), crypto.createHash('sm3').update(big).digest('hex'));
    // A view into a larger buffer hashes only its own bytes.
    const buf = u8(crypto.randomBytes(50));
    assert.equal(hex(sm3(buf.subarray(5, 40))), crypto.createHash('sm3').update(buf.subarray(5, 40)).digest('hex'));
});

test('SM4: GM/T 0002 vector and CBC with PKCS#7 padding as node:crypto sm4-cbc', () => {
    const k = u8(Buffer.from('0123456789abcdeffedcba9876543210', 'hex'));
    // One block with a zero IV is the plain block cipher; the padding block follows.
    assert.equal(hex(sm4CbcEncrypt(k, new Uint8Array(16), k).subarray(0, 16)), '681edf34d206965e86b3e94f536e4246');
    for (let n = 0; n <= 100; n++) {
        const key = crypto.randomBytes(16);
        const iv = crypto.randomBytes(16);
        const m = crypto.randomBytes(n);
        const c = crypto.createCipheriv('sm4-cbc', key, iv);
        const want = Buffer.concat([c.update(m), c.final()]);
        assert.equal(hex(sm4CbcEncrypt(u8(key), u8(iv), u8(m))), hex(want), `length ${n}`);
    }
    assert.throws(() => sm4CbcEncrypt(new Uint8Array(15), new Uint8Array(16), new Uint8Array(1)), RangeError);
    assert.throws(() => sm4CbcEncrypt(new Uint8Array(16), new Uint8Array(8), new Uint8Array(1)), RangeError);
});

test('SM2 encryption: openssl pkeyutl -decrypt gives the message back; points off the curve refused', () => {
    execFileSync('openssl', ['genpkey', '-algorithm', 'SM2', '-out', f('key.pem')]);
    const spki = crypto.createPublicKey(fs.readFileSync(f('key.pem'))).export({ type: 'spki', format: 'der' });
    const point = u8(spki.subarray(spki.length - 65));
    assert.equal(point[0], 4);
    const decrypt = (der) => {
        fs.writeFileSync(f('c.der'), der);
        return execFileSync('openssl', ['pkeyutl', '-decrypt', '-inkey', f('key.pem'), '-in', f('c.der')]);
    };
    for (const n of [1, 15, 16, 31, 32, 33, 64, 100, 257]) {
        const m = crypto.randomBytes(n);
        const c = sm2Encrypt(point, u8(m));
        assert.equal(c.c1.length, 65);
        assert.equal(c.c3.length, 32);
        assert.equal(c.c2.length, n);
        assert.deepEqual(decrypt(sm2CipherDer(c)), m, `length ${n}`);
    }
    // Two encryptions of the same message differ (a fresh k each time).
    const m = u8(crypto.randomBytes(16));
    assert.notEqual(hex(sm2CipherDer(sm2Encrypt(point, m))), hex(sm2CipherDer(sm2Encrypt(point, m))));
    // The compressed form of the same point works too.
    const y = BigInt('0x' + hex(point.subarray(33)));
    const compressed = Uint8Array.from([y & 1n ? 3 : 2, ...point.subarray(1, 33)]);
    assert.deepEqual(decrypt(sm2CipherDer(sm2Encrypt(compressed, m))), Buffer.from(m));
    // Refused: y changed (off the curve), x = p, wrong lengths and prefixes, an empty message.
    const bad = Uint8Array.from(point);
    bad[64] ^= 1;
    assert.throws(() => sm2Encrypt(bad, m), RangeError);
    const xp = Uint8Array.from([4, ...Buffer.from(SM2_CURVE.p.toString(16), 'hex'), ...point.subarray(33)]);
    assert.throws(() => sm2Encrypt(xp, m), RangeError);
    assert.throws(() => sm2Encrypt(new Uint8Array(65), m), RangeError); // 00…: not a point encoding
    assert.throws(() => sm2Encrypt(Uint8Array.from([4, ...new Uint8Array(64)]), m), RangeError); // (0, 0) is not on the curve
    assert.throws(() => sm2Encrypt(point.subarray(0, 64), m), RangeError);
    assert.throws(() => sm2Encrypt(point, new Uint8Array(0)), RangeError);
    // The generator is on the curve (the parameters are consistent).
    const { p, a, b, gx, gy } = SM2_CURVE;
    assert.equal((gy * gy - (gx * gx * gx + a * gx + b)) % p, 0n);
});
