// sof.js — the GM/T 0020-2012 "certificate application integrated service interface" (the SOF_*
// functions that portal pages call through their vendor's script) on top of ukey.js.
//
//   import { createSof } from './sof.js';
//   const sof = createSof();                       // connects to ukeyd on the first call
//   const users = await sof.SOF_GetUserList();     // "张三||piv:78003773/9a&&&…"
//
// Every function returns a promise that resolves what the standard's function returns (strings,
// numbers, booleans), and rejects with a SofError: a UkeyError (stable `reason`, zh-CN and English
// message, `data`) that also carries the standard's `SOR_*` code in `sor` (SOR_REASONS below is the
// one table of reason → code; docs/sof-migration.md prints it).
//
// What runs where: the key operations (sign, CMS sign, decrypt, PIN change and status) are
// ukeyd's methods, with ukeyd's dialogs; what needs no private key runs in the page: certificate
// parsing (a small strict DER reader below), signature verification and envelope encryption with
// WebCrypto (SM2 envelopes with gm.js: SM2, SM3 and SM4 in plain JavaScript), random bytes from
// crypto.getRandomValues (ukeyd has no random method: protocol.md). No dependencies besides
// ukey.js and gm.js.

import { connect, errorFromRpc, UkeyError, toBase64, fromBase64, SDK_VERSION } from './ukey.js';
import { sm2Encrypt, sm2CipherDer, sm4CbcEncrypt } from './gm.js';

/* ---------- the standard's identifiers (GM/T 0006 / GM/T 0020 clause 5) ---------- */

/** Certificate information types of SOF_GetCertInfo (GM/T 0006 identifiers). */
export const SGD_CERT = Object.freeze({
    VERSION: 0x01,
    SERIAL: 0x02,
    ISSUER: 0x05,
    VALID_TIME: 0x06,
    SUBJECT: 0x07,
    DER_PUBLIC_KEY: 0x08,
    DER_EXTENSIONS: 0x09,
    EXT_AUTHORITYKEYIDENTIFIER: 0x11,
    EXT_SUBJECTKEYIDENTIFIER: 0x12,
    EXT_KEYUSAGE: 0x13,
    EXT_PRIVATEKEYUSAGEPERIOD: 0x14,
    EXT_CERTIFICATEPOLICIES: 0x15,
    EXT_POLICYMAPPINGS: 0x16,
    EXT_BASICCONSTRAINTS: 0x17,
    EXT_POLICYCONSTRAINTS: 0x18,
    EXT_EXTKEYUSAGE: 0x19,
    EXT_CRLDISTRIBUTIONPOINTS: 0x1a,
    EXT_NETSCAPE_CERT_TYPE: 0x1b,
    EXT_SELFDEFINED_EXTENSION: 0x1c,
    ISSUER_CN: 0x21,
    ISSUER_O: 0x22,
    ISSUER_OU: 0x23,
    SUBJECT_CN: 0x31,
    SUBJECT_O: 0x32,
    SUBJECT_OU: 0x33,
    SUBJECT_EMAIL: 0x34,
    NOTBEFORE_TIME: 0x35,
    NOTAFTER_TIME: 0x36,
    // Not in GM/T 0006's table: codes several vendor SDKs added for the two algorithms, which
    // portals call; kept so those calls keep working.
    SIGNATURE_ALG: 0x100,
    PUBKEY_ALG: 0x101,
});

/** Device information types of SOF_GetDeviceInfo (GM/T 0006 identifiers). */
export const SGD_DEVICE = Object.freeze({
    SORT: 0x201,
    TYPE: 0x202,
    NAME: 0x203,
    MANUFACTURER: 0x204,
    HARDWARE_VERSION: 0x205,
    SOFTWARE_VERSION: 0x206,
    STANDARD_VERSION: 0x207,
    SERIAL_NUMBER: 0x208,
});

/** Signature methods of SOF_SetSignMethod (GM/T 0006 identifiers). */
export const SGD_SIGN = Object.freeze({
    SM3_RSA: 0x00010001,
    SHA1_RSA: 0x00010002,
    SHA256_RSA: 0x00010004,
    SM3_SM2: 0x00020201,
});

/** The standard's error codes (GM/T 0020 Annex A). */
export const SOR = Object.freeze({
    OK: 0,
    UNKNOWNERR: 0x0b000001,
    NOTSUPPORTYETERR: 0x0b000002,
    FILEERR: 0x0b000003,
    LOADPROVIDERERR: 0x0b000005,
    LOADDEVMNGAPIERR: 0x0b000006,
    ALGTYPEERR: 0x0b000007,
    KEYUSAGEERR: 0x0b000009,
    MEMORYERR: 0x0b000100,
    TIMEOUTERR: 0x0b000101,
    INDATALENERR: 0x0b000200,
    INDATAERR: 0x0b000201,
    KEYNOTFOUNDERR: 0x0b000309,
    CERTNOTFOUNTERR: 0x0b000310,
    VERIFYPOLICYERR: 0x0b000312,
    APPNOTFOUNDERR: 0x0b000404,
    CERTENCODEERR: 0x0b000405,
    CERTINVALIDERR: 0x0b000406,
    CERTHASHEXPIREDERR: 0x0b000407,
    VERIFYSIGNDATAERR: 0x0b000410,
    DECYPTDATAERR: 0x0b000416,
    PKCS7ENCODEERR: 0x0b000417,
    PARAMETERNOTSUPPORTEERR: 0x0b000419,
    CTLNOTFOUND: 0x0b000420,
});

// ukeyd's (and the SDK's) reasons → the standard's code. Annex A has no code for PIN errors or
// for refusals by policy or by the user: those get SOR_UNKNOWNERR, and the error's `reason` (with
// `data.retries_left` for a wrong PIN) says what happened.
export const SOR_REASONS = Object.freeze({
    INTERNAL: SOR.UNKNOWNERR,
    NO_MEMORY: SOR.MEMORYERR,
    IO: SOR.FILEERR,
    NOT_SUPPORTED: SOR.NOTSUPPORTYETERR,
    METHOD_NOT_FOUND: SOR.NOTSUPPORTYETERR,
    VERSION_TOO_OLD: SOR.NOTSUPPORTYETERR,
    TIMEOUT: SOR.TIMEOUTERR,
    // ukeyd (the "service provider") cannot be reached or loaded.
    DAEMON_UNAVAILABLE: SOR.LOADPROVIDERERR,
    EXTENSION_NOT_INSTALLED: SOR.LOADPROVIDERERR,
    LOCAL_NETWORK_BLOCKED: SOR.LOADPROVIDERERR,
    TLS_ERROR: SOR.LOADPROVIDERERR,
    MODULE_ERROR: SOR.LOADPROVIDERERR,
    // The smart card service (the "device management interface").
    NO_SERVICE: SOR.LOADDEVMNGAPIERR,
    // No key where the container was: the application (SKF's word for it) is not found.
    NO_READER: SOR.APPNOTFOUNDERR,
    NO_TOKEN: SOR.APPNOTFOUNDERR,
    CARD_REMOVED: SOR.APPNOTFOUNDERR,
    INVALID_PARAMS: SOR.INDATAERR,
    LIMIT_EXCEEDED: SOR.INDATALENERR,
    KEY_NOT_FOUND: SOR.KEYNOTFOUNDERR,
    CERT_NOT_FOUND: SOR.CERTNOTFOUNTERR,
    CERT_INVALID: SOR.CERTENCODEERR,
    CERT_KEY_MISMATCH: SOR.KEYUSAGEERR,
    CERT_EXPIRED: SOR.CERTHASHEXPIREDERR,
    NOT_YET_VALID: SOR.VERIFYPOLICYERR,
    CHAIN_INVALID: SOR.CERTINVALIDERR,
    DECRYPT_FAILED: SOR.DECYPTDATAERR,
    SIGNATURE_INVALID: SOR.VERIFYSIGNDATAERR,
});

/** The SOR code for a reason (SOR_UNKNOWNERR for reasons Annex A has no code for). */
export function sorOf(reason) {
    return Object.prototype.hasOwnProperty.call(SOR_REASONS, reason) ? SOR_REASONS[reason] : SOR.UNKNOWNERR;
}

/** The SOR_* name of a code ('SOR_CERTENCODEERR'), or null. */
export function sorName(code) {
    const k = Object.keys(SOR).find((n) => SOR[n] === code);
    return k ? `SOR_${k}` : null;
}

/** A UkeyError with the standard's code: `sor` (number) and `sorName`. */
export class SofError extends UkeyError {
    constructor(reason, opts = {}) {
        super(reason, opts);
        this.name = 'SofError';
        this.sor = Number.isInteger(opts.sor) ? opts.sor : sorOf(reason);
        this.sorName = sorName(this.sor);
    }
}

// A SofError from a UkeyError (or anything thrown), keeping reason, messages and data; `sor`
// overrides the table where the function knows better (a CMS that is not one: PKCS7ENCODEERR).
function toSofError(e, sor) {
    if (e instanceof SofError) return e;
    if (e instanceof UkeyError)
        return new SofError(e.reason, { messages: e.messages, retriable: e.retriable, code: e.code, data: e.data, lang: e.lang, sor });
    return new SofError('INTERNAL', { data: { detail: String((e && e.message) || e) }, sor });
}

function fail(reason, sor, detail, lang) {
    return new SofError(reason, { sor, lang, data: detail ? { detail } : {} });
}

/* ---------- DER reading (definite lengths only, every length checked) ---------- */

class DerError extends Error {}

// The TLV at pos of bytes (within end): {tag, start, hstart (content start), end}. Only
// single-byte tags (X.509 and CMS use no others) and definite lengths of at most 4 bytes, minimal.
function tlv(bytes, pos, end = bytes.length) {
    if (pos + 2 > end) throw new DerError('truncated');
    const tag = bytes[pos];
    if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tag');
    let len = bytes[pos + 1];
    let p = pos + 2;
    if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 4) throw new DerError('bad length');
        if (p + n > end) throw new DerError('truncated');
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + bytes[p + i];
        if (len < 0x80 || bytes[p] === 0) throw new DerError('length not minimal');
        p += n;
    }
    if (p + len > end) throw new DerError('truncated');
    return { tag, start: pos, hstart: p, end: p + len };
}

// The children of a constructed TLV.
function children(bytes, node) {
    const out = [];
    for (let p = node.hstart; p < node.end; ) {
        const c = tlv(bytes, p, node.end);
        out.push(c);
        p = c.end;
    }
    return out;
}

function expect(node, tag, what) {
    if (!node || node.tag !== tag) throw new DerError(`${what}: unexpected tag`);
    return node;
}

const content = (bytes, n) => bytes.subarray(n.hstart, n.end);
const whole = (bytes, n) => bytes.subarray(n.start, n.end);

function oidText(b) {
    if (!b.length || b[b.length - 1] & 0x80) throw new DerError('bad OID');
    const arcs = [];
    let v = 0n;
    for (let i = 0; i < b.length; i++) {
        if (v === 0n && b[i] === 0x80) throw new DerError('OID not minimal');
        v = (v << 7n) | BigInt(b[i] & 0x7f);
        if (!(b[i] & 0x80)) {
            if (!arcs.length) {
                const first = v < 40n ? 0n : v < 80n ? 1n : 2n;
                arcs.push(first, v - first * 40n);
            } else arcs.push(v);
            v = 0n;
        }
    }
    return arcs.join('.');
}

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('').toUpperCase();
const utf8 = (b) => new TextDecoder('utf-8', { fatal: true }).decode(b);

// The text of a directory string (the string types of X.520 names and of extension values), or
// null for a type that is not a string.
function stringValue(bytes, n) {
    const b = content(bytes, n);
    switch (n.tag) {
        case 0x0c: // UTF8String
            return utf8(b);
        case 0x12: // NumericString
        case 0x13: // PrintableString
        case 0x16: // IA5String
        case 0x1a: // VisibleString
        case 0x14: // TeletexString (read as Latin-1, as most decoders do)
            return String.fromCharCode(...b);
        case 0x1e: {
            // BMPString: UTF-16BE
            if (b.length % 2) throw new DerError('odd BMPString');
            let s = '';
            for (let i = 0; i < b.length; i += 2) s += String.fromCharCode((b[i] << 8) | b[i + 1]);
            return s;
        }
        case 0x1c: {
            // UniversalString: UTF-32BE
            if (b.length % 4) throw new DerError('bad UniversalString');
            let s = '';
            for (let i = 0; i < b.length; i += 4) s += String.fromCodePoint(((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0);
            return s;
        }
        default:
            return null;
    }
}

// X.509 time → 'YYYYMMDDHHMMSSZ' (UTCTime years 50–99 are 19xx, RFC 5280 4.1.2.5).
function timeValue(bytes, n) {
    const s = String.fromCharCode(...content(bytes, n));
    if (n.tag === 0x17 && /^\d{12}Z$/.test(s)) return (Number(s.slice(0, 2)) >= 50 ? '19' : '20') + s;
    if (n.tag === 0x18 && /^\d{14}Z$/.test(s)) return s;
    throw new DerError('bad time');
}

const NAME_TYPES = {
    '2.5.4.3': 'CN', '2.5.4.4': 'SN', '2.5.4.5': 'serialNumber', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST',
    '2.5.4.9': 'STREET', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.12': 'title', '2.5.4.42': 'GN',
    '1.2.840.113549.1.9.1': 'emailAddress', '0.9.2342.19200300.100.1.25': 'DC', '0.9.2342.19200300.100.1.1': 'UID',
};

// A Name → [{oid, type, value}] in certificate order (country first, usually), one per attribute.
function nameParts(bytes, node) {
    const parts = [];
    for (const rdn of children(bytes, expect(node, 0x30, 'name'))) {
        for (const atv of children(bytes, expect(rdn, 0x31, 'RDN'))) {
            const [t, v] = children(bytes, expect(atv, 0x30, 'attribute'));
            const oid = oidText(content(bytes, expect(t, 0x06, 'attribute type')));
            if (!v) throw new DerError('attribute without value');
            const s = stringValue(bytes, v);
            // A value that is not a string: RFC 4514's "#" + hex of its DER.
            parts.push({ oid, type: NAME_TYPES[oid] || oid, value: s === null ? '#' + hex(whole(bytes, v)) : s });
        }
    }
    return parts;
}

// RFC 4514 text of a Name: last RDN first, "," between attributes (the form ukeyd's cert.list uses;
// the attributes of a multi-valued RDN are listed one by one too).
function nameText(parts) {
    const esc = (v) =>
        v.startsWith('#') ? v : v.replace(/([,+"\\<>;=])/g, '\\$1').replace(/^([ #])/, '\\$1').replace(/ $/, '\\ ');
    return parts
        .slice()
        .reverse()
        .map((p) => `${p.type}=${esc(p.value)}`)
        .join(',');
}

const SIG_ALGS = {
    '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption', '1.2.840.113549.1.1.11': 'sha256WithRSAEncryption',
    '1.2.840.113549.1.1.12': 'sha384WithRSAEncryption', '1.2.840.113549.1.1.13': 'sha512WithRSAEncryption',
    '1.2.840.113549.1.1.10': 'rsassaPss', '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
    '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384', '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
    '1.2.156.10197.1.501': 'SM3WithSM2', '1.2.156.10197.1.504': 'SM3WithRSA',
};
const OID_RSA = '1.2.840.113549.1.1.1';
const OID_EC = '1.2.840.10045.2.1';
const OID_SM2_CURVE = '1.2.156.10197.1.301';
const CURVES = { '1.2.840.10045.3.1.7': 'P-256', '1.3.132.0.34': 'P-384', '1.3.132.0.35': 'P-521', [OID_SM2_CURVE]: 'SM2' };

/**
 * Parses an X.509 certificate (DER bytes, base64 DER or PEM). Returns the fields SOF_GetCertInfo
 * reports; throws a SofError CERT_INVALID (SOR_CERTENCODEERR) for anything that is not exactly one
 * well-formed certificate.
 */
export function parseCertificate(input) {
    let der;
    try {
        der = certBytes(input);
        return parseDer(der);
    } catch (e) {
        if (e instanceof SofError) throw e;
        throw fail('CERT_INVALID', SOR.CERTENCODEERR, `not a certificate: ${e.message}`);
    }
}

function certBytes(input) {
    if (input instanceof Uint8Array) return input;
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    if (typeof input !== 'string') throw new DerError('expected bytes or a base64 string');
    const s = input.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4) throw new DerError('not base64');
    return fromBase64(s);
}

function parseDer(der) {
    const top = expect(tlv(der, 0), 0x30, 'certificate');
    if (top.end !== der.length) throw new DerError('trailing bytes');
    const [tbs, sigAlg, sigVal, extra] = children(der, top);
    if (extra || !sigVal) throw new DerError('certificate is not 3 elements');
    expect(tbs, 0x30, 'tbsCertificate');
    expect(sigAlg, 0x30, 'signatureAlgorithm');
    expect(sigVal, 0x03, 'signatureValue');
    const f = children(der, tbs);
    let i = 0;
    let version = 1;
    if (f[i] && f[i].tag === 0xa0) {
        const v = expect(children(der, f[i])[0], 0x02, 'version');
        const vb = content(der, v);
        if (vb.length !== 1 || vb[0] > 2) throw new DerError('bad version');
        version = vb[0] + 1;
        i++;
    }
    const serialNode = expect(f[i++], 0x02, 'serialNumber');
    let serial = content(der, serialNode);
    if (!serial.length) throw new DerError('empty serial');
    if (serial.length > 1 && serial[0] === 0 && !(serial[1] & 0x80)) throw new DerError('serial not minimal');
    if (serial[0] === 0 && serial.length > 1) serial = serial.subarray(1);
    expect(f[i++], 0x30, 'signature');
    const issuerNode = expect(f[i++], 0x30, 'issuer');
    const validity = children(der, expect(f[i++], 0x30, 'validity'));
    if (validity.length !== 2) throw new DerError('bad validity');
    const subjectNode = expect(f[i++], 0x30, 'subject');
    const spkiNode = expect(f[i++], 0x30, 'subjectPublicKeyInfo');
    while (f[i] && (f[i].tag === 0x81 || f[i].tag === 0xa1 || f[i].tag === 0x82 || f[i].tag === 0xa2)) i++; // unique ids
    const extensions = [];
    let extensionsDer = null;
    if (f[i] && f[i].tag === 0xa3) {
        const seq = expect(children(der, f[i])[0], 0x30, 'extensions');
        extensionsDer = whole(der, seq);
        for (const e of children(der, seq)) {
            const parts = children(der, expect(e, 0x30, 'extension'));
            const oid = oidText(content(der, expect(parts[0], 0x06, 'extnID')));
            let critical = false;
            let k = 1;
            if (parts[k] && parts[k].tag === 0x01) {
                critical = content(der, parts[k])[0] === 0xff;
                k++;
            }
            const value = content(der, expect(parts[k], 0x04, 'extnValue'));
            if (extensions.some((x) => x.oid === oid)) throw new DerError(`extension ${oid} twice`);
            extensions.push({ oid, critical, value });
        }
        i++;
    }
    if (i !== f.length) throw new DerError('unexpected field in tbsCertificate');
    const spki = children(der, spkiNode);
    const alg = children(der, expect(spki[0], 0x30, 'algorithm'));
    const keyOid = oidText(content(der, expect(alg[0], 0x06, 'algorithm')));
    const curveOid = alg[1] && alg[1].tag === 0x06 ? oidText(content(der, alg[1])) : null;
    const sigOid = oidText(content(der, expect(children(der, sigAlg)[0], 0x06, 'signatureAlgorithm')));
    const issuer = nameParts(der, issuerNode);
    const subject = nameParts(der, subjectNode);
    return {
        der,
        version,
        serial: hex(serial),
        issuer,
        subject,
        issuerText: nameText(issuer),
        subjectText: nameText(subject),
        notBefore: timeValue(der, validity[0]),
        notAfter: timeValue(der, validity[1]),
        spki: whole(der, spkiNode),
        keyAlgorithm: keyOid === OID_RSA ? 'RSA' : keyOid === OID_EC ? (curveOid === OID_SM2_CURVE ? 'SM2' : 'EC') : keyOid,
        curve: curveOid ? CURVES[curveOid] || curveOid : null,
        signatureAlgorithm: SIG_ALGS[sigOid] || sigOid,
        signatureOid: sigOid,
        tbs: whole(der, tbs),
        signature: content(der, sigVal).subarray(1),
        extensions,
        extensionsDer,
        issuerDer: whole(der, issuerNode),
        serialDer: whole(der, serialNode),
    };
}

// 'YYYYMMDDHHMMSSZ' → ms since the epoch.
function timeMs(t) {
    return Date.UTC(+t.slice(0, 4), +t.slice(4, 6) - 1, +t.slice(6, 8), +t.slice(8, 10), +t.slice(10, 12), +t.slice(12, 14));
}

/* ---------- certificate information (SOF_GetCertInfo, SOF_GetCertInfoByOid) ---------- */

const EXT = {
    AKI: '2.5.29.35', SKI: '2.5.29.14', KU: '2.5.29.15', PKUP: '2.5.29.16', POLICIES: '2.5.29.32',
    MAPPINGS: '2.5.29.33', BC: '2.5.29.19', PC: '2.5.29.36', EKU: '2.5.29.37', CRLDP: '2.5.29.31',
    NETSCAPE: '2.16.840.1.113730.1.1',
};
const KNOWN_EXT = new Set([...Object.values(EXT), '2.5.29.17', '2.5.29.18', '1.3.6.1.5.5.7.1.1']);
const KU_NAMES = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement',
    'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'];

function bitNames(v, names) {
    const b = content(v, expect(tlv(v, 0), 0x03, 'bit string'));
    const out = [];
    for (let i = 0; i < names.length; i++) if (b[1 + (i >> 3)] & (0x80 >> (i & 7))) out.push(names[i]);
    return out;
}

// The text SOF_GetCertInfo gives for one extension type; '' when the certificate has none.
function extensionInfo(c, type) {
    const get = (oid) => c.extensions.find((e) => e.oid === oid);
    const b64 = (e) => (e ? toBase64(e.value) : '');
    switch (type) {
        case SGD_CERT.EXT_AUTHORITYKEYIDENTIFIER: {
            const e = get(EXT.AKI);
            if (!e) return '';
            const id = children(e.value, tlv(e.value, 0)).find((n) => n.tag === 0x80);
            return id ? hex(content(e.value, id)) : '';
        }
        case SGD_CERT.EXT_SUBJECTKEYIDENTIFIER: {
            const e = get(EXT.SKI);
            return e ? hex(content(e.value, expect(tlv(e.value, 0), 0x04, 'keyIdentifier'))) : '';
        }
        case SGD_CERT.EXT_KEYUSAGE: {
            const e = get(EXT.KU);
            return e ? bitNames(e.value, KU_NAMES).join(',') : '';
        }
        case SGD_CERT.EXT_BASICCONSTRAINTS: {
            const e = get(EXT.BC);
            if (!e) return '';
            const f = children(e.value, tlv(e.value, 0));
            const ca = f[0] && f[0].tag === 0x01 && content(e.value, f[0])[0] === 0xff;
            const len = f.find((n) => n.tag === 0x02);
            return `CA=${ca ? 'TRUE' : 'FALSE'}` + (len ? `,pathlen=${parseInt(hex(content(e.value, len)) || '0', 16)}` : '');
        }
        case SGD_CERT.EXT_CERTIFICATEPOLICIES: {
            const e = get(EXT.POLICIES);
            if (!e) return '';
            return children(e.value, tlv(e.value, 0))
                .map((p) => oidText(content(e.value, expect(children(e.value, p)[0], 0x06, 'policy'))))
                .join(',');
        }
        case SGD_CERT.EXT_EXTKEYUSAGE: {
            const e = get(EXT.EKU);
            if (!e) return '';
            return children(e.value, tlv(e.value, 0))
                .map((n) => oidText(content(e.value, expect(n, 0x06, 'key purpose'))))
                .join(',');
        }
        case SGD_CERT.EXT_CRLDISTRIBUTIONPOINTS: {
            const e = get(EXT.CRLDP);
            if (!e) return '';
            // Every URI (GeneralName [6]) anywhere in the distribution points.
            const uris = [];
            const walk = (n) => {
                if (n.tag === 0x86) uris.push(String.fromCharCode(...content(e.value, n)));
                else if (n.tag & 0x20) children(e.value, n).forEach(walk);
            };
            walk(tlv(e.value, 0));
            return uris.join(',');
        }
        // Decoded by few portals: the extension value, base64 DER, as is.
        case SGD_CERT.EXT_PRIVATEKEYUSAGEPERIOD:
            return b64(get(EXT.PKUP));
        case SGD_CERT.EXT_POLICYMAPPINGS:
            return b64(get(EXT.MAPPINGS));
        case SGD_CERT.EXT_POLICYCONSTRAINTS:
            return b64(get(EXT.PC));
        case SGD_CERT.EXT_NETSCAPE_CERT_TYPE:
            return b64(get(EXT.NETSCAPE));
        case SGD_CERT.EXT_SELFDEFINED_EXTENSION:
            return c.extensions
                .filter((e) => !KNOWN_EXT.has(e.oid))
                .map((e) => `${e.oid}=${toBase64(e.value)}`)
                .join(';');
        default:
            return null;
    }
}

const attr = (parts, type) => parts.filter((p) => p.type === type).map((p) => p.value).join(',');

// The name attributes SOF_GetCertInfo reports: type → [which name, attribute].
const NAME_ITEMS = {
    [SGD_CERT.ISSUER_CN]: ['issuer', 'CN'],
    [SGD_CERT.ISSUER_O]: ['issuer', 'O'],
    [SGD_CERT.ISSUER_OU]: ['issuer', 'OU'],
    [SGD_CERT.SUBJECT_CN]: ['subject', 'CN'],
    [SGD_CERT.SUBJECT_O]: ['subject', 'O'],
    [SGD_CERT.SUBJECT_OU]: ['subject', 'OU'],
    [SGD_CERT.SUBJECT_EMAIL]: ['subject', 'emailAddress'],
};

/**
 * SOF_GetCertInfo's answer for a parsed certificate and a type code: a string ('' when the
 * certificate does not have that item), or throws SOR_PARAMETERNOTSUPPORTEERR for an unknown type.
 */
export function certInfo(c, type) {
    if (Number.isInteger(type) && Object.prototype.hasOwnProperty.call(NAME_ITEMS, type)) {
        const [name, t] = NAME_ITEMS[type];
        return attr(c[name], t);
    }
    switch (type) {
        case SGD_CERT.VERSION:
            return `V${c.version}`;
        case SGD_CERT.SERIAL:
            return c.serial;
        case SGD_CERT.ISSUER:
            return c.issuerText;
        case SGD_CERT.SUBJECT:
            return c.subjectText;
        case SGD_CERT.VALID_TIME:
            return `${c.notBefore}-${c.notAfter}`;
        case SGD_CERT.NOTBEFORE_TIME:
            return c.notBefore;
        case SGD_CERT.NOTAFTER_TIME:
            return c.notAfter;
        case SGD_CERT.DER_PUBLIC_KEY:
            return toBase64(c.spki);
        case SGD_CERT.DER_EXTENSIONS:
            return c.extensionsDer ? toBase64(c.extensionsDer) : '';
        case SGD_CERT.SIGNATURE_ALG:
            return c.signatureAlgorithm;
        case SGD_CERT.PUBKEY_ALG:
            return c.keyAlgorithm;
        default: {
            let v;
            try {
                v = Number.isInteger(type) ? extensionInfo(c, type) : null;
            } catch (e) {
                // An extension whose value does not decode: the certificate is damaged.
                throw fail('CERT_INVALID', SOR.CERTENCODEERR, `extension value: ${e.message}`);
            }
            if (v === null) throw fail('INVALID_PARAMS', SOR.PARAMETERNOTSUPPORTEERR, `unknown certificate information type ${type}`);
            return v;
        }
    }
}

/**
 * SOF_GetCertInfoByOid's answer: the extension with that OID (its value as text when it is one
 * DER string — the usual form of the private extensions of Chinese CAs, e.g. an identity number —
 * else the value's DER in base64), else the subject attributes with that OID; '' when neither.
 */
export function certInfoByOid(c, oid) {
    if (typeof oid !== 'string' || !/^[0-2](\.\d+)+$/.test(oid)) throw fail('INVALID_PARAMS', SOR.INDATAERR, 'oid must be a dotted OID');
    const e = c.extensions.find((x) => x.oid === oid);
    if (e) {
        try {
            const n = tlv(e.value, 0);
            if (n.end === e.value.length) {
                const s = stringValue(e.value, n);
                if (s !== null) return s;
            }
        } catch {
            /* not a single TLV: the raw value below */
        }
        return toBase64(e.value);
    }
    return c.subject.filter((p) => p.oid === oid).map((p) => p.value).join(',');
}

/* ---------- DER writing (for EnvelopedData) ---------- */

function der(tag, ...parts) {
    const body = concat(...parts);
    const n = body.length;
    const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
    return concat(Uint8Array.of(tag, ...len), body);
}

function concat(...parts) {
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
        out.set(p, o);
        o += p.length;
    }
    return out;
}

function oidDer(text) {
    const arcs = text.split('.').map(BigInt);
    const out = [40n * arcs[0] + arcs[1], ...arcs.slice(2)].flatMap((v) => {
        const b = [Number(v & 0x7fn)];
        for (v >>= 7n; v > 0n; v >>= 7n) b.unshift(Number(v & 0x7fn) | 0x80);
        return b;
    });
    return der(0x06, Uint8Array.from(out));
}

const seq = (...p) => der(0x30, ...p);
const int = (n) => der(0x02, Uint8Array.of(n));
const octets = (b) => der(0x04, b);

/* ---------- WebCrypto helpers ---------- */

function subtle() {
    const c = globalThis.crypto;
    if (!c || !c.subtle) throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, 'WebCrypto is not available (the page must be a secure context)');
    return c.subtle;
}

const HASHES = { 'SHA-256': 'SHA-256', 'SHA-384': 'SHA-384', 'SHA-512': 'SHA-512' };

// An ECDSA signature in DER (SEQUENCE of two INTEGERs) → r || s of the curve's size (WebCrypto's form).
function ecdsaRaw(sig, size) {
    const s = expect(tlv(sig, 0), 0x30, 'ECDSA signature');
    if (s.end !== sig.length) throw new DerError('trailing bytes');
    const [r, v, extra] = children(sig, s);
    if (extra) throw new DerError('bad ECDSA signature');
    const out = new Uint8Array(size * 2);
    [r, v].forEach((n, i) => {
        let b = content(sig, expect(n, 0x02, 'ECDSA integer'));
        while (b.length > 1 && b[0] === 0) b = b.subarray(1);
        if (b.length > size) throw new DerError('ECDSA integer too long');
        out.set(b, i * size + size - b.length);
    });
    return out;
}

const CURVE_BYTES = { 'P-256': 32, 'P-384': 48, 'P-521': 66 };

// Verifies a signature over data with the certificate's key (RSA PKCS#1 v1.5 or ECDSA).
async function verifyWithCert(c, hash, data, signature) {
    const s = subtle();
    if (c.keyAlgorithm === 'RSA') {
        const key = await s.importKey('spki', c.spki, { name: 'RSASSA-PKCS1-v1_5', hash }, false, ['verify']);
        return s.verify('RSASSA-PKCS1-v1_5', key, signature, data);
    }
    if (c.keyAlgorithm === 'EC' && CURVE_BYTES[c.curve]) {
        const key = await s.importKey('spki', c.spki, { name: 'ECDSA', namedCurve: c.curve }, false, ['verify']);
        let raw;
        try {
            raw = ecdsaRaw(signature, CURVE_BYTES[c.curve]);
        } catch {
            return false;
        }
        return s.verify({ name: 'ECDSA', hash }, key, raw, data);
    }
    throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, `${c.keyAlgorithm} ${c.curve || ''} signatures cannot be checked in the page (WebCrypto has no SM2)`);
}

// The hash of a certificate's own signature algorithm, for checking it with its issuer's key.
const CERT_SIG_HASH = {
    '1.2.840.113549.1.1.11': 'SHA-256', '1.2.840.113549.1.1.12': 'SHA-384', '1.2.840.113549.1.1.13': 'SHA-512',
    '1.2.840.10045.4.3.2': 'SHA-256', '1.2.840.10045.4.3.3': 'SHA-384', '1.2.840.10045.4.3.4': 'SHA-512',
};

/* ---------- EnvelopedData (SOF_EncryptData) ---------- */

const OID = {
    data: '1.2.840.113549.1.7.1',
    envelopedData: '1.2.840.113549.1.7.3',
    aes256cbc: '2.16.840.1.101.3.4.1.42',
    aes256wrap: '2.16.840.1.101.3.4.1.45',
    rsaEncryption: OID_RSA,
    ecPublicKey: OID_EC,
    // dhSinglePass-stdDH-sha256kdf-scheme (RFC 5753 / SEC 1)
    ecdhSha256: '1.3.132.1.11.1',
    // GM/T 0006: sm2-3 (SM2 encryption), SM4-CBC.
    sm2Encrypt: '1.2.156.10197.1.301.3',
    sm4Cbc: '1.2.156.10197.1.104.2',
};

function randomBytes(n) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 65536) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
    return out;
}

function bigFrom(b) {
    return b.length ? BigInt('0x' + hex(b)) : 0n;
}

function modPow(base, exp, mod) {
    let r = 1n;
    base %= mod;
    for (; exp > 0n; exp >>= 1n) {
        if (exp & 1n) r = (r * base) % mod;
        base = (base * base) % mod;
    }
    return r;
}

// The public key of a certificate: the bytes of its SubjectPublicKeyInfo's BIT STRING (an
// RSAPublicKey, or an EC/SM2 point).
function publicKeyBits(c) {
    const spki = children(c.spki, tlv(c.spki, 0));
    const bits = content(c.spki, expect(spki[1], 0x03, 'public key'));
    if (bits[0] !== 0) throw new DerError('public key BIT STRING with unused bits');
    return bits.subarray(1);
}

// RSAES-PKCS1-v1_5 encryption of the content key (RFC 8017 7.2.1). WebCrypto offers only
// RSA-OAEP, and ukeyd (like most SOF deployments) unwraps PKCS#1 v1.5, so the public-key
// operation is done here with BigInt: it involves no secret of the key's owner.
function rsaPkcs1Encrypt(c, msg) {
    const pub = publicKeyBits(c);
    const [nNode, eNode] = children(pub, expect(tlv(pub, 0), 0x30, 'RSAPublicKey'));
    const n = bigFrom(content(pub, expect(nNode, 0x02, 'modulus')));
    const e = bigFrom(content(pub, expect(eNode, 0x02, 'exponent')));
    const k = Math.ceil(n.toString(16).length / 2);
    if (msg.length > k - 11) throw fail('INVALID_PARAMS', SOR.INDATALENERR, 'RSA key too small');
    const ps = randomBytes(k - 3 - msg.length);
    for (let i = 0; i < ps.length; i++) while (ps[i] === 0) ps[i] = randomBytes(1)[0];
    const em = concat(Uint8Array.of(0, 2), ps, Uint8Array.of(0), msg);
    const m = bigFrom(em);
    const out = modPow(m, e, n).toString(16).padStart(k * 2, '0');
    return Uint8Array.from(out.match(/../g), (h) => parseInt(h, 16));
}

// IssuerAndSerialNumber of a certificate.
const issuerAndSerial = (c) => seq(c.issuerDer, c.serialDer);

/*
 * A GM/T 0010 SignedData (PKCS#7 content types, SM3 1.2.156.10197.1.401, SM2-with-SM3
 * 1.2.156.10197.1.501) without signed attributes and without content: the SM2 signature sig
 * (DER SEQUENCE { r, s }) over the data itself, by the certificate c, for verify.cms to check
 * with the data given as detached content.
 */
function sm2SignedData(c, sig) {
    const sm3 = seq(oidDer('1.2.156.10197.1.401'));
    const signerInfo = seq(int(1), issuerAndSerial(c), sm3, seq(oidDer('1.2.156.10197.1.501')), octets(sig));
    const sd = seq(int(1), der(0x31, sm3), seq(oidDer(OID.data)), der(0xa0, c.der), der(0x31, signerInfo));
    return seq(oidDer('1.2.840.113549.1.7.2'), der(0xa0, sd));
}

/**
 * A CMS EnvelopedData (RFC 5652) of data for the certificate's key. RSA and EC: content
 * AES-256-CBC; RSA — KeyTransRecipientInfo, PKCS#1 v1.5; EC P-256/P-384 — KeyAgreeRecipientInfo,
 * ephemeral-static ECDH, X9.63 KDF with SHA-256, AES-256 key wrap (RFC 5753). SM2 — the GM/T 0010
 * envelope (with PKCS#7 content-type OIDs, as ukeyd's decrypt.cms reads): KeyTransRecipientInfo,
 * key encryption sm2-3 (1.2.156.10197.1.301.3) with the 16-byte SM4 key as a GM/T 0009 SM2Cipher,
 * content SM4-CBC (1.2.156.10197.1.104.2, the IV as parameter). Returns the DER.
 */
export async function envelope(c, data) {
    if (c.keyAlgorithm === 'SM2') {
        const cek = randomBytes(16);
        const iv = randomBytes(16);
        let wrapped;
        try {
            wrapped = sm2CipherDer(sm2Encrypt(publicKeyBits(c), cek));
        } catch (e) {
            throw fail('CERT_INVALID', SOR.CERTENCODEERR, `the certificate's SM2 public key is not usable: ${e.message}`);
        }
        const ri = seq(int(0), issuerAndSerial(c), seq(oidDer(OID.sm2Encrypt)), octets(wrapped));
        const eci = seq(oidDer(OID.data), seq(oidDer(OID.sm4Cbc), octets(iv)), der(0x80, sm4CbcEncrypt(cek, iv, data)));
        return seq(oidDer(OID.envelopedData), der(0xa0, seq(int(0), der(0x31, ri), eci)));
    }
    const s = subtle();
    const cek = randomBytes(32);
    const iv = randomBytes(16);
    const aes = await s.importKey('raw', cek, 'AES-CBC', false, ['encrypt']);
    const encrypted = new Uint8Array(await s.encrypt({ name: 'AES-CBC', iv }, aes, data));
    let ri;
    let version;
    if (c.keyAlgorithm === 'RSA') {
        version = 0;
        ri = seq(int(0), issuerAndSerial(c), seq(oidDer(OID.rsaEncryption), der(0x05)), octets(rsaPkcs1Encrypt(c, cek)));
    } else if (c.keyAlgorithm === 'EC' && (c.curve === 'P-256' || c.curve === 'P-384')) {
        version = 2;
        const curve = { name: 'ECDH', namedCurve: c.curve };
        const recipient = await s.importKey('spki', c.spki, curve, false, []);
        const eph = await s.generateKey(curve, true, ['deriveBits']);
        const z = new Uint8Array(await s.deriveBits({ name: 'ECDH', public: recipient }, eph.privateKey, CURVE_BYTES[c.curve] * 8));
        const point = new Uint8Array(await s.exportKey('raw', eph.publicKey));
        const wrapAlg = seq(oidDer(OID.aes256wrap));
        // ECC-CMS-SharedInfo: keyInfo, suppPubInfo [2] = the KEK length in bits (256).
        const sharedInfo = seq(wrapAlg, der(0xa2, octets(Uint8Array.of(0, 0, 1, 0))));
        const kek = new Uint8Array(await s.digest('SHA-256', concat(z, Uint8Array.of(0, 0, 0, 1), sharedInfo)));
        const kekKey = await s.importKey('raw', kek, 'AES-KW', false, ['wrapKey']);
        const cekKey = await s.importKey('raw', cek, 'AES-CBC', true, ['encrypt']);
        const wrapped = new Uint8Array(await s.wrapKey('raw', cekKey, kekKey, 'AES-KW'));
        const originator = der(0xa0, der(0xa1, seq(oidDer(OID.ecPublicKey)), der(0x03, Uint8Array.of(0), point)));
        ri = der(0xa1, int(3), originator, seq(oidDer(OID.ecdhSha256), wrapAlg), seq(seq(issuerAndSerial(c), octets(wrapped))));
    } else {
        throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, `envelopes for ${c.keyAlgorithm} ${c.curve || ''} keys are not made in the page`);
    }
    const eci = seq(oidDer(OID.data), seq(oidDer(OID.aes256cbc), octets(iv)), der(0x80, encrypted));
    return seq(oidDer(OID.envelopedData), der(0xa0, seq(int(version), der(0x31, ri), eci)));
}

/* ---------- the user list ---------- */

const SEP_USER = '&&&';
const SEP_FIELD = '||';

/** certID of a certificate: the token id and the key, "piv:78003773/9a". */
export const certId = (token, key) => `${token}/${key}`;

/** certID → {token, key}, or null when it is not one. */
export function splitCertId(id) {
    if (typeof id !== 'string') return null;
    // At the first '/': token ids never hold one (docs/architecture.md), SKF key ids do
    // ("skf:SKF-A/sm2/sign").
    const i = id.indexOf('/');
    if (i <= 0 || i === id.length - 1) return null;
    return { token: id.slice(0, i), key: id.slice(i + 1) };
}

/** The list SOF_GetUserList returns: "name||certID&&&name||certID" ('' for none). */
export function formatUserList(users) {
    return users.map((u) => `${String(u.name).replace(/&&&|\|\|/g, ' ')}${SEP_FIELD}${u.id}`).join(SEP_USER);
}

/** The inverse of formatUserList: [{name, id}]. */
export function parseUserList(text) {
    if (!text) return [];
    return text.split(SEP_USER).map((u) => {
        const i = u.indexOf(SEP_FIELD);
        return i < 0 ? { name: u, id: '' } : { name: u.slice(0, i), id: u.slice(i + 2) };
    });
}

const SIGNING_KU = ['digitalSignature', 'nonRepudiation'];
const ENCRYPTION_KU = ['keyEncipherment', 'keyAgreement', 'dataEncipherment'];

// A cert.list entry that signs (the user's certificate): a key usage that allows signatures, or
// none at all (no restriction); never a CA.
const signsWith = (e) => !e.error && !e.is_ca && (!Array.isArray(e.key_usage) || !e.key_usage.length || e.key_usage.some((u) => SIGNING_KU.includes(u)));
// An encryption (exchange) certificate: its key usage is for encryption and not for signatures.
const encryptsWith = (e) => !e.error && !e.is_ca && Array.isArray(e.key_usage) && e.key_usage.some((u) => ENCRYPTION_KU.includes(u)) && !e.key_usage.some((u) => SIGNING_KU.includes(u));

function cnOf(e) {
    const cn = Array.isArray(e.subject_parts) && e.subject_parts.find((p) => p.type === 'CN');
    return cn ? cn.value : e.subject || e.key;
}

/* ---------- the module ---------- */

// The hash of each supported sign method. SM3_SM2 is GM/T 0003 SM2 with SM3 and the GM/T 0009
// default ID 1234567812345678 (ukeyd `sign` algorithm SM2-SM3; `sign.cms` hash SM3, GM/T 0010).
const SIGN_HASH = { [SGD_SIGN.SHA256_RSA]: 'SHA-256', [SGD_SIGN.SM3_SM2]: 'SM3' };

/**
 * The SOF functions on one connection to ukeyd. options: ukey (a connected Ukey; else connect()
 * on the first call with `connect`'s options), dataEncoding ('utf8': strings are text, the
 * default; 'base64': strings are base64 of the bytes, for portals that pass data that way),
 * trustedCAs (certificates, base64 DER or PEM, that SOF_ValidateCert accepts as issuers),
 * dialogFallback (true: a page PIN that ukeyd refuses by policy is dropped and ukeyd's dialog asks
 * instead), lang, and connect's options.
 */
export function createSof(options = {}) {
    const o = Object.assign({ dataEncoding: 'utf8', dialogFallback: true, trustedCAs: [] }, options);
    let ukey = o.ukey || null;
    let connecting = null;
    let signMethod = SGD_SIGN.SHA256_RSA;
    // Until SOF_SetSignMethod is called, the key's kind chooses: SM3_SM2 for an SM2 certificate
    // (as vendor controls do), SHA256_RSA for the others.
    let signMethodSet = false;
    let lastError = SOR.OK;
    // PINs that ukeyd accepted from this page (an origin whose policy has pin_from_page), by
    // certID, so that the calls after SOF_Login do not ask again, as with vendor controls.
    const pins = new Map();
    const trusted = (o.trustedCAs || []).map((c) => parseCertificate(c));

    const lang = () => (ukey && ukey.lang) || o.lang;
    async function conn() {
        if (ukey && !ukey.closed) return ukey;
        if (!connecting) connecting = connect(o).finally(() => (connecting = null));
        ukey = await connecting;
        return ukey;
    }

    // Input data: bytes as they are; strings as UTF-8 text or as base64 (dataEncoding).
    function bytesOf(v, what) {
        if (v instanceof Uint8Array) return v;
        if (v instanceof ArrayBuffer) return new Uint8Array(v);
        if (typeof v !== 'string') throw fail('INVALID_PARAMS', SOR.INDATAERR, `${what} must be a string or bytes`);
        if (o.dataEncoding === 'base64') {
            try {
                return fromBase64(v);
            } catch {
                throw fail('INVALID_PARAMS', SOR.INDATAERR, `${what} is not base64`);
            }
        }
        return new TextEncoder().encode(v);
    }

    // Output data in the same encoding as the input (text when it is valid UTF-8 in 'utf8' mode).
    function outOf(bytes) {
        if (o.dataEncoding === 'base64') return toBase64(bytes);
        try {
            return utf8(bytes);
        } catch {
            throw fail('INVALID_PARAMS', SOR.INDATAERR, 'the data is not UTF-8 text: use dataEncoding "base64"');
        }
    }

    // Base64 input (line breaks allowed, as vendor scripts often produce them), padded.
    const b64In = (v, what) => {
        const s = typeof v === 'string' ? v.replace(/\s+/g, '') : '';
        if (!s || s.length % 4 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw fail('INVALID_PARAMS', SOR.INDATAERR, `${what} must be base64`, lang());
        return s;
    };

    async function entries(token) {
        return (await conn()).certs({ token, der: true });
    }

    // The cert.list entry of a certID (SOR_CERTNOTFOUNTERR when there is none).
    async function userCert(id) {
        const ref = splitCertId(id);
        if (!ref) throw fail('CERT_NOT_FOUND', SOR.CERTNOTFOUNTERR, `not a certID: ${id}`, lang());
        const list = await entries(ref.token);
        const e = list.find((x) => x.key === ref.key && !x.error);
        if (!e) throw fail('CERT_NOT_FOUND', SOR.CERTNOTFOUNTERR, `no certificate ${id}`, lang());
        return { ref, entry: e, list };
    }

    // Runs fn(pin) with the cached page PIN, or the given one; when ukeyd refuses a page PIN by
    // policy and dialogFallback is on, again without it (ukeyd's dialog asks).
    async function withPin(id, given, fn) {
        const pin = given || pins.get(id);
        if (!pin) return fn(undefined);
        try {
            const r = await fn(pin);
            pins.set(id, pin);
            return r;
        } catch (e) {
            if (e instanceof UkeyError && e.reason === 'PIN_FROM_PAGE_DISABLED' && o.dialogFallback) return fn(undefined);
            if (e instanceof UkeyError && /^PIN_/.test(e.reason)) pins.delete(id);
            throw e;
        }
    }

    // The sign method for a key of this kind (keyAlgorithm 'RSA', 'EC', 'SM2'): SM2 signs with
    // SM3_SM2 only, and SM3_SM2 needs an SM2 key (SOR_ALGTYPEERR otherwise).
    function methodFor(keyAlgorithm) {
        const sm2 = keyAlgorithm === 'SM2';
        if (!signMethodSet) return sm2 ? SGD_SIGN.SM3_SM2 : signMethod;
        if (sm2 !== (signMethod === SGD_SIGN.SM3_SM2)) {
            throw fail('NOT_SUPPORTED', SOR.ALGTYPEERR,
                sm2 ? `an SM2 certificate signs with SGD_SM3_SM2, not 0x${signMethod.toString(16)}` : 'SGD_SM3_SM2 needs an SM2 certificate', lang());
        }
        return signMethod;
    }

    function signAlgorithm(entry) {
        const method = methodFor(entry.key_algorithm);
        if (method === SGD_SIGN.SM3_SM2) return 'SM2-SM3';
        const hash = SIGN_HASH[method];
        if (!hash) throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, `sign method 0x${signMethod.toString(16)} is not supported by ukeyd yet`, lang());
        const h = hash.replace('-', '');
        if (entry.key_algorithm === 'RSA') return `RSA-PKCS1-${h}`;
        if (entry.key_algorithm === 'EC') return `ECDSA-${h}`;
        throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, `${entry.key_algorithm} keys cannot sign through ukeyd yet`, lang());
    }

    // Wraps a SOF function: the standard's code in lastError, every rejection a SofError.
    const api = (fn, sorFor) =>
        async (...args) => {
            try {
                const r = await fn(...args);
                lastError = SOR.OK;
                return r;
            } catch (e) {
                const err = toSofError(e, sorFor ? sorFor(e) : undefined);
                lastError = err.sor;
                throw err;
            }
        };

    // A CMS refused as malformed is SOR_PKCS7ENCODEERR rather than "bad input".
    const cmsSor = (e) => (e && e.reason === 'INVALID_PARAMS' && e.data && e.data.field === 'cms' ? SOR.PKCS7ENCODEERR : undefined);

    const sof = {
        /** GM/T 0020 clause 7: the interface version (this module's version). */
        SOF_GetVersion: api(async () => SDK_VERSION),

        SOF_SetSignMethod: api(async (method) => {
            if (!Object.values(SGD_SIGN).includes(method)) throw fail('INVALID_PARAMS', SOR.ALGTYPEERR, `unknown sign method ${method}`, lang());
            if (!SIGN_HASH[method]) throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, `sign method 0x${method.toString(16)} is not supported by ukeyd yet`, lang());
            signMethod = method;
            signMethodSet = true;
            return true;
        }),

        SOF_GetSignMethod: api(async () => signMethod),

        SOF_GetLastError: () => lastError,

        SOF_GetUserList: api(async () => {
            const u = await conn();
            const users = [];
            for (const t of await u.tokens()) {
                if (!t.present || !t.id) continue;
                for (const e of await u.certs({ token: t.id })) if (signsWith(e)) users.push({ name: cnOf(e), id: certId(t.id, e.key) });
            }
            return formatUserList(users);
        }),

        SOF_ExportUserCert: api(async (id) => (await userCert(id)).entry.der),

        SOF_ExportExChangeUserCert: api(async (id) => {
            const { entry, list } = await userCert(id);
            // The encryption certificate of the same user: same subject first, else the key's only one.
            const enc = list.filter(encryptsWith);
            const mine = enc.find((e) => e.subject === entry.subject) || (enc.length === 1 ? enc[0] : null);
            if (!mine) throw fail('CERT_NOT_FOUND', SOR.CERTNOTFOUNTERR, `no encryption certificate next to ${id}`, lang());
            return mine.der;
        }),

        // ukeyd's pin.verify: the PIN checked (its dialog, or the page's PIN where policy allows)
        // and forgotten by the card at once; nothing is signed. Later calls ask again unless the
        // page keeps the PIN (pin_from_page origins, above).
        SOF_Login: api(async (id, pin) => {
            const { ref } = await userCert(id);
            await withPin(id, pin, async (p) => {
                const params = { token: ref.token };
                if (p) params.pin = p;
                return (await conn()).call('pin.verify', params, { timeoutMs: 0 });
            });
            return true;
        }),

        SOF_GetPinRetryCount: api(async (id) => {
            const { ref } = await userCert(id);
            const r = await (await conn()).call('pin.status', { token: ref.token });
            if (!Number.isInteger(r.retries_left)) throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, 'the key does not tell its PIN tries right now', lang());
            return r.retries_left;
        }),

        SOF_ChangePassWd: api(async (id, oldPin, newPin) => {
            const { ref } = await userCert(id);
            const u = await conn();
            const page = !!(oldPin || newPin);
            // ukeyd takes both page PINs or neither; one alone is a caller's mistake.
            if (page && !(typeof oldPin === 'string' && oldPin && typeof newPin === 'string' && newPin))
                throw fail('INVALID_PARAMS', SOR.INDATAERR, 'give both PINs or neither', lang());
            const run = (withPins) => u.call('pin.change', withPins ? { token: ref.token, old_pin: oldPin, new_pin: newPin } : { token: ref.token }, { timeoutMs: 0 });
            try {
                await run(page);
            } catch (e) {
                if (!(page && e.reason === 'PIN_FROM_PAGE_DISABLED' && o.dialogFallback)) throw e;
                await run(false);
            }
            pins.delete(id);
            return true;
        }),

        SOF_GetCertInfo: api(async (cert, type) => certInfo(parseCertificate(cert), type)),

        SOF_GetCertInfoByOid: api(async (cert, oid) => certInfoByOid(parseCertificate(cert), oid)),

        // 0 when the certificate is well-formed, within its validity period now, and signed by one
        // of trustedCAs; else a SofError. Revocation is not checked (the page has no CRL or OCSP
        // access of its own): that stays with the portal's server.
        SOF_ValidateCert: api(async (cert) => {
            const c = parseCertificate(cert);
            const now = Date.now();
            // As the daemon would say it (errorFromRpc adds the date to the messages).
            const dated = (reason, data) => toSofError(errorFromRpc({ data: Object.assign({ reason }, data) }, lang()));
            if (now < timeMs(c.notBefore)) throw dated('NOT_YET_VALID', { not_before: isoOf(c.notBefore) });
            if (now > timeMs(c.notAfter)) throw dated('CERT_EXPIRED', { not_after: isoOf(c.notAfter) });
            if (!trusted.length) throw fail('CHAIN_INVALID', SOR.CTLNOTFOUND, 'no trustedCAs configured', lang());
            for (const ca of trusted) {
                if (!sameBytes(ca.der && nameDer(ca), c.issuerDer)) continue;
                const hash = CERT_SIG_HASH[c.signatureOid];
                if (!hash) throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, `${c.signatureAlgorithm} certificate signatures cannot be checked in the page`, lang());
                if (await verifyWithCert(ca, hash, c.tbs, c.signature)) return 0;
            }
            throw fail('CHAIN_INVALID', SOR.CERTINVALIDERR, 'not issued by a trusted CA', lang());
        }),

        SOF_SignData: api(async (id, data) => {
            const { ref, entry } = await userCert(id);
            const algorithm = signAlgorithm(entry);
            const bytes = bytesOf(data, 'InData');
            const r = await withPin(id, undefined, async (p) => {
                const params = { token: ref.token, key: ref.key, algorithm, data: toBase64(bytes) };
                if (p) params.pin = p;
                return (await conn()).call('sign', params, { timeoutMs: 0 });
            });
            return r.signature;
        }),

        SOF_VerifySignedData: api(async (cert, data, signature) => {
            const c = parseCertificate(cert);
            const method = methodFor(c.keyAlgorithm);
            const bytes = bytesOf(data, 'InData');
            const sig = fromBase64(b64In(signature, 'SignValue'));
            if (method === SGD_SIGN.SM3_SM2) {
                // WebCrypto has no SM2: ukeyd checks it, as a SignedData without signed attributes
                // (the signature over the data itself) around the certificate.
                try {
                    await (await conn()).call('verify.cms', { cms: toBase64(sm2SignedData(c, sig)), content: toBase64(bytes) });
                } catch (e) {
                    if (e instanceof UkeyError && (e.reason === 'SIGNATURE_INVALID' || e.reason === 'INVALID_PARAMS')) {
                        throw fail('SIGNATURE_INVALID', SOR.VERIFYSIGNDATAERR, null, lang());
                    }
                    throw e;
                }
                return true;
            }
            const ok = await verifyWithCert(c, SIGN_HASH[method], bytes, sig);
            if (!ok) throw fail('SIGNATURE_INVALID', SOR.VERIFYSIGNDATAERR, null, lang());
            return true;
        }),

        // dwFlag 0: the data inside the SignedData (attached); 1: detached.
        SOF_SignMessage: api(async (flag, id, data) => {
            if (flag !== 0 && flag !== 1) throw fail('INVALID_PARAMS', SOR.INDATAERR, 'dwFlag must be 0 (attached) or 1 (detached)', lang());
            const { ref, entry } = await userCert(id);
            signAlgorithm(entry); // the same refusals as SOF_SignData, before any dialog
            const hash = SIGN_HASH[methodFor(entry.key_algorithm)]; // SM2: SM3 (GM/T 0010)
            const bytes = bytesOf(data, 'InData');
            const r = await withPin(id, undefined, async (p) => {
                const params = { token: ref.token, key: ref.key, data: toBase64(bytes), hash, detached: flag === 1 };
                if (p) params.pin = p;
                return (await conn()).call('sign.cms', params, { timeoutMs: 0 });
            });
            return r.cms;
        }, cmsSor),

        // InData: the signed data for a detached SignedData, '' for an attached one.
        SOF_VerifySignedMessage: api(async (message, data) => {
            const params = { cms: b64In(message, 'MessageData') };
            if (data !== undefined && data !== null && data !== '') params.content = toBase64(bytesOf(data, 'InData'));
            await (await conn()).call('verify.cms', params);
            return true;
        }, cmsSor),

        SOF_EncryptData: api(async (cert, data) => {
            const c = parseCertificate(cert);
            return toBase64(await envelope(c, bytesOf(data, 'InData')));
        }),

        SOF_DecryptData: api(async (id, envelopeB64) => {
            const { ref } = await userCert(id);
            const cms = b64In(envelopeB64, 'InData');
            const r = await withPin(id, undefined, async (p) => {
                const params = { token: ref.token, cms };
                if (p) params.pin = p;
                return (await conn()).call('decrypt.cms', params, { timeoutMs: 0 });
            });
            return outOf(fromBase64(r.content));
        }, cmsSor),

        // From the browser's CSPRNG: ukeyd has no random method (docs/protocol.md, "Random bytes").
        SOF_GenRandom: api(async (len) => {
            if (!Number.isInteger(len) || len < 1 || len > 1048576) throw fail('INVALID_PARAMS', SOR.INDATALENERR, 'RandomLen must be 1..1048576', lang());
            return toBase64(randomBytes(len));
        }),

        SOF_GetDeviceInfo: api(async (id, type) => {
            const ref = splitCertId(id);
            if (!ref) throw fail('CERT_NOT_FOUND', SOR.CERTNOTFOUNTERR, `not a certID: ${id}`, lang());
            const t = (await (await conn()).tokens()).find((x) => x.id === ref.token && x.present);
            if (!t) throw fail('NO_TOKEN', SOR.APPNOTFOUNDERR, `no key ${ref.token}`, lang());
            const v = { [SGD_DEVICE.SORT]: t.driver, [SGD_DEVICE.TYPE]: t.model, [SGD_DEVICE.NAME]: t.label, [SGD_DEVICE.SERIAL_NUMBER]: t.serial }[type];
            // The rest (manufacturer, versions, capabilities) is not in token.list.
            if (typeof v !== 'string') throw fail('NOT_SUPPORTED', SOR.NOTSUPPORTYETERR, `device information ${type} is not known to ukeyd`, lang());
            return v;
        }),
    };
    Object.defineProperty(sof, 'ukey', { get: () => ukey });
    sof.close = () => ukey && ukey.close();
    return sof;
}

function isoOf(t) {
    return `${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(8, 10)}:${t.slice(10, 12)}:${t.slice(12, 14)}Z`;
}

// The DER of a parsed certificate's subject (to match a child's issuer byte for byte).
function nameDer(c) {
    const top = tlv(c.der, 0);
    const f = children(c.der, children(c.der, top)[0]);
    const i = f[0].tag === 0xa0 ? 1 : 0;
    return whole(c.der, f[i + 4]);
}

function sameBytes(a, b) {
    if (!a || !b || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
}
