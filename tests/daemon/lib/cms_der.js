'use strict';
// A small DER reader and writer of the tests' own (independent of ukeyd and of the SDK) for
// taking CMS structures apart and building GM/T 0010 ones by hand, and the SM2 soft SKF device
// they sign with: keys_cms_sm2.test.js and tests/e2e/sof_sm2.test.js.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const SM2_ID = '1234567812345678';

const OID = {
    data: '1.2.840.113549.1.7.1',
    signedData: '1.2.840.113549.1.7.2',
    contentType: '1.2.840.113549.1.9.3',
    messageDigest: '1.2.840.113549.1.9.4',
    signingTime: '1.2.840.113549.1.9.5',
    sm3: '1.2.156.10197.1.401',
    sm2WithSm3: '1.2.156.10197.1.501',
    sm2Sign: '1.2.156.10197.1.301.1',
    sm2Encrypt: '1.2.156.10197.1.301.3',
    sm4Cbc: '1.2.156.10197.1.104.2',
    aes128Cbc: '2.16.840.1.101.3.4.1.2',
    envelopedData: '1.2.840.113549.1.7.3',
};

function tlv(buf, off = 0) {
    const tag = buf[off];
    let len = buf[off + 1];
    let hdr = 2;
    if (len & 0x80) {
        const n = len & 0x7f;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i];
        hdr += n;
    }
    return { tag, start: off, value: buf.subarray(off + hdr, off + hdr + len), end: off + hdr + len, all: buf.subarray(off, off + hdr + len) };
}

function kids(t) {
    const out = [];
    for (let off = 0; off < t.value.length;) {
        const k = tlv(t.value, off);
        out.push(k);
        off = k.end;
    }
    return out;
}

function oidOf(t) {
    assert.equal(t.tag, 0x06, 'an OBJECT IDENTIFIER');
    const b = t.value;
    const parts = [Math.floor(b[0] / 40), b[0] % 40];
    let v = 0;
    for (let i = 1; i < b.length; i++) {
        v = v * 128 + (b[i] & 0x7f);
        if (!(b[i] & 0x80)) {
            parts.push(v);
            v = 0;
        }
    }
    return parts.join('.');
}

function der(tag, ...parts) {
    const body = Buffer.concat(parts);
    const n = body.length;
    const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
    return Buffer.concat([Buffer.from([tag, ...len]), body]);
}

function oidDer(text) {
    const p = text.split('.').map(Number);
    const bytes = [40 * p[0] + p[1]];
    for (const v of p.slice(2)) {
        const b = [v & 0x7f];
        for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) b.unshift((x & 0x7f) | 0x80);
        bytes.push(...b);
    }
    return der(0x06, Buffer.from(bytes));
}

const seq = (...p) => der(0x30, ...p);
const set = (...p) => der(0x31, ...p);
const int = (n) => der(0x02, Buffer.from([n]));
const octets = (b) => der(0x04, b);
const attr = (oid, value) => seq(oidDer(oid), set(value));

// The parts of a DER SignedData (ContentInfo) with one signer.
function signedParts(cms) {
    const ci = tlv(cms);
    const [ctype, explicit] = kids(ci);
    const sd = kids(explicit)[0];
    const el = kids(sd);
    const encap = kids(el[2]);
    const signerInfos = el[el.length - 1];
    assert.equal(signerInfos.tag, 0x31);
    const certs = el.find((k) => k.tag === 0xa0);
    const si = kids(signerInfos)[0];
    const s = kids(si);
    const attrsTlv = s[3];
    assert.equal(attrsTlv.tag, 0xa0, 'signed attributes present');
    const attrs = {};
    for (const a of kids(attrsTlv)) {
        const [o, vals] = kids(a);
        attrs[oidOf(o)] = kids(vals);
    }
    const attrsSet = Buffer.from(attrsTlv.all);
    attrsSet[0] = 0x31; // RFC 5652 5.4: the signature covers the explicit SET OF
    return {
        contentType: oidOf(ctype),
        digestAlgorithms: kids(el[1]).map((a) => oidOf(kids(a)[0])),
        eContentType: oidOf(encap[0]),
        content: encap[1] ? kids(encap[1])[0].value : null,
        certificates: certs ? kids(certs).map((c) => Buffer.from(c.all)) : [],
        signerVersion: s[0].value[0],
        digestAlgorithm: oidOf(kids(s[2])[0]),
        attrs,
        attrsSet,
        signatureAlgorithm: oidOf(kids(s[4])[0]),
        signature: Buffer.from(s[5].value),
    };
}

// issuerAndSerialNumber of a DER certificate.
function issuerAndSerial(cert) {
    const tbs = kids(kids(tlv(cert))[0]);
    const off = tbs[0].tag === 0xa0 ? 1 : 0;
    return seq(tbs[off + 2].all, tbs[off].all); // issuer Name, serialNumber
}

// In dir: an SM2 CA (ca.pem), a signing and an encryption pair certified by it (sig.key/.pem/.der/
// .pub, serial 0x11; enc.*, serial 0x12), SM2-with-SM3 with the GM/T 0009 ID; and, by the ukskf
// tool, device ukey0 (serial, label; PIN 123456, 5 tries) holding both in container "sm2".
function provisionSm2(dir, tool, { serial, label }) {
    const sh = (cmd, args) => execFileSync(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const o = (...a) => sh('openssl', a);
    const sm3 = ['-sm3', '-sigopt', `distid:${SM2_ID}`];
    o('ecparam', '-name', 'SM2', '-genkey', '-noout', '-out', 'ca.key');
    o('req', '-x509', '-new', '-key', 'ca.key', ...sm3, '-subj', '/CN=cms sm2 CA', '-days', '30', '-out', 'ca.pem');
    for (const [k, sn] of [['sig', '11'], ['enc', '12']]) {
        o('ecparam', '-name', 'SM2', '-genkey', '-noout', '-out', `${k}.key`);
        o('req', '-new', '-key', `${k}.key`, ...sm3, '-subj', `/CN=cms sm2 ${k}`, '-out', `${k}.csr`);
        o('x509', '-req', '-in', `${k}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', ...sm3, '-vfyopt', `distid:${SM2_ID}`,
            '-days', '30', '-set_serial', sn, '-out', `${k}.pem`);
        o('x509', '-in', `${k}.pem`, '-outform', 'DER', '-out', `${k}.der`);
        o('x509', '-in', `${k}.pem`, '-noout', '-pubkey', '-out', `${k}.pub`);
    }
    sh(tool, ['provision', '--dir', dir, '--device', 'ukey0', '--serial', serial, '--label', label,
        '--retries', '5', '--container', 'sm2', '--key', 'sig.key', '--cert', 'sig.pem',
        '--enc-key', 'enc.key', '--enc-cert', 'enc.pem']);
}

// A GM/T 0010 EnvelopedData (PKCS#7 content types) of plaintext for the encryption certificate
// of provisionSm2 in dir: KeyTransRecipientInfo by issuer and serial, key encryption sm2-3
// (1.2.156.10197.1.301.3), the SM4 key as a GM/T 0009 SM2Cipher made by `openssl pkeyutl
// -encrypt`, content SM4-CBC (1.2.156.10197.1.104.2) with the IV as parameter. DER.
// opts: recipient (a certificate file in dir named as recipient, default enc.der), pub (the public
// key file in dir the content key is encrypted to, default enc.pub), aes (content AES-128-CBC).
function sm2Envelope(dir, plaintext, opts = {}) {
    const encDer = fs.readFileSync(path.join(dir, opts.recipient || 'enc.der'));
    const cek = crypto.randomBytes(16);
    const iv = crypto.randomBytes(16);
    fs.writeFileSync(path.join(dir, 'cek'), cek);
    const wrapped = execFileSync('openssl', ['pkeyutl', '-encrypt', '-pubin', '-inkey', opts.pub || 'enc.pub', '-in', 'cek'], { cwd: dir });
    fs.rmSync(path.join(dir, 'cek'));
    const ci = crypto.createCipheriv(opts.aes ? 'aes-128-cbc' : 'sm4-cbc', cek, iv);
    const enc = Buffer.concat([ci.update(plaintext), ci.final()]);
    const ktri = seq(int(0), issuerAndSerial(encDer), seq(oidDer(OID.sm2Encrypt)), octets(wrapped));
    const eci = seq(oidDer(OID.data), seq(oidDer(opts.aes ? OID.aes128Cbc : OID.sm4Cbc), octets(iv)), der(0x80, enc));
    return seq(oidDer(OID.envelopedData), der(0xa0, seq(int(0), set(ktri), eci)));
}

// openssl pkeyutl's verdict on an SM2 signature sig (DER) over msg with the signing certificate's
// key of provisionSm2 in dir (sig.pub), with the GM/T 0009 default ID or (withId false) OpenSSL's
// empty one: its output, or "failed: " and its complaint.
let nVerdict = 0;
function sm2Verdict(dir, msg, sig, withId) {
    const m = path.join(dir, `vmsg-${nVerdict}`);
    const s = path.join(dir, `vsig-${nVerdict++}`);
    fs.writeFileSync(m, msg);
    fs.writeFileSync(s, sig);
    try {
        return execFileSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', 'sig.pub', '-rawin', '-digest', 'sm3',
            ...(withId ? ['-pkeyopt', 'distid:1234567812345678'] : []), '-in', m, '-sigfile', s],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    } catch (e) {
        return `failed: ${e.stdout}${e.stderr}`;
    }
}

module.exports = { provisionSm2, sm2Envelope, sm2Verdict, OID, tlv, kids, oidOf, der, oidDer, seq, set, int, octets, attr, signedParts, issuerAndSerial };
