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
// CA that is down or says no. RSA and EC keys.
//
// The CA files also serve `vpiv provision --demo-certs DIR` (it reads DIR/demo-ca.{pem,key}):
// exportForVpiv() writes them so the virtual card's first certificate comes from this CA.

const { execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { parseCsr, parseCert, pemToDer, derToPem, DerError } = require('./der');
const { PortalError } = require('./errors');

const DAY = 86400000;
const SUBJECT = '/C=CN/O=NHSA/CN=ukeyd Demo Portal CA';

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

function refused(code, zh, en) {
    return new PortalError(code, zh, en, 422);
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
        return this;
    }

    config() {
        const ext = (ku) =>
            `basicConstraints = critical,CA:FALSE\nkeyUsage = critical,${ku}\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n`;
        return `[ca]
default_ca = portal
[portal]
dir = ${path.join(this.dir, 'db')}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
certificate = ${this.certPath}
private_key = ${this.keyPath}
default_md = sha256
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
[ext_9a]
${ext('digitalSignature')}
[ext_9c]
${ext('digitalSignature,nonRepudiation')}
`;
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
    // {csrDer, parts}.
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
            const r = await openssl(['req', '-in', tmp, '-noout', '-verify']).catch((e) => ({ stdout: '', stderr: e.message }));
            const said = r.stdout + r.stderr;
            if (!/verify OK|signature ok/i.test(said) || /fail/i.test(said)) throw bad();
        } finally {
            fs.rmSync(tmp, { force: true });
        }
        const old = parseCert(oldCertDer);
        if (!old.subject.equals(parts.subject))
            throw refused('SUBJECT_MISMATCH', '证书请求中的主体与原证书不一致，CA 拒绝签发。', 'The subject of the certificate request differs from the current certificate; the CA refused it.');
        return { csrDer, parts };
    }

    // Issues a certificate for csrPem replacing oldCertDer (a Buffer) in slot ('9a'|'9c').
    // Resolves {pem, der, serial, notBefore, notAfter} (dates ISO 8601); throws PortalError.
    issue({ csrPem, oldCertDer, slot = '9a' }) {
        const run = this.queue.then(() => this.issueNow(csrPem, oldCertDer, slot));
        this.queue = run.catch(() => {});
        return run;
    }

    async issueNow(csrPem, oldCertDer, slot) {
        if (this.refuse)
            throw refused('CA_REFUSED', 'CA 拒绝签发证书（证书颁发机构暂时无法处理您的申请）。USB Key 上的证书没有任何改变，请稍后再次点击“执行延期”或“执行修复”。', 'The certificate authority refused to issue the certificate (it cannot handle the request right now). Nothing on your USB key changed; click "Execute the extension" or "Execute the repair" again later.');
        const { csrDer } = await this.checkCsr(csrPem, oldCertDer);
        const oldEnd = new crypto.X509Certificate(oldCertDer).validTo;
        const { notBefore, notAfter } = this.validity(Date.parse(oldEnd));
        const id = crypto.randomBytes(8).toString('hex');
        const db = path.join(this.dir, 'db');
        const inFile = path.join(db, `in-${id}.csr`);
        const outFile = path.join(db, `out-${id}.pem`);
        fs.writeFileSync(inFile, derToPem(csrDer, 'CERTIFICATE REQUEST'));
        try {
            await openssl([
                'ca', '-batch', '-config', path.join(db, 'ca.cnf'), '-in', inFile, '-out', outFile, '-notext', '-utf8',
                '-preserveDN', '-extensions', slot === '9c' ? 'ext_9c' : 'ext_9a',
                '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter),
            ]);
            const pem = fs.readFileSync(outFile, 'utf8');
            const x = new crypto.X509Certificate(pem);
            // What we promise: the same subject, byte for byte, and the request's key.
            const got = parseCert(x.raw);
            if (!got.subject.equals(parseCert(oldCertDer).subject) || !got.spki.equals(parseCsr(csrDer).spki))
                throw new Error('openssl ca changed the subject or the key');
            return {
                pem,
                der: x.raw,
                serial: x.serialNumber.toLowerCase(),
                notBefore: new Date(x.validFrom).toISOString(),
                notAfter: new Date(x.validTo).toISOString(),
            };
        } finally {
            fs.rmSync(inFile, { force: true });
            fs.rmSync(outFile, { force: true });
        }
    }
}

module.exports = { TestCa, asn1Time };
