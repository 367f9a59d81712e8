'use strict';
// Just enough DER to take a certificate and a PKCS#10 request apart: the raw bytes of the subject
// Name (compared byte for byte: a CA must issue for exactly the subject it has on record), of the
// signed part, the signature algorithm and the signature. Everything is bounds-checked; any
// malformed input throws DerError. No other ASN.1 is interpreted.

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

module.exports = { DerError, parseCsr, parseCert, pemToDer, derToPem };
