'use strict';
// Just enough DER to take a certificate and a PKCS#10 request apart: the raw bytes of the subject
// Name (compared byte for byte: a CA must issue for exactly the subject it has on record), of the
// signed part, the signature algorithm and the signature. Everything is bounds-checked; any
// malformed input throws DerError. No other ASN.1 is interpreted. The SM2 test KMC (kmc.js) also
// uses the reader (tlv, children) and the few encoders at the end (SEQUENCE, INTEGER, OID,
// OCTET/BIT STRING), for the GM/T 0009 structures node:crypto knows nothing about.

class DerError extends Error {}

// One TLV at off: {tag, start (of the header), hdr, len, end, content: [start, end)}.
function tlv(buf, off, limit = buf.length) {
    if (off + 2 > limit) throw new DerError('truncated');
    const tag = buf[off];
    if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not used here');
    let len = buf[off + 1];
    let hdr = 2;
    if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 4) throw new DerError('bad length');
        if (off + 2 + n > limit) throw new DerError('truncated');
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i];
        if (len < 0x80 || (n > 1 && buf[off + 2] === 0)) throw new DerError('non-minimal length');
        hdr += n;
    }
    const end = off + hdr + len;
    if (end > limit) throw new DerError('truncated');
    return { tag, start: off, hdr, len, cstart: off + hdr, end };
}

// The children of a constructed TLV.
function children(buf, t) {
    if (!(t.tag & 0x20)) throw new DerError('not constructed');
    const out = [];
    for (let off = t.cstart; off < t.end; ) {
        const c = tlv(buf, off, t.end);
        out.push(c);
        off = c.end;
    }
    return out;
}

function top(buf) {
    const t = tlv(buf, 0);
    if (t.tag !== 0x30 || t.end !== buf.length) throw new DerError('not one SEQUENCE');
    return t;
}

function oid(buf, t) {
    if (t.tag !== 0x06 || t.len === 0) throw new DerError('not an OID');
    const b = buf.subarray(t.cstart, t.end);
    const parts = [];
    let v = 0;
    for (let i = 0; i < b.length; i++) {
        v = v * 128 + (b[i] & 0x7f);
        if (!(b[i] & 0x80)) {
            if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
            else parts.push(v);
            v = 0;
        }
    }
    return parts.join('.');
}

function bitString(buf, t) {
    if (t.tag !== 0x03 || t.len < 1 || buf[t.cstart] !== 0) throw new DerError('bad BIT STRING');
    return buf.subarray(t.cstart + 1, t.end);
}

const raw = (buf, t) => buf.subarray(t.start, t.end);

// A PKCS#10 request: {info (the signed CertificationRequestInfo), subject, spki, sigOid, signature}.
function parseCsr(der) {
    const buf = Buffer.from(der);
    const [info, alg, sig] = children(buf, top(buf));
    if (!info || info.tag !== 0x30 || !alg || alg.tag !== 0x30 || !sig) throw new DerError('not a PKCS#10 request');
    const f = children(buf, info);
    if (f.length < 3 || f[0].tag !== 0x02 || f[1].tag !== 0x30 || f[2].tag !== 0x30) throw new DerError('not a PKCS#10 request');
    return {
        info: raw(buf, info),
        subject: raw(buf, f[1]),
        spki: raw(buf, f[2]),
        sigOid: oid(buf, children(buf, alg)[0]),
        signature: bitString(buf, sig),
    };
}

// A certificate: {tbs, subject, issuer, spki}.
function parseCert(der) {
    const buf = Buffer.from(der);
    const [tbs] = children(buf, top(buf));
    if (!tbs || tbs.tag !== 0x30) throw new DerError('not a certificate');
    let f = children(buf, tbs);
    if (f[0] && f[0].tag === 0xa0) f = f.slice(1); // [0] version
    if (f.length < 6) throw new DerError('not a certificate');
    return { tbs: raw(buf, tbs), issuer: raw(buf, f[2]), subject: raw(buf, f[4]), spki: raw(buf, f[5]) };
}

// The key of a SubjectPublicKeyInfo: {alg (OID), curve (the named curve's OID, or null)}.
function spkiKey(spki) {
    const buf = Buffer.from(spki);
    const [alg] = children(buf, top(buf));
    if (!alg || alg.tag !== 0x30) throw new DerError('not a SubjectPublicKeyInfo');
    const [a, param] = children(buf, alg);
    return { alg: oid(buf, a), curve: param && param.tag === 0x06 ? oid(buf, param) : null };
}

// The public point of a SubjectPublicKeyInfo (the BIT STRING's bytes: 04 || x || y for an
// uncompressed EC point).
function spkiPoint(spki) {
    const buf = Buffer.from(spki);
    const f = children(buf, top(buf));
    if (f.length !== 2) throw new DerError('not a SubjectPublicKeyInfo');
    return bitString(buf, f[1]);
}

/* ---- encoders (DER: definite, minimal lengths) ---- */

function encTlv(tag, content) {
    const n = content.length;
    let len;
    if (n < 0x80) len = Buffer.from([n]);
    else {
        const bytes = [];
        for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
        len = Buffer.from([0x80 | bytes.length, ...bytes]);
    }
    return Buffer.concat([Buffer.from([tag]), len, content]);
}

const encSeq = (...items) => encTlv(0x30, Buffer.concat(items));
const encOctets = (b) => encTlv(0x04, Buffer.from(b));
const encBits = (b) => encTlv(0x03, Buffer.concat([Buffer.from([0]), Buffer.from(b)]));

// A non-negative INTEGER from its big-endian magnitude (leading zeros dropped, a 00 added when
// the top bit is set: DER's minimal two's complement).
function encUint(mag) {
    let b = Buffer.from(mag);
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    b = b.subarray(i);
    if (b.length === 0) b = Buffer.from([0]);
    if (b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
    return encTlv(0x02, b);
}

function encOid(dotted) {
    const p = dotted.split('.').map(Number);
    if (p.length < 2 || p.some((x) => !Number.isSafeInteger(x) || x < 0)) throw new DerError(`bad OID ${dotted}`);
    const out = [];
    for (const v of [p[0] * 40 + p[1], ...p.slice(2)]) {
        const enc = [v & 0x7f];
        for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) enc.unshift((x & 0x7f) | 0x80);
        out.push(...enc);
    }
    return encTlv(0x06, Buffer.from(out));
}

// PEM (one block of the given label) to DER; throws DerError.
function pemToDer(pem, label) {
    const m = String(pem).match(new RegExp(`^\\s*-----BEGIN ${label}-----\\r?\\n([A-Za-z0-9+/=\\r\\n]+)-----END ${label}-----\\s*$`));
    if (!m) throw new DerError(`not one PEM ${label}`);
    return Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
}

function derToPem(der, label) {
    const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
    return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

module.exports = {
    DerError,
    parseCsr,
    parseCert,
    pemToDer,
    derToPem,
    tlv,
    children,
    oid,
    bitString,
    spkiKey,
    spkiPoint,
    encTlv,
    encSeq,
    encOctets,
    encBits,
    encUint,
    encOid,
};
