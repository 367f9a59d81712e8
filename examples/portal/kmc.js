'use strict';
// The demo portal's test KMC (key-management centre) for SM2 dual certificates.
//
// A Chinese CA issues two certificates to an SM2 key: a signing one for the key pair the key made
// itself (the request), and an encryption one whose key pair the KMC makes, keeps in escrow, and
// sends to the key wrapped so that only the new signing key can open it: the private key encrypted
// with a fresh SM4 key (ECB), the SM4 key SM2-encrypted to the signing public key. Two forms of
// that envelope exist and ukeyd's SKF driver must take both:
//
//  - GM/T 0016 ENVELOPEDKEYBLOB, the C structure SKF_ImportECCKeyPair takes (pack(1), ULONG
//    little-endian, 4 bytes by default; see daemon/token/skf/uk_skf_abi.h):
//      Version = 1, ulSymmAlgID = SGD_SM4_ECB (0x401), ulBits = 256,
//      cbEncryptedPriKey[64]   the 64-byte right-aligned private key field, SM4-ECB-encrypted
//                              whole ('whole', the default) or only its 32 significant bytes,
//                              right-aligned with zero bytes before ('short'); tests/skf's soft
//                              module takes both, vendors differ,
//      PubKey                  ECCPUBLICKEYBLOB of the wrapped pair (BitLen 256, X[64], Y[64]),
//      ECCCipherBlob           the SM2 ciphertext of the SM4 key: C1's X[64], Y[64], HASH (C3,
//                              32 bytes), CipherLen = 16, Cipher (C2, 16 bytes);
//  - GM/T 0009 SM2EnvelopedKey (DER):
//      SEQUENCE { symAlgID AlgorithmIdentifier (SM4, no parameters),
//                 symEncryptedKey SM2Cipher (SEQUENCE { INTEGER x, INTEGER y,
//                                            OCTET STRING hash, OCTET STRING ciphertext }),
//                 sm2PublicKey BIT STRING (04 || x || y),
//                 sm2EncryptedPrivateKey BIT STRING (SM4-ECB of the 32-byte private key) }.
//
// OpenSSL's SM2 encryption (`openssl pkeyutl -encrypt`) writes exactly GM/T 0009's SM2Cipher
// (C1 as two INTEGERs, then C3, then C2), so the blob's fields are that DER taken apart
// (sm2CipherFromDer) and the ASN.1 form is those fields put back (sm2CipherToDer). node:crypto has
// SM4 (sm4-ecb) but no SM2 encryption and, in Node 18/20, cannot even export an SM2 key OpenSSL
// made (KeyObject.export aborts the process), so keys go through the `openssl` command line and
// their DER is read here.
//
// Escrow: DIR/escrow/SERIAL.key (0600), the encryption private key by its certificate's serial,
// as a KMC keeps it for recovery. It is a test KMC: nothing there is protected beyond file modes.

const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { tlv, children, oid, bitString, spkiKey, spkiPoint, parseCsr, parseCert, pemToDer, derToPem, encSeq, encUint, encOctets, encBits, encOid, DerError } = require('./der');

const SGD_SM4_ECB = 0x00000401;
const ENVELOPED_KEY_VERSION = 1;
// SM4 as GM/T 0006 names it (what GM/T 0009's example of symAlgID uses); some CAs write the ECB
// arc 1.2.156.10197.1.104.1 instead (sm4Oid option), a reader should accept both.
const OID_SM4 = '1.2.156.10197.1.104';
const OID_SM4_ECB = '1.2.156.10197.1.104.1';
const OID_SM2_CURVE = '1.2.156.10197.1.301';

// Command-line openssl with binary stdin/stdout.
function opensslBin(args, input) {
    return new Promise((resolve, reject) => {
        const child = execFile('openssl', args, { encoding: 'buffer', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
            if (err) {
                err.message += `\nopenssl ${args.join(' ')}: ${stderr.toString('utf8')}`;
                reject(err);
            } else resolve(stdout);
        });
        child.stdin.on('error', () => {}); // a failing openssl may close stdin early: its exit says why
        child.stdin.end(input || Buffer.alloc(0));
    });
}

/* ---------- small conversions (each tested on its own) ---------- */

// A big-endian magnitude as exactly n bytes (leading zeros added or dropped); throws if it does
// not fit.
function fixed(mag, n) {
    let b = Buffer.from(mag);
    let i = 0;
    while (i < b.length && b[i] === 0 && b.length - i > n) i++;
    b = b.subarray(i);
    if (b.length > n) throw new DerError(`value longer than ${n} bytes`);
    return Buffer.concat([Buffer.alloc(n - b.length), b]);
}

// 32 bytes right-aligned in a 64-byte field (the SKF convention for 256-bit values).
const field64 = (v32) => Buffer.concat([Buffer.alloc(32), fixed(v32, 32)]);

// The content of a DER INTEGER as a non-negative magnitude (a negative one is an error here).
function uintContent(buf, t) {
    if (t.tag !== 0x02 || t.len === 0) throw new DerError('not an INTEGER');
    const c = buf.subarray(t.cstart, t.end);
    if (c[0] & 0x80) throw new DerError('negative INTEGER');
    if (c.length > 1 && c[0] === 0 && !(c[1] & 0x80)) throw new DerError('non-minimal INTEGER');
    return c;
}

// GM/T 0009 SM2Cipher (DER, OpenSSL's SM2 ciphertext) to its parts: {x, y (32 bytes each: C1),
// hash (32: C3), cipher (C2)}. Strict: exactly four fields of the right types and sizes.
function sm2CipherFromDer(der) {
    const buf = Buffer.from(der);
    const t = tlv(buf, 0);
    if (t.tag !== 0x30 || t.end !== buf.length) throw new DerError('SM2Cipher is not one SEQUENCE');
    const f = children(buf, t);
    if (f.length !== 4 || f[2].tag !== 0x04 || f[3].tag !== 0x04) throw new DerError('not an SM2Cipher');
    const hash = buf.subarray(f[2].cstart, f[2].end);
    if (hash.length !== 32) throw new DerError('SM2Cipher HASH is not 32 bytes');
    const cipher = buf.subarray(f[3].cstart, f[3].end);
    if (cipher.length === 0) throw new DerError('empty SM2Cipher ciphertext');
    return { x: fixed(uintContent(buf, f[0]), 32), y: fixed(uintContent(buf, f[1]), 32), hash: Buffer.from(hash), cipher: Buffer.from(cipher) };
}

// The inverse: parts to SM2Cipher DER (INTEGERs minimal, as OpenSSL writes them).
function sm2CipherToDer({ x, y, hash, cipher }) {
    if (hash.length !== 32) throw new DerError('HASH must be 32 bytes');
    return encSeq(encUint(fixed(x, 32)), encUint(fixed(y, 32)), encOctets(hash), encOctets(cipher));
}

function ulong(v, width) {
    const b = Buffer.alloc(width);
    if (width === 4) b.writeUInt32LE(v);
    else if (width === 8) b.writeBigUInt64LE(BigInt(v));
    else throw new Error('ULONG is 4 or 8 bytes');
    return b;
}

// ECCPUBLICKEYBLOB: BitLen (ULONG) = 256, XCoordinate[64], YCoordinate[64] (right-aligned).
function eccPublicKeyBlob({ x, y }, width = 4) {
    return Buffer.concat([ulong(256, width), field64(x), field64(y)]);
}

// ECCCIPHERBLOB: XCoordinate[64], YCoordinate[64] (C1), HASH[32] (C3), CipherLen (ULONG),
// Cipher[CipherLen] (C2): 160 + width + n bytes.
function eccCipherBlob({ x, y, hash, cipher }, width = 4) {
    if (hash.length !== 32) throw new Error('HASH must be 32 bytes');
    return Buffer.concat([field64(x), field64(y), Buffer.from(hash), ulong(cipher.length, width), Buffer.from(cipher)]);
}

// ENVELOPEDKEYBLOB as it goes to SKF_ImportECCKeyPair: Version, ulSymmAlgID, ulBits,
// cbEncryptedPriKey[64], PubKey, ECCCipherBlob (with its Cipher bytes: past the C sizeof).
function envelopedKeyBlob({ encryptedPriKey, pub, cipher, symAlgId = SGD_SM4_ECB, bits = 256, version = ENVELOPED_KEY_VERSION }, width = 4) {
    if (encryptedPriKey.length !== 64) throw new Error('cbEncryptedPriKey is 64 bytes');
    return Buffer.concat([ulong(version, width), ulong(symAlgId, width), ulong(bits, width), Buffer.from(encryptedPriKey), eccPublicKeyBlob(pub, width), eccCipherBlob(cipher, width)]);
}

// GM/T 0009 SM2EnvelopedKey DER.
function sm2EnvelopedKeyDer({ cipher, pub, encryptedPriKey, symOid = OID_SM4 }) {
    return encSeq(
        encSeq(encOid(symOid)),
        sm2CipherToDer(cipher),
        encBits(Buffer.concat([Buffer.from([4]), fixed(pub.x, 32), fixed(pub.y, 32)])),
        encBits(encryptedPriKey),
    );
}

// An SM2 private key in DER, SEC 1 ECPrivateKey (what `openssl pkey -outform DER` writes for an
// SM2 key) or PKCS#8 around one, to {d, x, y} (32 bytes each). The curve must be SM2 (in
// ECPrivateKey's [0] or PKCS#8's AlgorithmIdentifier) and the public key present ([1]), as
// OpenSSL writes them.
function sm2PrivateFromDer(der) {
    const buf = Buffer.from(der);
    const t = tlv(buf, 0);
    if (t.tag !== 0x30 || t.end !== buf.length) throw new DerError('not a private key');
    let f = children(buf, t);
    let ec = buf;
    let curve = null;
    if (f.length === 3 && f[0].tag === 0x02 && f[1].tag === 0x30 && f[2].tag === 0x04) {
        // PKCS#8: version, AlgorithmIdentifier {id-ecPublicKey, curve}, OCTET STRING {ECPrivateKey}
        const a = children(buf, f[1]);
        if (a[1] && a[1].tag === 0x06) curve = oid(buf, a[1]);
        ec = buf.subarray(f[2].cstart, f[2].end);
        const it = tlv(ec, 0);
        if (it.tag !== 0x30 || it.end !== ec.length) throw new DerError('not an ECPrivateKey');
        f = children(ec, it);
    }
    if (f.length < 2 || f[0].tag !== 0x02 || ec[f[0].cstart] !== 1 || f[1].tag !== 0x04) throw new DerError('not an ECPrivateKey');
    const params = f.find((x) => x.tag === 0xa0);
    if (params) curve = oid(ec, tlv(ec, params.cstart, params.end));
    if (curve !== OID_SM2_CURVE) throw new DerError(`not an SM2 key (curve ${curve})`);
    const d = fixed(ec.subarray(f[1].cstart, f[1].end), 32);
    const pubField = f.find((x) => x.tag === 0xa1);
    if (!pubField) throw new DerError('ECPrivateKey without its public key');
    const point = bitString(ec, tlv(ec, pubField.cstart, pubField.end));
    return { d, ...pointXY(point) };
}

// An uncompressed point (04 || x || y) to {x, y}.
function pointXY(point) {
    if (point.length !== 65 || point[0] !== 4) throw new DerError('not an uncompressed 256-bit point');
    return { x: Buffer.from(point.subarray(1, 33)), y: Buffer.from(point.subarray(33)) };
}

// SM4-ECB without padding (n a multiple of 16).
function sm4Ecb(encrypt, key, data) {
    const c = encrypt ? crypto.createCipheriv('sm4-ecb', key, null) : crypto.createDecipheriv('sm4-ecb', key, null);
    c.setAutoPadding(false);
    return Buffer.concat([c.update(data), c.final()]);
}

/* ---------- the KMC ---------- */

class TestKmc {
    // opts: dir (escrow and work files), ca (a TestCa, already init()ed), priKeyForm
    // ('whole'|'short'), sm4Oid (OID of symAlgID), ulongBytes (4|8: the blob's ULONG width).
    constructor(opts) {
        this.dir = opts.dir;
        this.ca = opts.ca;
        this.priKeyForm = opts.priKeyForm || 'whole';
        this.sm4Oid = opts.sm4Oid || OID_SM4;
        this.ulongBytes = opts.ulongBytes || 4;
        if (!['whole', 'short'].includes(this.priKeyForm)) throw new Error(`bad priKeyForm ${this.priKeyForm}`);
    }

    init() {
        fs.mkdirSync(path.join(this.dir, 'escrow'), { recursive: true, mode: 0o700 });
        return this;
    }

    // A new SM2 key pair: {file (PEM, 0600), d, x, y}.
    async newKeyPair() {
        const file = path.join(this.dir, 'escrow', `new-${crypto.randomBytes(8).toString('hex')}.key`);
        await opensslBin(['genpkey', '-algorithm', 'SM2', '-out', file]);
        fs.chmodSync(file, 0o600);
        const der = await opensslBin(['pkey', '-in', file, '-outform', 'DER']);
        return { file, ...sm2PrivateFromDer(der) };
    }

    // SM2 encryption of data to an SM2 SubjectPublicKeyInfo (DER): the SM2Cipher DER.
    async sm2Encrypt(spkiDer, data) {
        const k = spkiKey(spkiDer);
        if (k.curve !== OID_SM2_CURVE) throw new Error('the recipient is not an SM2 key');
        const pub = path.join(this.dir, `pub-${crypto.randomBytes(8).toString('hex')}.pem`);
        fs.writeFileSync(pub, derToPem(spkiDer, 'PUBLIC KEY'));
        try {
            // the secret goes through a pipe, never a file
            return await opensslBin(['pkeyutl', '-encrypt', '-pubin', '-inkey', pub], data);
        } finally {
            fs.rmSync(pub, { force: true });
        }
    }

    // Wraps key {d, x, y} for the holder of the SM2 public key recipientSpki (DER). Resolves
    // {blob, asn1} (Buffers: ENVELOPEDKEYBLOB and SM2EnvelopedKey DER), both with the same SM4 key
    // and SM2 ciphertext.
    async envelope(recipientSpki, key) {
        const sm4 = crypto.randomBytes(16);
        try {
            const cipher = sm2CipherFromDer(await this.sm2Encrypt(recipientSpki, sm4));
            const encD = sm4Ecb(true, sm4, key.d);
            const encryptedPriKey = this.priKeyForm === 'whole' ? sm4Ecb(true, sm4, field64(key.d)) : Buffer.concat([Buffer.alloc(32), encD]);
            const pub = { x: key.x, y: key.y };
            return {
                blob: envelopedKeyBlob({ encryptedPriKey, pub, cipher }, this.ulongBytes),
                asn1: sm2EnvelopedKeyDer({ cipher, pub, encryptedPriKey: encD, symOid: this.sm4Oid }),
            };
        } finally {
            sm4.fill(0);
        }
    }

    // The dual issue of an SM2 renewal: the CA issues the signing certificate for the request
    // (all of TestCa.issue's checks and refusals apply), the KMC makes the encryption pair, the CA
    // issues its certificate, and the KMC wraps its private key to the request's key. Resolves
    // {signing, encryption (as TestCa.issue resolves), blob, asn1}.
    async issueDual({ csrPem, oldCertDer }) {
        const signing = await this.ca.issue({ csrPem, oldCertDer });
        if (!signing.sm2) throw new Error('a dual certificate needs an SM2 request');
        const signSpki = parseCsr(pemToDer(csrPem, 'CERTIFICATE REQUEST')).spki;
        const key = await this.newKeyPair();
        try {
            const encryption = await this.ca.issueEncryption({ signingCertDer: signing.der, encKeyPath: key.file });
            // The certificate's key is the one wrapped (a mix-up here would send an unusable pair).
            const p = pointXY(spkiPoint(parseCert(encryption.der).spki));
            if (!p.x.equals(key.x) || !p.y.equals(key.y)) throw new Error('the encryption certificate is not for the escrowed key');
            const { blob, asn1 } = await this.envelope(signSpki, key);
            fs.renameSync(key.file, path.join(this.dir, 'escrow', `${encryption.serial}.key`));
            return { signing, encryption, blob, asn1 };
        } finally {
            key.d.fill(0);
            fs.rmSync(key.file, { force: true });
        }
    }
}

module.exports = {
    TestKmc,
    SGD_SM4_ECB,
    OID_SM4,
    OID_SM4_ECB,
    fixed,
    field64,
    sm2CipherFromDer,
    sm2CipherToDer,
    eccPublicKeyBlob,
    eccCipherBlob,
    envelopedKeyBlob,
    sm2EnvelopedKeyDer,
    sm2PrivateFromDer,
    pointXY,
    sm4Ecb,
};
