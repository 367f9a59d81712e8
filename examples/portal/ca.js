'use strict';
// The demo portal's test CA: the `openssl` command line on a data directory.
//
//   DIR/ca.key, DIR/ca.pem   the CA (EC P-256), made on first use
//   DIR/db/                  `openssl ca`'s database, serial and copies of what it issued
//
// issue() takes a PKCS#10 request and the certificate it replaces and issues, for the request's
// key, a certificate with the same subject (byte for byte) under the portal's validity policy:
// `days` of validity starting "now", "tomorrow" (the manual's "certificate not yet valid" case)
// or "old-end" (when the old certificate ends; now if that has passed). It refuses a request whose
// self-signature does not verify (checked by node:crypto and by `openssl req -verify`) or whose
// subject is not the old certificate's. `refuse` (a test switch) makes it refuse everything, as a
// CA that is down or says no. RSA, EC and SM2 keys.
//
// The CA files also serve `vpiv provision --demo-certs DIR` (it reads DIR/demo-ca.{pem,key}):
// exportForVpiv() writes them so the virtual card's first certificate comes from this CA.
//
// SM2 (the Chinese keys of GM/T 0016): a second CA next to it, DIR/sm2/{ca.key,ca.pem,db/}, an
// SM2 root with an SM3 signature. A request for an SM2 key is checked and issued by it, never by
// the EC CA (an SM2 key must sign SM2-with-SM3, and only an SM2 key may): the request's signature
// must verify with the GM/T 0009 distinguishing ID 1234567812345678 and the certificate is signed
// with that ID. node:crypto cannot do either (it has no way to pass an SM2 ID, and X509Certificate's
// verify() answers false for every SM2 certificate), so the `openssl` command line does it all:
// `req -verify -vfyopt distid:ID` (exit 0 even on failure: its verdict line is read),
// `ca -md sm3 -sigopt distid:ID -vfyopt distid:ID` (also exit 0 when it refuses a request: no
// output file then), and `verify -vfyopt distid:ID` on the result. The SM2 profile (GM/T 0015):
// the signing certificate has keyUsage digitalSignature + nonRepudiation whatever the slot; the
// encryption certificate of a dual pair (issueEncryption(), for the test KMC in kmc.js) has
// keyEncipherment + dataEncipherment + keyAgreement, the same subject and validity, another serial.

const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { parseCsr, parseCert, pemToDer, derToPem, spkiKey, DerError } = require('./der');
const { PortalError } = require('./errors');

const DAY = 86400000;
const SUBJECT = '/C=CN/O=NHSA/CN=ukeyd Demo Portal CA';
const SM2_SUBJECT = '/C=CN/O=NHSA/CN=ukeyd Demo Portal SM2 CA';

// GM/T 0009's default distinguishing ID (OpenSSL's default is the empty ID: never rely on it).
const SM2_ID = '1234567812345678';
const SM2_DISTID = `distid:${SM2_ID}`;
const OID_SM2_SM3 = '1.2.156.10197.1.501';
const OID_SM2_CURVE = '1.2.156.10197.1.301';

// Signature algorithms of a request that node:crypto verifies: OID -> [hash, options].
const SIG_ALGS = {
    '1.2.840.113549.1.1.11': ['sha256', {}],
    '1.2.840.113549.1.1.12': ['sha384', {}],
    '1.2.840.113549.1.1.13': ['sha512', {}],
    '1.2.840.10045.4.3.2': ['sha256', { dsaEncoding: 'der' }],
    '1.2.840.10045.4.3.3': ['sha384', { dsaEncoding: 'der' }],
    '1.2.840.10045.4.3.4': ['sha512', { dsaEncoding: 'der' }],
};

function openssl(args, opts = {}) {
    return new Promise((resolve, reject) => {
        execFile('openssl', args, { cwd: opts.cwd, maxBuffer: 1 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
            if (err) {
                err.message += `\nopenssl ${args.join(' ')}: ${stderr}`;
                reject(err);
            } else resolve({ stdout, stderr });
        });
    });
}

// openssl's -startdate/-enddate form: YYYYMMDDHHMMSSZ.
function asn1Time(ms) {
    return new Date(ms).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

// Whether a SubjectPublicKeyInfo (DER) is an SM2 key: id-ecPublicKey on the SM2 curve (OpenSSL,
// RFC 5480 style), or the curve's OID as the algorithm (some older encoders). Throws DerError.
function isSm2Spki(spki) {
    const k = spkiKey(spki);
    return k.curve === OID_SM2_CURVE || k.alg === OID_SM2_CURVE;
}

// Whether a request (PEM) is for an SM2 key (false for anything that does not parse: the CA's
// checks report those).
function isSm2Request(csrPem) {
    try {
        return isSm2Spki(parseCsr(pemToDer(csrPem, 'CERTIFICATE REQUEST')).spki);
    } catch (e) {
        if (e instanceof DerError) return false;
        throw e;
    }
}

function refused(code, zh, en) {
    return new PortalError(code, zh, en, 422);
}

// The `openssl ca` configuration of one CA: its database in db, md for signatures, and one
// extension section per entry of usages (section name -> keyUsage list) for end-entity
// certificates.
function caConfig(name, db, cert, key, md, usages) {
    const sections = Object.entries(usages)
        .map(([sec, ku]) => `[${sec}]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,${ku}\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n`)
        .join('\n');
    return `[ca]
default_ca = ${name}
[${name}]
dir = ${db}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
certificate = ${cert}
private_key = ${key}
default_md = ${md}
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
preserve = yes
[anything]
countryName = optional
stateOrProvinceName = optional
localityName = optional
organizationName = optional
organizationalUnitName = optional
commonName = optional
${sections}`;
}

class TestCa {
    // opts: dir, days (365), start ('now'|'tomorrow'|'old-end'), now (() => ms), refuse (false).
    constructor(opts) {
        this.dir = opts.dir;
        this.days = opts.days || 365;
        this.start = opts.start || 'now';
        this.now = opts.now || Date.now;
        this.refuse = !!opts.refuse;
        this.queue = Promise.resolve();
        if (!['now', 'tomorrow', 'old-end'].includes(this.start)) throw new Error(`bad CA start: ${this.start}`);
    }

    get keyPath() {
        return path.join(this.dir, 'ca.key');
    }

    get certPath() {
        return path.join(this.dir, 'ca.pem');
    }

    get certPem() {
        return fs.readFileSync(this.certPath, 'utf8');
    }

    // Makes the CA on first use (key 0600); idempotent.
    async init() {
        fs.mkdirSync(path.join(this.dir, 'db', 'issued'), { recursive: true, mode: 0o700 });
        if (!fs.existsSync(this.keyPath) || !fs.existsSync(this.certPath)) {
            const tmpKey = `${this.keyPath}.tmp`;
            await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', tmpKey]);
            fs.chmodSync(tmpKey, 0o600);
            await openssl([
                'req', '-x509', '-new', '-key', tmpKey, '-out', `${this.certPath}.tmp`, '-subj', SUBJECT, '-utf8',
                '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE',
                '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash',
            ]);
            fs.renameSync(tmpKey, this.keyPath);
            fs.renameSync(`${this.certPath}.tmp`, this.certPath);
        }
        const db = path.join(this.dir, 'db');
        if (!fs.existsSync(path.join(db, 'index.txt'))) fs.writeFileSync(path.join(db, 'index.txt'), '');
        if (!fs.existsSync(path.join(db, 'serial'))) fs.writeFileSync(path.join(db, 'serial'), `${crypto.randomBytes(16).toString('hex')}\n`);
        fs.writeFileSync(path.join(db, 'index.txt.attr'), 'unique_subject = no\n');
        fs.writeFileSync(path.join(db, 'ca.cnf'), this.config());
        await this.initSm2();
        return this;
    }

    get sm2Dir() {
        return path.join(this.dir, 'sm2');
    }

    get sm2KeyPath() {
        return path.join(this.sm2Dir, 'ca.key');
    }

    get sm2CertPath() {
        return path.join(this.sm2Dir, 'ca.pem');
    }

    get sm2CertPem() {
        return fs.readFileSync(this.sm2CertPath, 'utf8');
    }

    // The SM2 CA, made on first use like the other one (a data directory from before it existed
    // gets it at the next start).
    async initSm2() {
        const db = path.join(this.sm2Dir, 'db');
        fs.mkdirSync(path.join(db, 'issued'), { recursive: true, mode: 0o700 });
        if (!fs.existsSync(this.sm2KeyPath) || !fs.existsSync(this.sm2CertPath)) {
            const tmpKey = `${this.sm2KeyPath}.tmp`;
            await openssl(['genpkey', '-algorithm', 'SM2', '-out', tmpKey]);
            fs.chmodSync(tmpKey, 0o600);
            // The root's own signature carries the ID too: a verifier that checks self-signatures
            // (ukeyd's x509 module does) must find it with the standard ID.
            await openssl([
                'req', '-x509', '-new', '-key', tmpKey, '-sm3', '-sigopt', SM2_DISTID, '-out', `${this.sm2CertPath}.tmp`,
                '-subj', SM2_SUBJECT, '-utf8', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE',
                '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash',
            ]);
            fs.renameSync(tmpKey, this.sm2KeyPath);
            fs.renameSync(`${this.sm2CertPath}.tmp`, this.sm2CertPath);
        }
        if (!fs.existsSync(path.join(db, 'index.txt'))) fs.writeFileSync(path.join(db, 'index.txt'), '');
        if (!fs.existsSync(path.join(db, 'serial'))) fs.writeFileSync(path.join(db, 'serial'), `${crypto.randomBytes(16).toString('hex')}\n`);
        fs.writeFileSync(path.join(db, 'index.txt.attr'), 'unique_subject = no\n');
        fs.writeFileSync(path.join(db, 'ca.cnf'), this.sm2Config());
    }

    sm2Config() {
        return caConfig('portal_sm2', path.join(this.sm2Dir, 'db'), this.sm2CertPath, this.sm2KeyPath, 'sm3', {
            ext_sm2_sign: 'digitalSignature,nonRepudiation',
            ext_sm2_enc: 'keyEncipherment,dataEncipherment,keyAgreement',
        });
    }

    config() {
        return caConfig('portal', path.join(this.dir, 'db'), this.certPath, this.keyPath, 'sha256', {
            ext_9a: 'digitalSignature',
            ext_9c: 'digitalSignature,nonRepudiation',
        });
    }

    // Writes DIR/demo-ca.pem and demo-ca.key (what `vpiv provision --demo-certs DIR` reads).
    exportForVpiv(dir) {
        fs.mkdirSync(dir, { recursive: true });
        fs.copyFileSync(this.certPath, path.join(dir, 'demo-ca.pem'));
        fs.copyFileSync(this.keyPath, path.join(dir, 'demo-ca.key'));
        fs.chmodSync(path.join(dir, 'demo-ca.key'), 0o600);
    }

    // Validity for a new certificate under the policy: {notBefore, notAfter} in ms.
    validity(oldNotAfterMs) {
        const now = Math.floor(this.now() / 1000) * 1000;
        let from = now;
        if (this.start === 'tomorrow') from = now + DAY;
        else if (this.start === 'old-end' && oldNotAfterMs > now) from = oldNotAfterMs;
        return { notBefore: from, notAfter: from + this.days * DAY };
    }

    // Checks a request against the certificate it replaces; throws PortalError. Resolves
    // {csrDer, parts, sm2} (sm2: an SM2 key with an SM2-with-SM3 signature, verified with the
    // standard ID).
    async checkCsr(csrPem, oldCertDer) {
        let csrDer;
        let parts;
        try {
            csrDer = pemToDer(csrPem, 'CERTIFICATE REQUEST');
            parts = parseCsr(csrDer);
        } catch (e) {
            if (!(e instanceof DerError)) throw e;
            throw refused('CSR_INVALID', '证书请求格式无效。', 'The certificate request is not valid.');
        }
        const bad = () =>
            refused('CSR_SIGNATURE', '证书请求的签名无效，CA 拒绝签发。请重新初始化证书。', 'The signature of the certificate request is not valid; the CA refused it. Initialize the certificate again.');
        // SM2 key and SM2 signature go together: an SM2 key signing ECDSA (or the other way
        // round) is not a request this CA understands.
        let sm2Key = false;
        try {
            sm2Key = isSm2Spki(parts.spki);
        } catch (e) {
            if (!(e instanceof DerError)) throw e;
            throw refused('CSR_INVALID', '证书请求格式无效。', 'The certificate request is not valid.');
        }
        const sm2 = parts.sigOid === OID_SM2_SM3;
        if (sm2 !== sm2Key) throw bad();
        const alg = SIG_ALGS[parts.sigOid];
        if (alg) {
            let ok = false;
            try {
                const key = crypto.createPublicKey({ key: parts.spki, format: 'der', type: 'spki' });
                ok = crypto.verify(alg[0], parts.info, { key, ...alg[1] }, parts.signature);
            } catch {
                ok = false;
            }
            if (!ok) throw bad();
        }
        // The command line as a second, independent judge (it exits 0 on a failed check in OpenSSL
        // 3.0: read what it says).
        const tmp = path.join(this.dir, 'db', `req-${crypto.randomBytes(8).toString('hex')}.csr`);
        fs.writeFileSync(tmp, derToPem(csrDer, 'CERTIFICATE REQUEST'));
        try {
            // SM2: with the standard ID (the only judge here: node:crypto cannot verify SM2 with an ID).
            const args = ['req', '-in', tmp, '-noout', '-verify', ...(sm2 ? ['-vfyopt', SM2_DISTID] : [])];
            const r = await openssl(args).catch((e) => ({ stdout: '', stderr: e.message }));
            const said = r.stdout + r.stderr;
            if (!/verify OK|signature ok/i.test(said) || /fail/i.test(said)) throw bad();
        } finally {
            fs.rmSync(tmp, { force: true });
        }
        const old = parseCert(oldCertDer);
        if (!old.subject.equals(parts.subject))
            throw refused('SUBJECT_MISMATCH', '证书请求中的主体与原证书不一致，CA 拒绝签发。', 'The subject of the certificate request differs from the current certificate; the CA refused it.');
        return { csrDer, parts, sm2 };
    }

    // Issues a certificate for csrPem replacing oldCertDer (a Buffer) in slot ('9a'|'9c').
    // Resolves {pem, der, serial, notBefore, notAfter, sm2} (dates ISO 8601); throws PortalError.
    // An SM2 request is issued by the SM2 CA with the SM2 signing profile.
    issue({ csrPem, oldCertDer, slot = '9a' }) {
        return this.serialised(() => this.issueNow(csrPem, oldCertDer, slot));
    }

    // One `openssl ca` at a time (each CA has one database; the queue is shared, which is simpler
    // and costs nothing at a test CA's rate).
    serialised(fn) {
        const run = this.queue.then(fn);
        this.queue = run.catch(() => {});
        return run;
    }

    async issueNow(csrPem, oldCertDer, slot) {
        if (this.refuse)
            throw refused('CA_REFUSED', 'CA 拒绝签发证书（证书颁发机构暂时无法处理您的申请）。USB Key 上的证书没有任何改变，请稍后再次点击“执行延期”或“执行修复”。', 'The certificate authority refused to issue the certificate (it cannot handle the request right now). Nothing on your USB key changed; click "Execute the extension" or "Execute the repair" again later.');
        const { csrDer, sm2 } = await this.checkCsr(csrPem, oldCertDer);
        const oldEnd = new crypto.X509Certificate(oldCertDer).validTo;
        const { notBefore, notAfter } = this.validity(Date.parse(oldEnd));
        const got = await this.runCa({
            sm2,
            csrDer,
            extensions: sm2 ? 'ext_sm2_sign' : slot === '9c' ? 'ext_9c' : 'ext_9a',
            notBefore,
            notAfter,
        });
        // What we promise: the same subject, byte for byte, and the request's key.
        const parts = parseCert(got.der);
        if (!parts.subject.equals(parseCert(oldCertDer).subject) || !parts.spki.equals(parseCsr(csrDer).spki))
            throw new Error('openssl ca changed the subject or the key');
        return got;
    }

    // `openssl ca` on one request (DER) with the given extension section and dates. Resolves
    // {pem, der, serial, notBefore, notAfter, sm2}.
    async runCa({ sm2, csrDer, extensions, notBefore, notAfter }) {
        const id = crypto.randomBytes(8).toString('hex');
        const db = path.join(sm2 ? this.sm2Dir : this.dir, 'db');
        const inFile = path.join(db, `in-${id}.csr`);
        const outFile = path.join(db, `out-${id}.pem`);
        fs.writeFileSync(inFile, derToPem(csrDer, 'CERTIFICATE REQUEST'));
        try {
            await openssl([
                'ca', '-batch', '-config', path.join(db, 'ca.cnf'), '-in', inFile, '-out', outFile, '-notext', '-utf8',
                '-preserveDN', '-extensions', extensions,
                '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter),
                // The request is verified, and the certificate signed, with the standard ID.
                ...(sm2 ? ['-md', 'sm3', '-sigopt', SM2_DISTID, '-vfyopt', SM2_DISTID] : []),
            ]);
            // `openssl ca` exits 0 when it refuses a request: then there is no output file.
            if (!fs.existsSync(outFile)) throw new Error('openssl ca issued nothing');
            const pem = fs.readFileSync(outFile, 'utf8');
            if (sm2) await this.checkSm2Issued(outFile);
            const x = new crypto.X509Certificate(pem);
            return {
                pem,
                der: x.raw,
                serial: x.serialNumber.toLowerCase(),
                notBefore: new Date(x.validFrom).toISOString(),
                notAfter: new Date(x.validTo).toISOString(),
                sm2: !!sm2,
            };
        } finally {
            fs.rmSync(inFile, { force: true });
            fs.rmSync(outFile, { force: true });
        }
    }

    // What the SM2 CA signed verifies under its key with the standard ID (and fails without it:
    // proof that the ID was used, not OpenSSL's empty default). Dates are not this check's
    // business (a "tomorrow" certificate is not valid yet).
    async checkSm2Issued(certFile) {
        const run = (extra) =>
            openssl(['verify', '-no_check_time', '-CAfile', this.sm2CertPath, ...extra, certFile]).then(
                (r) => /: OK\s*$/.test(r.stdout),
                () => false,
            );
        if (!(await run(['-vfyopt', SM2_DISTID])) || (await run([])))
            throw new Error('the SM2 CA did not sign with the GM/T 0009 ID');
    }

    // The encryption certificate of an SM2 dual pair, for the test KMC (kmc.js): the signing
    // certificate's subject (byte for byte) and validity, the key in encKeyPath (SM2, PEM; the KMC
    // made it), the encryption profile, the next serial. The request is made from the signing
    // certificate by `openssl x509 -x509toreq` (which keeps the subject's bytes) and signed by the
    // encryption key itself, so `openssl ca` checks it like any other. Resolves like issue().
    issueEncryption({ signingCertDer, encKeyPath }) {
        return this.serialised(async () => {
            const sign = new crypto.X509Certificate(signingCertDer);
            const id = crypto.randomBytes(8).toString('hex');
            const db = path.join(this.sm2Dir, 'db');
            const certFile = path.join(db, `sig-${id}.pem`);
            const reqFile = path.join(db, `enc-${id}.csr`);
            fs.writeFileSync(certFile, sign.toString());
            try {
                await openssl([
                    'x509', '-x509toreq', '-in', certFile, '-key', encKeyPath, '-copy_extensions', 'none', '-sm3', '-sigopt', SM2_DISTID, '-out', reqFile,
                ]);
                const csrDer = pemToDer(fs.readFileSync(reqFile, 'utf8'), 'CERTIFICATE REQUEST');
                const got = await this.runCa({
                    sm2: true,
                    csrDer,
                    extensions: 'ext_sm2_enc',
                    notBefore: Date.parse(sign.validFrom),
                    notAfter: Date.parse(sign.validTo),
                });
                const parts = parseCert(got.der);
                if (!parts.subject.equals(parseCert(sign.raw).subject) || parts.spki.equals(parseCert(sign.raw).spki))
                    throw new Error('the encryption certificate has another subject or the signing key');
                return got;
            } finally {
                fs.rmSync(certFile, { force: true });
                fs.rmSync(reqFile, { force: true });
            }
        });
    }
}

module.exports = { TestCa, asn1Time, isSm2Request, SM2_ID, OID_SM2_SM3, OID_SM2_CURVE };
