// The GM/T 0020 module of the SDK (extension/sdk/sof.js) without a browser: certificate parsing
// against certificates made by openssl (RSA, P-256 issued by a CA, SM2 from the demo portal's SM2
// CA) and checked against openssl's and node:crypto's reading of them; malformed DER refused;
// envelopes made in the page decrypted by `openssl cms -decrypt` (SM2 ones taken apart and opened
// with `openssl pkeyutl -decrypt` and node:crypto SM4-CBC); signatures checked in the page;
// the user list format; the reason → SOR table; the SOF functions against a fake daemon (which
// methods with which params, page PIN falling back to the dialog, the standard's error codes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Ukey, knownReasons, toBase64, fromBase64 } from '../../extension/sdk/ukey.js';
import {
    createSof, parseCertificate, certInfo, certInfoByOid, SGD_CERT, SGD_DEVICE, SGD_SIGN, SOR, SOR_REASONS, sorOf, sorName,
    SofError, formatUserList, parseUserList, splitCertId, certId,
} from '../../extension/sdk/sof.js';
import { FakeTransport } from './fake.mjs';

// Node 18 has WebCrypto only as crypto.webcrypto; browsers and Node 20 have the global.
if (!globalThis.crypto) globalThis.crypto = crypto.webcrypto;

const require = createRequire(import.meta.url);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uk-sof-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const f = (name) => path.join(dir, name);
const openssl = (args, input) => execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
const derOf = (pemFile) => new Uint8Array(crypto.X509Certificate ? new crypto.X509Certificate(fs.readFileSync(pemFile)).raw : []);
const rejection = (p) => p.then((v) => assert.fail(`resolved ${JSON.stringify(v)}`), (e) => e);

// openssl's own reading of a certificate field (dates as YYYYMMDDHHMMSSZ, serial in hex).
function opensslField(pem, opt) {
    const out = openssl(['x509', '-noout', opt, '-in', pem]).trim();
    return out.slice(out.indexOf('=') + 1);
}
const asn1Date = (s) => new Date(s).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

/* ---------- certificates made with openssl ---------- */

const ID_OID = '1.2.156.10260.4.1.1';
const ID_NUMBER = '110101199001011234';

// A self-signed RSA-2048 certificate with a Chinese subject, every extension type the module
// decodes, and a private extension holding a UTF8String.
openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('rsa.key'), '-out', f('rsa.pem'), '-days', '30', '-utf8',
    '-subj', '/C=CN/ST=北京/O=NHSA/OU=信息中心/OU=Dept B/CN=张三/emailAddress=zhang.san@example.cn',
    '-addext', 'keyUsage=critical,digitalSignature,nonRepudiation',
    '-addext', 'extendedKeyUsage=clientAuth,emailProtection',
    '-addext', 'crlDistributionPoints=URI:http://crl.example.cn/a.crl',
    '-addext', 'certificatePolicies=1.2.156.112562.2.1.1.1',
    '-addext', `${ID_OID}=ASN1:UTF8String:${ID_NUMBER}`,
    '-addext', '1.2.3.4.5=DER:01020304']);
// A certificate whose key usage extension holds a NULL instead of a BIT STRING.
openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('badku.key'), '-out', f('badku.pem'),
    '-days', '30', '-subj', '/CN=bad key usage', '-addext', '2.5.29.15=DER:0500']);

// An EC P-256 CA and a P-256 end-entity certificate it issued (AKI, SKI, basic constraints).
openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'),
    '-days', '30', '-subj', '/C=CN/O=Test CA Org/CN=Test EC CA', '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ec.key'), '-out', f('ec.csr'),
    '-utf8', '-subj', '/C=CN/O=Org/CN=李四']);
fs.writeFileSync(f('ec.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyAgreement,keyEncipherment\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
openssl(['x509', '-req', '-in', f('ec.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-set_serial', '0x00A1B2C3D4E5F60718', '-days', '10',
    '-extfile', f('ec.ext'), '-out', f('ec.pem')]);
// A certificate that is not valid yet (openssl x509 -not_before needs 3.4; ca does it everywhere).
fs.writeFileSync(f('later.cnf'), `[ca]\ndefault_ca=d\n[d]\ndatabase=${f('index')}\nnew_certs_dir=${dir}\nserial=${f('serial')}\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n`);
fs.writeFileSync(f('index'), '');
fs.writeFileSync(f('serial'), '1000\n');
openssl(['ca', '-batch', '-config', f('later.cnf'), '-in', f('ec.csr'), '-cert', f('ca.pem'), '-keyfile', f('ca.key'),
    '-startdate', '20991231000000Z', '-enddate', '21001231000000Z', '-out', f('later.pem'), '-notext']);

const b64 = (pem) => toBase64(derOf(pem));
const hex = (b) => Buffer.from(b).toString('hex');

/* ---------- parsing ---------- */

test('RSA certificate: every field against openssl and node:crypto', () => {
    const pem = f('rsa.pem');
    const x = new crypto.X509Certificate(fs.readFileSync(pem));
    const c = parseCertificate(b64(pem));
    const info = (t) => certInfo(c, t);
    assert.equal(info(SGD_CERT.VERSION), 'V3');
    assert.equal(info(SGD_CERT.SERIAL), opensslField(pem, '-serial'));
    assert.equal(info(SGD_CERT.SUBJECT), 'emailAddress=zhang.san@example.cn,CN=张三,OU=Dept B,OU=信息中心,O=NHSA,ST=北京,C=CN');
    assert.equal(info(SGD_CERT.ISSUER), info(SGD_CERT.SUBJECT), 'self-signed');
    assert.equal(info(SGD_CERT.SUBJECT_CN), '张三');
    assert.equal(info(SGD_CERT.SUBJECT_O), 'NHSA');
    assert.equal(info(SGD_CERT.SUBJECT_OU), '信息中心,Dept B');
    assert.equal(info(SGD_CERT.SUBJECT_EMAIL), 'zhang.san@example.cn');
    assert.equal(info(SGD_CERT.ISSUER_CN), '张三');
    assert.equal(info(SGD_CERT.NOTBEFORE_TIME), asn1Date(x.validFrom));
    assert.equal(info(SGD_CERT.NOTAFTER_TIME), asn1Date(x.validTo));
    assert.equal(info(SGD_CERT.VALID_TIME), `${asn1Date(x.validFrom)}-${asn1Date(x.validTo)}`);
    assert.equal(info(SGD_CERT.DER_PUBLIC_KEY), x.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'));
    assert.equal(info(SGD_CERT.SIGNATURE_ALG), 'sha256WithRSAEncryption');
    assert.equal(info(SGD_CERT.PUBKEY_ALG), 'RSA');
    assert.equal(info(SGD_CERT.EXT_KEYUSAGE), 'digitalSignature,nonRepudiation');
    assert.equal(info(SGD_CERT.EXT_EXTKEYUSAGE), '1.3.6.1.5.5.7.3.2,1.3.6.1.5.5.7.3.4');
    assert.equal(info(SGD_CERT.EXT_CRLDISTRIBUTIONPOINTS), 'http://crl.example.cn/a.crl');
    assert.equal(info(SGD_CERT.EXT_CERTIFICATEPOLICIES), '1.2.156.112562.2.1.1.1');
    // openssl req adds a subject key identifier: the same bytes as openssl prints.
    const ski = openssl(['x509', '-noout', '-ext', 'subjectKeyIdentifier', '-in', pem]).split('\n')[1].trim().replace(/:/g, '');
    assert.equal(info(SGD_CERT.EXT_SUBJECTKEYIDENTIFIER), ski);
    assert.equal(info(SGD_CERT.EXT_SELFDEFINED_EXTENSION), `${ID_OID}=${Buffer.from(`0c12${Buffer.from(ID_NUMBER).toString('hex')}`, 'hex').toString('base64')};1.2.3.4.5=AQIDBA==`);
    assert.equal(info(SGD_CERT.EXT_POLICYMAPPINGS), '', 'absent: empty string');
    // DER_EXTENSIONS is the Extensions SEQUENCE: openssl reads it back with every extension in it.
    fs.writeFileSync(f('ext.der'), Buffer.from(info(SGD_CERT.DER_EXTENSIONS), 'base64'));
    const parsed = openssl(['asn1parse', '-inform', 'DER', '-in', f('ext.der')]);
    assert.match(parsed, /^ +0:d=0 +hl=\d+ l= *\d+ cons: SEQUENCE/);
    for (const name of ['X509v3 Key Usage', 'X509v3 Extended Key Usage', 'X509v3 CRL Distribution Points', ID_OID, '1.2.3.4.5'])
        assert.ok(parsed.includes(name), `${name} in\n${parsed}`);
    // By OID: a private extension holding a string gives the text; a non-string value base64; a
    // subject attribute; nothing: ''.
    assert.equal(certInfoByOid(c, ID_OID), ID_NUMBER);
    assert.equal(certInfoByOid(c, '1.2.3.4.5'), 'AQIDBA==');
    assert.equal(certInfoByOid(c, '2.5.4.3'), '张三');
    assert.equal(certInfoByOid(c, '1.2.3.9'), '');
    assert.throws(() => certInfoByOid(c, 'CN'), (e) => e instanceof SofError && e.sor === SOR.INDATAERR);
    // Unknown type codes: the standard's "parameter not supported".
    for (const t of [0, 3, 4, 0x37, 0x200, 'SUBJECT']) assert.throws(() => info(t), (e) => e.sor === SOR.PARAMETERNOTSUPPORTEERR && e.sorName === 'SOR_PARAMETERNOTSUPPORTEERR', String(t));
});

test('P-256 certificate issued by a CA: serial with its sign byte, AKI/SKI, basic constraints, a PEM input', () => {
    const c = parseCertificate(fs.readFileSync(f('ec.pem'), 'utf8'));
    assert.equal(certInfo(c, SGD_CERT.SERIAL), 'A1B2C3D4E5F60718');
    assert.equal(certInfo(c, SGD_CERT.SUBJECT), 'CN=李四,O=Org,C=CN');
    assert.equal(certInfo(c, SGD_CERT.ISSUER), 'CN=Test EC CA,O=Test CA Org,C=CN');
    assert.equal(certInfo(c, SGD_CERT.ISSUER_O), 'Test CA Org');
    assert.equal(certInfo(c, SGD_CERT.SUBJECT_EMAIL), '');
    assert.equal(certInfo(c, SGD_CERT.SIGNATURE_ALG), 'ecdsa-with-SHA256');
    assert.equal(certInfo(c, SGD_CERT.PUBKEY_ALG), 'EC');
    assert.equal(c.curve, 'P-256');
    assert.equal(certInfo(c, SGD_CERT.EXT_BASICCONSTRAINTS), 'CA=FALSE');
    assert.equal(certInfo(parseCertificate(b64(f('ca.pem'))), SGD_CERT.EXT_BASICCONSTRAINTS), 'CA=TRUE,pathlen=0');
    assert.equal(certInfo(c, SGD_CERT.EXT_KEYUSAGE), 'keyEncipherment,keyAgreement');
    const caSki = certInfo(parseCertificate(b64(f('ca.pem'))), SGD_CERT.EXT_SUBJECTKEYIDENTIFIER);
    assert.ok(caSki.length === 40, caSki);
    assert.equal(certInfo(c, SGD_CERT.EXT_AUTHORITYKEYIDENTIFIER), caSki, "the AKI is the CA's SKI");
});

test('SM2 certificate of the demo portal\'s SM2 CA (SM3 signature)', async () => {
    const { TestCa } = require(path.join(ROOT, 'examples/portal/ca.js'));
    const ca = new TestCa({ dir: f('portal-ca') });
    await ca.init();
    await ca.initSm2();
    const pem = ca.sm2CertPath;
    const c = parseCertificate(fs.readFileSync(pem, 'utf8'));
    assert.equal(certInfo(c, SGD_CERT.PUBKEY_ALG), 'SM2');
    assert.equal(certInfo(c, SGD_CERT.SIGNATURE_ALG), 'SM3WithSM2');
    assert.equal(certInfo(c, SGD_CERT.SUBJECT_CN), 'ukeyd Demo Portal SM2 CA');
    assert.equal(certInfo(c, SGD_CERT.SUBJECT), 'CN=ukeyd Demo Portal SM2 CA,O=NHSA,C=CN');
    assert.equal(certInfo(c, SGD_CERT.SERIAL), opensslField(pem, '-serial'));
    assert.equal(certInfo(c, SGD_CERT.NOTAFTER_TIME), asn1Date(opensslField(pem, '-enddate')));
    assert.equal(certInfo(c, SGD_CERT.EXT_BASICCONSTRAINTS), 'CA=TRUE');
    // SM2 signatures cannot be checked in the page (WebCrypto has no SM2): said so, not guessed.
    const sof = createSof({ ukey: {}, trustedCAs: [fs.readFileSync(pem, 'utf8')] });
    const e = await rejection(sof.SOF_ValidateCert(fs.readFileSync(pem, 'utf8')));
    assert.equal(e.sor, SOR.NOTSUPPORTYETERR);
    // Envelopes for SM2 certificates are made in the page (gm.js; checked in detail below).
    assert.match(await sof.SOF_EncryptData(fs.readFileSync(pem, 'utf8'), 'x'), /^[A-Za-z0-9+/]+={0,2}$/);
});

test('malformed certificates: SOR_CERTENCODEERR, never a partial answer', () => {
    const good = derOf(f('ec.pem'));
    const cases = {
        empty: new Uint8Array(0),
        truncated: good.subarray(0, good.length - 1),
        'trailing byte': Uint8Array.from([...good, 0]),
        'not base64': '***',
        'a key, not a certificate': new Uint8Array(crypto.createPublicKey(fs.readFileSync(f('ec.pem'))).export({ type: 'spki', format: 'der' })),
        'length not minimal': Uint8Array.from([0x30, 0x81, 0x03, 0x02, 0x01, 0x00]),
        'indefinite length': Uint8Array.from([0x30, 0x80, 0x00, 0x00]),
        'length beyond the end': Uint8Array.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00]),
    };
    // Every single-byte corruption of the outer header.
    for (let i = 0; i < 4; i++) {
        const b = Uint8Array.from(good);
        b[i] ^= 0x40;
        cases[`byte ${i} flipped`] = b;
    }
    for (const [what, input] of Object.entries(cases))
        assert.throws(() => parseCertificate(input), (e) => e instanceof SofError && e.reason === 'CERT_INVALID' && e.sor === SOR.CERTENCODEERR, what);
    // A well-formed certificate with an undecodable extension value: the items that need it fail
    // the same way, the others still answer.
    const bad = parseCertificate(fs.readFileSync(f('badku.pem'), 'utf8'));
    assert.equal(certInfo(bad, SGD_CERT.SUBJECT_CN), 'bad key usage');
    assert.throws(() => certInfo(bad, SGD_CERT.EXT_KEYUSAGE), (e) => e.sor === SOR.CERTENCODEERR);
});

/* ---------- crypto in the page ---------- */

test('SOF_EncryptData: EnvelopedData for RSA and P-256 certificates that openssl cms -decrypt opens', async () => {
    const sof = createSof({ ukey: {} });
    const text = '数字信封 envelope ' + crypto.randomBytes(300).toString('hex');
    for (const [cert, key] of [['rsa.pem', 'rsa.key'], ['ec.pem', 'ec.key']]) {
        const env = await sof.SOF_EncryptData(b64(f(cert)), text);
        fs.writeFileSync(f('env.der'), Buffer.from(env, 'base64'));
        const out = execFileSync('openssl', ['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', f('env.der'), '-inkey', f(key), '-recip', f(cert)]);
        assert.equal(out.toString('utf8'), text, cert);
        // Not decryptable with another key.
        assert.throws(() => execFileSync('openssl', ['cms', '-decrypt', '-inform', 'DER', '-in', f('env.der'), '-inkey', f('ca.key'), '-recip', f('ca.pem')], { stdio: 'pipe' }));
    }
    // base64 mode: the data is given as base64 of bytes.
    const bin = crypto.randomBytes(100);
    const env = await createSof({ ukey: {}, dataEncoding: 'base64' }).SOF_EncryptData(b64(f('rsa.pem')), bin.toString('base64'));
    fs.writeFileSync(f('env2.der'), Buffer.from(env, 'base64'));
    assert.deepEqual(execFileSync('openssl', ['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', f('env2.der'), '-inkey', f('rsa.key')]), bin);
});

test('SOF_EncryptData: the GM/T 0010 envelope for an SM2 certificate, as ukeyd decrypt.cms reads and tests/daemon builds it', async () => {
    const cms = require(path.join(ROOT, 'tests/daemon/lib/cms_der.js'));
    const sm2 = path.join(dir, 'sm2env');
    fs.mkdirSync(sm2);
    const g = (name) => path.join(sm2, name);
    // A self-signed SM2 certificate (SM2-with-SM3, the GM/T 0009 ID) whose serial has its high bit set.
    openssl(['ecparam', '-name', 'SM2', '-genkey', '-noout', '-out', g('enc.key')]);
    openssl(['req', '-x509', '-new', '-key', g('enc.key'), '-sm3', '-sigopt', 'distid:1234567812345678', '-subj', '/C=CN/O=NHSA/CN=数字信封 SM2',
        '-set_serial', '0x80a1b2c3d4', '-days', '30', '-utf8', '-out', g('enc.pem')]);
    openssl(['x509', '-in', g('enc.pem'), '-outform', 'DER', '-out', g('enc.der')]);
    openssl(['x509', '-in', g('enc.pem'), '-noout', '-pubkey', '-out', g('enc.pub')]);
    const certDer = fs.readFileSync(g('enc.der'));
    const sof = createSof({ ukey: {} });
    for (const text of ['', 'x', '0123456789abcde', '0123456789abcdef', '数字信封 SM2 ' + crypto.randomBytes(500).toString('hex')]) {
        const env = Buffer.from(await sof.SOF_EncryptData(fs.readFileSync(g('enc.pem'), 'utf8'), text), 'base64');
        const top = cms.tlv(env);
        assert.equal(top.end, env.length);
        const [type, wrapper, extra] = cms.kids(top);
        assert.equal(extra, undefined);
        assert.equal(cms.oidOf(type), '1.2.840.113549.1.7.3', 'envelopedData (PKCS#7)');
        assert.equal(wrapper.tag, 0xa0);
        const [ed] = cms.kids(wrapper);
        const [version, ris, eci, more] = cms.kids(ed);
        assert.equal(more, undefined, 'no unprotectedAttrs');
        assert.equal(hex(version.all), '020100', 'EnvelopedData version 0');
        assert.equal(ris.tag, 0x31);
        const [ktri, other] = cms.kids(ris);
        assert.equal(other, undefined, 'one recipient');
        const [riVersion, ias, keyAlg, encryptedKey, tooMany] = cms.kids(ktri);
        assert.equal(ktri.tag, 0x30, 'KeyTransRecipientInfo');
        assert.equal(tooMany, undefined);
        assert.equal(hex(riVersion.all), '020100', 'KeyTransRecipientInfo version 0');
        assert.equal(hex(ias.all), hex(cms.issuerAndSerial(certDer)), 'IssuerAndSerialNumber of the certificate');
        assert.equal(hex(cms.kids(ias)[1].all), '02060080a1b2c3d4', 'the serial, with its sign byte');
        const keyAlgParts = cms.kids(keyAlg);
        assert.equal(keyAlgParts.length, 1, 'sm2-3 without parameters');
        assert.equal(cms.oidOf(keyAlgParts[0]), '1.2.156.10197.1.301.3');
        assert.equal(encryptedKey.tag, 0x04);
        // The SM2Cipher: x, y, C3 (32 bytes), C2 (the 16-byte SM4 key).
        const sm2Cipher = cms.tlv(encryptedKey.value);
        assert.equal(sm2Cipher.end, encryptedKey.value.length);
        assert.deepEqual(cms.kids(sm2Cipher).map((k) => [k.tag, k.tag === 0x04 ? k.value.length : 0]), [[0x02, 0], [0x02, 0], [0x04, 32], [0x04, 16]]);
        fs.writeFileSync(g('c.der'), encryptedKey.value);
        const cek = execFileSync('openssl', ['pkeyutl', '-decrypt', '-inkey', g('enc.key'), '-in', g('c.der')]);
        assert.equal(cek.length, 16);
        const [contentType, contentAlg, encrypted, eciMore] = cms.kids(eci);
        assert.equal(eciMore, undefined);
        assert.equal(cms.oidOf(contentType), '1.2.840.113549.1.7.1', 'data (PKCS#7)');
        const [sm4, iv] = cms.kids(contentAlg);
        assert.equal(cms.oidOf(sm4), '1.2.156.10197.1.104.2', 'SM4-CBC');
        assert.equal(iv.tag, 0x04);
        assert.equal(iv.value.length, 16);
        assert.equal(encrypted.tag, 0x80, '[0] IMPLICIT encryptedContent');
        const d = crypto.createDecipheriv('sm4-cbc', cek, iv.value);
        assert.equal(Buffer.concat([d.update(encrypted.value), d.final()]).toString('utf8'), text);
        // The same tree of tags as the envelope tests/daemon builds with openssl for decrypt.cms.
        const shape = (t) => (t.tag & 0x20 && t.tag !== 0x80 ? [t.tag, cms.kids(t).map(shape)] : t.tag === 0x06 ? cms.oidOf(t) : t.tag);
        const theirs = cms.tlv(cms.sm2Envelope(sm2, Buffer.from(text)));
        assert.deepEqual(shape(top), shape(theirs));
        assert.deepEqual(shape(cms.tlv(encryptedKey.value)), shape(cms.tlv(cms.kids(cms.kids(cms.kids(cms.kids(cms.kids(theirs)[1])[0])[1])[0])[3].value)));
    }
    // base64 mode: bytes.
    const bin = crypto.randomBytes(33);
    const env = Buffer.from(await createSof({ ukey: {}, dataEncoding: 'base64' }).SOF_EncryptData(certDer.toString('base64'), bin.toString('base64')), 'base64');
    const eci = cms.kids(cms.kids(cms.kids(cms.tlv(env))[1])[0])[2];
    const ek = cms.kids(cms.kids(cms.kids(cms.kids(cms.tlv(env))[1])[0])[1])[0];
    fs.writeFileSync(g('c.der'), cms.kids(ek)[3].value);
    const cek = execFileSync('openssl', ['pkeyutl', '-decrypt', '-inkey', g('enc.key'), '-in', g('c.der')]);
    const [, alg, enc] = cms.kids(eci);
    const d = crypto.createDecipheriv('sm4-cbc', cek, cms.kids(alg)[1].value);
    assert.deepEqual(Buffer.concat([d.update(enc.value), d.final()]), bin);
    // Not decryptable with another SM2 key.
    openssl(['ecparam', '-name', 'SM2', '-genkey', '-noout', '-out', g('other.key')]);
    assert.throws(() => execFileSync('openssl', ['pkeyutl', '-decrypt', '-inkey', g('other.key'), '-in', g('c.der')], { stdio: 'pipe' }));
    // A certificate whose SM2 point is off the curve: refused, nothing encrypted.
    const spki = crypto.createPublicKey(fs.readFileSync(g('enc.pub'))).export({ type: 'spki', format: 'der' });
    const at = certDer.indexOf(spki.subarray(spki.length - 65));
    assert.ok(at > 0);
    const bad = Buffer.from(certDer);
    bad[at + 64] ^= 1;
    const e = await rejection(sof.SOF_EncryptData(bad.toString('base64'), 'x'));
    assert.equal(e.sor, SOR.CERTENCODEERR);
});

test('SOF_VerifySignedData: RSA and ECDSA signatures made by node:crypto; a changed byte fails with SOR_VERIFYSIGNDATAERR', async () => {
    const sof = createSof({ ukey: {} });
    for (const [cert, key] of [['rsa.pem', 'rsa.key'], ['ec.pem', 'ec.key']]) {
        const data = `签名原文 ${cert}`;
        const sig = crypto.sign('sha256', Buffer.from(data), fs.readFileSync(f(key))).toString('base64');
        assert.equal(await sof.SOF_VerifySignedData(b64(f(cert)), data, sig), true, cert);
        const e = await rejection(sof.SOF_VerifySignedData(b64(f(cert)), data + '!', sig));
        assert.equal(e.sor, SOR.VERIFYSIGNDATAERR);
        assert.equal(e.reason, 'SIGNATURE_INVALID');
        assert.equal(sof.SOF_GetLastError(), SOR.VERIFYSIGNDATAERR);
    }
    for (const bad of ['not base64!', 'abc', '', 7])
        assert.equal((await rejection(sof.SOF_VerifySignedData(b64(f('rsa.pem')), 'x', bad))).sor, SOR.INDATAERR, String(bad));
});

test('SOF_ValidateCert: trusted CA, untrusted, no trust list, not yet valid, and SOF_GenRandom', async () => {
    const caPem = fs.readFileSync(f('ca.pem'), 'utf8');
    const sof = createSof({ ukey: {}, trustedCAs: [caPem] });
    assert.equal(await sof.SOF_ValidateCert(b64(f('ec.pem'))), 0);
    assert.equal((await rejection(sof.SOF_ValidateCert(b64(f('rsa.pem'))))).sor, SOR.CERTINVALIDERR, 'another issuer');
    const later = await rejection(sof.SOF_ValidateCert(b64(f('later.pem'))));
    assert.equal(later.reason, 'NOT_YET_VALID');
    assert.equal(later.sor, SOR.VERIFYPOLICYERR);
    assert.match(later.messages['zh-CN'], /2099-12-31/);
    assert.equal((await rejection(createSof({ ukey: {} }).SOF_ValidateCert(b64(f('ec.pem'))))).sor, SOR.CTLNOTFOUND, 'no trust list: said so');
    // A CA certificate whose key did not sign it: same issuer name, other key.
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('fake-ca.key'), '-out', f('fake-ca.pem'),
        '-days', '30', '-subj', '/C=CN/O=Test CA Org/CN=Test EC CA']);
    const fake = createSof({ ukey: {}, trustedCAs: [fs.readFileSync(f('fake-ca.pem'), 'utf8')] });
    assert.equal((await rejection(fake.SOF_ValidateCert(b64(f('ec.pem'))))).sor, SOR.CERTINVALIDERR);

    const r = fromBase64(await sof.SOF_GenRandom(48));
    assert.equal(r.length, 48);
    assert.notDeepEqual(r, fromBase64(await sof.SOF_GenRandom(48)));
    for (const n of [0, -1, 1.5, '8']) assert.equal((await rejection(sof.SOF_GenRandom(n))).sor, SOR.INDATALENERR, String(n));
});

/* ---------- formats and tables ---------- */

test('user list format, certIDs, and the reason → SOR table', () => {
    const users = [{ name: '张三', id: 'piv:78003773/9a' }, { name: 'a||b&&&c', id: 'p11:0001/01' }];
    const s = formatUserList(users);
    assert.equal(s, '张三||piv:78003773/9a&&&a b c||p11:0001/01');
    assert.deepEqual(parseUserList(s), [{ name: '张三', id: 'piv:78003773/9a' }, { name: 'a b c', id: 'p11:0001/01' }]);
    assert.equal(formatUserList([]), '');
    assert.deepEqual(parseUserList(''), []);
    assert.deepEqual(splitCertId(certId('piv:1', '9c')), { token: 'piv:1', key: '9c' });
    assert.deepEqual(splitCertId(certId('skf:SKF-A', 'sm2/sign')), { token: 'skf:SKF-A', key: 'sm2/sign' }, 'an SKF key id holds a /');
    for (const bad of ['', 'piv:1', '/9a', 'piv:1/', 7]) assert.equal(splitCertId(bad), null, String(bad));

    // Every reason in the table is one the SDK knows; every reason maps to a defined SOR code.
    const known = knownReasons();
    for (const r of Object.keys(SOR_REASONS)) assert.ok(known.includes(r), r);
    const codes = new Set(Object.values(SOR));
    for (const r of known) assert.ok(codes.has(sorOf(r)) && sorOf(r) !== SOR.OK, r);
    assert.equal(sorOf('PIN_INCORRECT'), SOR.UNKNOWNERR, 'Annex A has no PIN code');
    assert.equal(sorOf('CERT_EXPIRED'), 0x0b000407);
    assert.equal(sorOf('SIGNATURE_INVALID'), 0x0b000410);
    assert.equal(sorOf('NOT_SUPPORTED'), 0x0b000002);
    assert.equal(sorOf('no such reason'), SOR.UNKNOWNERR);
    assert.equal(sorName(0x0b000310), 'SOR_CERTNOTFOUNTERR');
    assert.equal(sorName(12345), null);
    // The codes are distinct (one name per code).
    assert.equal(codes.size, Object.keys(SOR).length);
    assert.deepEqual(SGD_SIGN, { SM3_RSA: 0x10001, SHA1_RSA: 0x10002, SHA256_RSA: 0x10004, SM3_SM2: 0x20201 });
});

/* ---------- the SOF functions against a fake daemon ---------- */

// A transport that answers requests with handlers[method](params) (a result, or {error: reason}).
function fakeDaemon(handlers) {
    const t = new FakeTransport();
    const pump = async () => {
        for (;;) {
            const m = await t.next();
            const h = handlers[m.method];
            let r = h ? await h(m.params || {}) : { error: 'METHOD_NOT_FOUND' };
            if (r && r.error) {
                const data = Object.assign({ reason: r.error }, r.data || {});
                t.answer({ jsonrpc: '2.0', id: m.id, error: { code: -32000, message: r.error, data } });
            } else t.answer({ jsonrpc: '2.0', id: m.id, result: r });
        }
    };
    pump();
    return t;
}

test('SOF functions on a fake daemon: user list, export, device info, PIN paths, SOR codes', async () => {
    const rsaDer = b64(f('rsa.pem'));
    const encDer = b64(f('ec.pem'));
    const certs = [
        { key: '9a', subject: 'CN=张三', subject_parts: [{ type: 'CN', value: '张三' }], key_algorithm: 'RSA', key_usage: ['digitalSignature'], der: rsaDer },
        { key: '9d', subject: 'CN=李四,O=Org,C=CN', key_algorithm: 'EC', key_usage: ['keyEncipherment', 'keyAgreement'], der: encDer },
        { key: '9e', error: { reason: 'CERT_INVALID' } },
    ];
    const calls = [];
    let pageAllowed = false;
    const handlers = {
        'token.list': () => ({ tokens: [{ id: 'piv:1', reader: 'R', present: true, driver: 'piv', model: 'PIV', label: 'PIV 1', serial: '1' }, { id: null, reader: 'R2', present: false }] }),
        'cert.list': (p) => (p.token === 'piv:1' ? { token: 'piv:1', certificates: certs } : { error: 'NO_TOKEN' }),
        sign: (p) => {
            calls.push(['sign', p]);
            if (p.pin && !pageAllowed) return { error: 'PIN_FROM_PAGE_DISABLED' };
            if (p.pin === '000000') return { error: 'PIN_INCORRECT', data: { retries_left: 2 } };
            const sig = crypto.sign('sha256', Buffer.from(p.data, 'base64'), fs.readFileSync(f('rsa.key')));
            return { signature: sig.toString('base64'), algorithm: p.algorithm, key: p.key };
        },
        'pin.status': () => ({ token: 'piv:1', retries_left: 3 }),
        'pin.verify': (p) => {
            calls.push(['pin.verify', p]);
            if (p.pin && !pageAllowed) return { error: 'PIN_FROM_PAGE_DISABLED' };
            if (p.pin === '000000') return { error: 'PIN_INCORRECT', data: { retries_left: 2 } };
            return { token: p.token, verified: true, retries_left: 3 };
        },
        'pin.change': (p) => {
            calls.push(['pin.change', p]);
            return p.old_pin && !pageAllowed ? { error: 'PIN_FROM_PAGE_DISABLED' } : { token: 'piv:1', changed: true, retries_left: 3 };
        },
        'verify.cms': (p) => (p.cms === 'AAAA' ? { error: 'INVALID_PARAMS', data: { field: 'cms' } } : { error: 'SIGNATURE_INVALID' }),
    };
    const ukey = new Ukey(fakeDaemon(handlers), { lang: 'zh-CN' });
    const sof = createSof({ ukey });
    assert.equal(await sof.SOF_GetUserList(), '张三||piv:1/9a', 'the encryption certificate and the broken entry are not users');
    assert.equal(await sof.SOF_ExportUserCert('piv:1/9a'), rsaDer);
    assert.equal(await sof.SOF_ExportExChangeUserCert('piv:1/9a'), encDer, "the key's only encryption certificate");
    for (const id of ['piv:1/9c', 'piv:1/9e', 'nonsense']) {
        const e = await rejection(sof.SOF_ExportUserCert(id));
        assert.equal(e.sor, SOR.CERTNOTFOUNTERR, id);
        assert.equal(sof.SOF_GetLastError(), SOR.CERTNOTFOUNTERR);
    }
    assert.equal((await rejection(sof.SOF_ExportUserCert('piv:2/9a'))).sor, SOR.APPNOTFOUNDERR, 'NO_TOKEN');
    assert.equal(await sof.SOF_GetDeviceInfo('piv:1/9a', SGD_DEVICE.SERIAL_NUMBER), '1');
    assert.equal(await sof.SOF_GetDeviceInfo('piv:1/9a', SGD_DEVICE.NAME), 'PIV 1');
    assert.equal((await rejection(sof.SOF_GetDeviceInfo('piv:1/9a', SGD_DEVICE.MANUFACTURER))).sor, SOR.NOTSUPPORTYETERR);
    assert.equal(await sof.SOF_GetPinRetryCount('piv:1/9a'), 3);
    assert.equal(sof.SOF_GetLastError(), SOR.OK);

    // Login with a page PIN the policy refuses: the dialog path (no pin) follows.
    calls.length = 0;
    assert.equal(await sof.SOF_Login('piv:1/9a', '123456'), true);
    assert.deepEqual(calls.map(([m, p]) => [m, 'pin' in p]), [['pin.verify', true], ['pin.verify', false]]);
    assert.equal(calls[0][1].token, 'piv:1', 'nothing is signed to log in');
    // The PIN was not kept (ukeyd refused it): the next signature goes to the dialog directly.
    calls.length = 0;
    const sig = await sof.SOF_SignData('piv:1/9a', '原文');
    assert.deepEqual(calls.map(([, p]) => 'pin' in p), [false]);
    assert.equal(await sof.SOF_VerifySignedData(rsaDer, '原文', sig), true);

    // With the policy allowing page PINs: a wrong one is PIN_INCORRECT with retries; the right one
    // is kept for the calls that follow.
    pageAllowed = true;
    const wrong = await rejection(sof.SOF_Login('piv:1/9a', '000000'));
    assert.equal(wrong.reason, 'PIN_INCORRECT');
    assert.equal(wrong.sor, SOR.UNKNOWNERR);
    assert.equal(wrong.data.retries_left, 2);
    assert.match(wrong.message, /还剩 2 次/);
    assert.equal(await sof.SOF_Login('piv:1/9a', '123456'), true);
    calls.length = 0;
    await sof.SOF_SignData('piv:1/9a', 'x');
    assert.equal(calls[0][1].pin, '123456');

    // Sign methods: SHA-256 and SM3 with SM2 work (SM3_SM2 with 9a's RSA certificate is
    // SOR_ALGTYPEERR, before anything is sent); SHA-1 is not in ukeyd (said at once), unknown codes
    // refused.
    assert.equal(await sof.SOF_SetSignMethod(SGD_SIGN.SM3_SM2), true);
    assert.equal(await sof.SOF_GetSignMethod(), SGD_SIGN.SM3_SM2);
    calls.length = 0;
    assert.equal((await rejection(sof.SOF_SignData('piv:1/9a', 'x'))).sor, SOR.ALGTYPEERR);
    assert.equal(calls.length, 0, 'nothing sent');
    assert.equal(await sof.SOF_SetSignMethod(SGD_SIGN.SHA256_RSA), true);
    assert.equal(await sof.SOF_GetSignMethod(), SGD_SIGN.SHA256_RSA);
    assert.equal((await rejection(sof.SOF_SetSignMethod(SGD_SIGN.SHA1_RSA))).sor, SOR.NOTSUPPORTYETERR);
    assert.equal((await rejection(sof.SOF_SetSignMethod(42))).sor, SOR.ALGTYPEERR);

    // PIN change: page PINs refused → dialogs.
    pageAllowed = false;
    calls.length = 0;
    assert.equal(await sof.SOF_ChangePassWd('piv:1/9a', '123456', '654321'), true);
    assert.deepEqual(calls.map(([, p]) => Object.keys(p).sort().join()), ['new_pin,old_pin,token', 'token']);
    calls.length = 0;
    assert.equal((await rejection(sof.SOF_ChangePassWd('piv:1/9a', '123456', ''))).sor, SOR.INDATAERR, 'one PIN alone');
    assert.equal(calls.length, 0, 'refused before anything is sent');

    // verify.cms refusals: a malformed CMS is the PKCS#7 code, a bad signature the verify code.
    assert.equal((await rejection(sof.SOF_VerifySignedMessage('AAAA', ''))).sor, SOR.PKCS7ENCODEERR);
    assert.equal((await rejection(sof.SOF_VerifySignedMessage('MIIB', 'x'))).sor, SOR.VERIFYSIGNDATAERR);
    assert.equal((await rejection(sof.SOF_SignMessage(2, 'piv:1/9a', 'x'))).sor, SOR.INDATAERR);
    assert.match(await sof.SOF_GetVersion(), /^\d+\.\d+\.\d+$/);
    ukey.close();
});
