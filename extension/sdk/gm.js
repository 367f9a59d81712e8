// gm.js — the Chinese commercial algorithms that sof.js needs in the page to make a GM/T 0010
// envelope for an SM2 certificate (SOF_EncryptData), in plain JavaScript because WebCrypto has
// none of them:
//
//   sm3(bytes)                       SM3 hash, GM/T 0004-2012 (32 bytes)
//   sm4CbcEncrypt(key, iv, bytes)    SM4 block cipher, GM/T 0002-2012, CBC with PKCS#7 padding
//   sm2Encrypt(point, bytes)         SM2 public-key encryption, GM/T 0003.4-2012 → {c1, c3, c2}
//   sm2CipherDer({c1, c3, c2})       the GM/T 0009 SM2Cipher DER of a ciphertext
//
// Only what needs no secret of the key's owner is here (no decryption, no signatures). Correctness
// and readability over speed; BigInt arithmetic is not constant-time, which the browser's own
// timing noise does not make up for: the ephemeral k of one envelope could in principle leak to
// a script measuring the page while it encrypts. No dependencies, like ukey.js and sof.js.

/* ---------- SM3 (GM/T 0004-2012) ---------- */

const rotl = (x, n) => ((x << (n & 31)) | (x >>> ((32 - n) & 31))) >>> 0;
const P0 = (x) => (x ^ rotl(x, 9) ^ rotl(x, 17)) >>> 0;
const P1 = (x) => (x ^ rotl(x, 15) ^ rotl(x, 23)) >>> 0;
const SM3_IV = [0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e];

/** SM3 of bytes (Uint8Array): 32 bytes. */
export function sm3(msg) {
    // Padding: 0x80, zeros to 56 mod 64, the length in bits as a 64-bit big-endian number.
    const len = msg.length;
    const padded = new Uint8Array(Math.ceil((len + 9) / 64) * 64);
    padded.set(msg);
    padded[len] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(len / 0x20000000));
    view.setUint32(padded.length - 4, (len * 8) >>> 0);
    const v = SM3_IV.slice();
    const w = new Uint32Array(68);
    const w1 = new Uint32Array(64);
    for (let off = 0; off < padded.length; off += 64) {
        for (let j = 0; j < 16; j++) w[j] = view.getUint32(off + 4 * j);
        for (let j = 16; j < 68; j++) w[j] = P1(w[j - 16] ^ w[j - 9] ^ rotl(w[j - 3], 15)) ^ rotl(w[j - 13], 7) ^ w[j - 6];
        for (let j = 0; j < 64; j++) w1[j] = w[j] ^ w[j + 4];
        let [a, b, c, d, e, f, g, h] = v;
        for (let j = 0; j < 64; j++) {
            const t = j < 16 ? 0x79cc4519 : 0x7a879d8a;
            const ss1 = rotl((rotl(a, 12) + e + rotl(t, j % 32)) >>> 0, 7);
            const ss2 = (ss1 ^ rotl(a, 12)) >>> 0;
            const ff = j < 16 ? a ^ b ^ c : (a & b) | (a & c) | (b & c);
            const gg = j < 16 ? e ^ f ^ g : (e & f) | (~e & g);
            const tt1 = ((ff >>> 0) + d + ss2 + w1[j]) >>> 0;
            const tt2 = ((gg >>> 0) + h + ss1 + w[j]) >>> 0;
            d = c;
            c = rotl(b, 9);
            b = a;
            a = tt1;
            h = g;
            g = rotl(f, 19);
            f = e;
            e = P0(tt2);
        }
        [a, b, c, d, e, f, g, h].forEach((x, i) => (v[i] = (v[i] ^ x) >>> 0));
    }
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    v.forEach((x, i) => ov.setUint32(4 * i, x));
    return out;
}

/* ---------- SM4 (GM/T 0002-2012) ---------- */

const SBOX = Uint8Array.from([
    0xd6, 0x90, 0xe9, 0xfe, 0xcc, 0xe1, 0x3d, 0xb7, 0x16, 0xb6, 0x14, 0xc2, 0x28, 0xfb, 0x2c, 0x05,
    0x2b, 0x67, 0x9a, 0x76, 0x2a, 0xbe, 0x04, 0xc3, 0xaa, 0x44, 0x13, 0x26, 0x49, 0x86, 0x06, 0x99,
    0x9c, 0x42, 0x50, 0xf4, 0x91, 0xef, 0x98, 0x7a, 0x33, 0x54, 0x0b, 0x43, 0xed, 0xcf, 0xac, 0x62,
    0xe4, 0xb3, 0x1c, 0xa9, 0xc9, 0x08, 0xe8, 0x95, 0x80, 0xdf, 0x94, 0xfa, 0x75, 0x8f, 0x3f, 0xa6,
    0x47, 0x07, 0xa7, 0xfc, 0xf3, 0x73, 0x17, 0xba, 0x83, 0x59, 0x3c, 0x19, 0xe6, 0x85, 0x4f, 0xa8,
    0x68, 0x6b, 0x81, 0xb2, 0x71, 0x64, 0xda, 0x8b, 0xf8, 0xeb, 0x0f, 0x4b, 0x70, 0x56, 0x9d, 0x35,
    0x1e, 0x24, 0x0e, 0x5e, 0x63, 0x58, 0xd1, 0xa2, 0x25, 0x22, 0x7c, 0x3b, 0x01, 0x21, 0x78, 0x87,
    0xd4, 0x00, 0x46, 0x57, 0x9f, 0xd3, 0x27, 0x52, 0x4c, 0x36, 0x02, 0xe7, 0xa0, 0xc4, 0xc8, 0x9e,
    0xea, 0xbf, 0x8a, 0xd2, 0x40, 0xc7, 0x38, 0xb5, 0xa3, 0xf7, 0xf2, 0xce, 0xf9, 0x61, 0x15, 0xa1,
    0xe0, 0xae, 0x5d, 0xa4, 0x9b, 0x34, 0x1a, 0x55, 0xad, 0x93, 0x32, 0x30, 0xf5, 0x8c, 0xb1, 0xe3,
    0x1d, 0xf6, 0xe2, 0x2e, 0x82, 0x66, 0xca, 0x60, 0xc0, 0x29, 0x23, 0xab, 0x0d, 0x53, 0x4e, 0x6f,
    0xd5, 0xdb, 0x37, 0x45, 0xde, 0xfd, 0x8e, 0x2f, 0x03, 0xff, 0x6a, 0x72, 0x6d, 0x6c, 0x5b, 0x51,
    0x8d, 0x1b, 0xaf, 0x92, 0xbb, 0xdd, 0xbc, 0x7f, 0x11, 0xd9, 0x5c, 0x41, 0x1f, 0x10, 0x5a, 0xd8,
    0x0a, 0xc1, 0x31, 0x88, 0xa5, 0xcd, 0x7b, 0xbd, 0x2d, 0x74, 0xd0, 0x12, 0xb8, 0xe5, 0xb4, 0xb0,
    0x89, 0x69, 0x97, 0x4a, 0x0c, 0x96, 0x77, 0x7e, 0x65, 0xb9, 0xf1, 0x09, 0xc5, 0x6e, 0xc6, 0x84,
    0x18, 0xf0, 0x7d, 0xec, 0x3a, 0xdc, 0x4d, 0x20, 0x79, 0xee, 0x5f, 0x3e, 0xd7, 0xcb, 0x39, 0x48,
]);
const FK = [0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc];
// CK_i = (ck_i,0, ck_i,1, ck_i,2, ck_i,3), ck_i,j = (4i + j) · 7 mod 256.
const CK = Array.from({ length: 32 }, (_, i) => [0, 1, 2, 3].reduce((x, j) => ((x << 8) | (((4 * i + j) * 7) & 0xff)) >>> 0, 0));
// τ: the S-box on each byte.
const tau = (x) => ((SBOX[x >>> 24] << 24) | (SBOX[(x >>> 16) & 0xff] << 16) | (SBOX[(x >>> 8) & 0xff] << 8) | SBOX[x & 0xff]) >>> 0;
const T = (x) => { const b = tau(x); return (b ^ rotl(b, 2) ^ rotl(b, 10) ^ rotl(b, 18) ^ rotl(b, 24)) >>> 0; };
const Tk = (x) => { const b = tau(x); return (b ^ rotl(b, 13) ^ rotl(b, 23)) >>> 0; };

// The 32 round keys of a 16-byte key.
function sm4RoundKeys(key) {
    if (!(key instanceof Uint8Array) || key.length !== 16) throw new RangeError('SM4 keys are 16 bytes');
    const kv = new DataView(key.buffer, key.byteOffset, 16);
    const k = [0, 1, 2, 3].map((i) => (kv.getUint32(4 * i) ^ FK[i]) >>> 0);
    const rk = new Uint32Array(32);
    for (let i = 0; i < 32; i++) {
        rk[i] = (k[i] ^ Tk((k[i + 1] ^ k[i + 2] ^ k[i + 3] ^ CK[i]) >>> 0)) >>> 0;
        k.push(rk[i]);
    }
    return rk;
}

// One block (16 bytes at off in buf) encrypted in place.
function sm4Block(rk, buf, off) {
    const v = new DataView(buf.buffer, buf.byteOffset + off, 16);
    const x = [0, 1, 2, 3].map((i) => v.getUint32(4 * i));
    for (let i = 0; i < 32; i++) x.push((x[i] ^ T((x[i + 1] ^ x[i + 2] ^ x[i + 3] ^ rk[i]) >>> 0)) >>> 0);
    for (let i = 0; i < 4; i++) v.setUint32(4 * i, x[35 - i]); // R: (X35, X34, X33, X32)
}

/** SM4-CBC with PKCS#7 padding: key and iv 16 bytes; the ciphertext (a multiple of 16 bytes, one block more when the data is). */
export function sm4CbcEncrypt(key, iv, data) {
    const rk = sm4RoundKeys(key);
    if (!(iv instanceof Uint8Array) || iv.length !== 16) throw new RangeError('the SM4-CBC IV is 16 bytes');
    const pad = 16 - (data.length % 16);
    const out = new Uint8Array(data.length + pad);
    out.set(data);
    out.fill(pad, data.length);
    let prev = iv;
    for (let off = 0; off < out.length; off += 16) {
        for (let i = 0; i < 16; i++) out[off + i] ^= prev[i];
        sm4Block(rk, out, off);
        prev = out.subarray(off, off + 16);
    }
    return out;
}

/* ---------- SM2 encryption (GM/T 0003.4-2012) ---------- */

// sm2p256v1 (GM/T 0003.5), as `openssl ecparam -name SM2 -param_enc explicit -text` prints it.
export const SM2_CURVE = Object.freeze({
    p: 0xfffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffffn,
    a: 0xfffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffcn,
    b: 0x28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93n,
    n: 0xfffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123n,
    gx: 0x32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7n,
    gy: 0xbc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0n,
});
const { p: P, a: A, b: B, n: N } = SM2_CURVE;

const mod = (x) => { const r = x % P; return r < 0n ? r + P : r; };

function inv(x) {
    // Extended Euclid; x is non-zero mod p.
    let [r0, r1, t0, t1] = [mod(x), P, 1n, 0n];
    while (r1 !== 0n) {
        const q = r0 / r1;
        [r0, r1] = [r1, r0 - q * r1];
        [t0, t1] = [t1, t0 - q * t1];
    }
    return mod(t0);
}

const bytesToBig = (b) => b.reduce((x, v) => (x << 8n) | BigInt(v), 0n);
function bigToBytes(x, len) {
    const out = new Uint8Array(len);
    for (let i = len - 1; i >= 0; i--, x >>= 8n) out[i] = Number(x & 0xffn);
    return out;
}

const onCurve = (x, y) => mod(y * y - (x * x * x + A * x + B)) === 0n;

// Jacobian points [X, Y, Z] (x = X/Z², y = Y/Z³); Z = 0 is the point at infinity.
const INF = [1n, 1n, 0n];

function dbl([x1, y1, z1]) {
    if (z1 === 0n || y1 === 0n) return INF;
    const yy = mod(y1 * y1);
    const zz = mod(z1 * z1);
    const s = mod(4n * x1 * yy);
    const m = mod(3n * x1 * x1 + A * zz * zz);
    const x3 = mod(m * m - 2n * s);
    return [x3, mod(m * (s - x3) - 8n * yy * yy), mod(2n * y1 * z1)];
}

function add(p1, p2) {
    if (p1[2] === 0n) return p2;
    if (p2[2] === 0n) return p1;
    const [x1, y1, z1] = p1;
    const [x2, y2, z2] = p2;
    const z1z1 = mod(z1 * z1);
    const z2z2 = mod(z2 * z2);
    const u1 = mod(x1 * z2z2);
    const u2 = mod(x2 * z1z1);
    const s1 = mod(y1 * z2 * z2z2);
    const s2 = mod(y2 * z1 * z1z1);
    const h = mod(u2 - u1);
    const r = mod(s2 - s1);
    if (h === 0n) return r === 0n ? dbl(p1) : INF;
    const hh = mod(h * h);
    const hhh = mod(h * hh);
    const v = mod(u1 * hh);
    const x3 = mod(r * r - hhh - 2n * v);
    return [x3, mod(r * (v - x3) - s1 * hhh), mod(z1 * z2 * h)];
}

// k·(x, y) in affine coordinates, or null for the point at infinity.
function mul(k, x, y) {
    let r = INF;
    const pt = [x, y, 1n];
    for (let i = BigInt(k.toString(2).length - 1); i >= 0n; i--) {
        r = dbl(r);
        if ((k >> i) & 1n) r = add(r, pt);
    }
    if (r[2] === 0n) return null;
    const zi = inv(r[2]);
    const zi2 = mod(zi * zi);
    return [mod(r[0] * zi2), mod(r[1] * zi2 * zi)];
}

// The recipient's point from its encoding (04 || x || y, or compressed 02/03 || x), checked:
// coordinates below p, on the curve (so, h being 1, of order n and not infinity).
function decodePoint(pt) {
    if (!(pt instanceof Uint8Array)) throw new TypeError('the SM2 public key is a Uint8Array');
    let x;
    let y;
    if (pt.length === 65 && pt[0] === 4) {
        x = bytesToBig(pt.subarray(1, 33));
        y = bytesToBig(pt.subarray(33));
    } else if (pt.length === 33 && (pt[0] === 2 || pt[0] === 3)) {
        x = bytesToBig(pt.subarray(1));
        // p ≡ 3 (mod 4): the square root is a power.
        const rhs = mod(x * x * x + A * x + B);
        let r = 1n;
        for (let b = rhs, e = (P + 1n) / 4n; e > 0n; e >>= 1n, b = mod(b * b)) if (e & 1n) r = mod(r * b);
        y = (r & 1n) === BigInt(pt[0] & 1) ? r : mod(-r);
    } else {
        throw new RangeError('not an SM2 public key point');
    }
    if (x >= P || y >= P || !onCurve(x, y)) throw new RangeError('the SM2 public key is not a point of the curve');
    return [x, y];
}

// The standard's KDF (GM/T 0003.4 5.4.3): SM3(Z || ct) for ct = 1, 2, … (32-bit big-endian), klen bytes.
function kdf(z, klen) {
    const out = new Uint8Array(klen);
    const buf = new Uint8Array(z.length + 4);
    buf.set(z);
    const view = new DataView(buf.buffer);
    for (let ct = 1, off = 0; off < klen; ct++, off += 32) {
        view.setUint32(z.length, ct);
        out.set(sm3(buf).subarray(0, Math.min(32, klen - off)), off);
    }
    return out;
}

// k uniform in [1, n-1]: 32 random bytes, drawn again when out of range (no modulo bias).
function randomScalar() {
    const b = new Uint8Array(32);
    for (;;) {
        globalThis.crypto.getRandomValues(b);
        const k = bytesToBig(b);
        if (k > 0n && k < N) return k;
    }
}

/**
 * SM2 encryption of msg (Uint8Array, not empty) to the public key point (65 bytes 04 || x || y,
 * or 33 compressed), GM/T 0003.4-2012 6.1. Returns { c1 (65 bytes, 04 || x1 || y1), c3 (32 bytes,
 * SM3(x2 || M || y2)), c2 (M xor t) }. Throws RangeError for a point not on the curve.
 */
export function sm2Encrypt(point, msg) {
    const [px, py] = decodePoint(point);
    if (!(msg instanceof Uint8Array) || !msg.length) throw new RangeError('SM2 encrypts 1 byte or more');
    for (;;) {
        const k = randomScalar();
        const c1 = mul(k, SM2_CURVE.gx, SM2_CURVE.gy);
        const s = mul(k, px, py);
        if (!c1 || !s) continue; // cannot happen for k in [1, n-1] and a point of order n
        const x2 = bigToBytes(s[0], 32);
        const y2 = bigToBytes(s[1], 32);
        const t = kdf(new Uint8Array([...x2, ...y2]), msg.length);
        if (t.every((v) => v === 0)) continue;
        const c2 = msg.map((v, i) => v ^ t[i]);
        const c3 = sm3(new Uint8Array([...x2, ...msg, ...y2]));
        return { c1: new Uint8Array([4, ...bigToBytes(c1[0], 32), ...bigToBytes(c1[1], 32)]), c3, c2 };
    }
}

// DER: a TLV, and a non-negative INTEGER from its big-endian bytes.
function tlv(tag, body) {
    const n = body.length;
    const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
    return new Uint8Array([tag, ...len, ...body]);
}
function uint(b) {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    return tlv(0x02, v[0] & 0x80 ? [0, ...v] : v);
}

/** GM/T 0009 SM2Cipher ::= SEQUENCE { xCoordinate INTEGER, yCoordinate INTEGER, hash OCTET STRING, cipherText OCTET STRING } of sm2Encrypt's result. */
export function sm2CipherDer({ c1, c3, c2 }) {
    return tlv(0x30, [...uint(c1.subarray(1, 33)), ...uint(c1.subarray(33, 65)), ...tlv(0x04, c3), ...tlv(0x04, c2)]);
}
