'use strict';
// The portal's test CA (examples/portal/ca.js): made once, issues for a request with the old
// certificate's subject (byte for byte) and the request's key, RSA and EC, under the validity
// policy; refuses bad signatures, other subjects, garbage, and everything when switched to refuse.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { PORTAL, tempDir, newKey, csr, certFor } = require('./lib');
const { TestCa } = require(path.join(PORTAL, 'ca.js'));
const { parseCert, parseCsr, pemToDer, derToPem } = require(path.join(PORTAL, 'der.js'));

const DAY = 86400000;

async function setup(t, opts = {}) {
    const dir = tempDir(t);
    const ca = await new TestCa({ dir: path.join(dir, 'ca'), ...opts }).init();
    return { dir, ca };
}

test('the CA is made once and kept (same key and certificate after a restart)', async (t) => {
    const { dir, ca } = await setup(t);
    const pem = ca.certPem;
    const x = new crypto.X509Certificate(pem);
    assert.ok(x.ca);
    assert.match(x.subject, /CN=ukeyd Demo Portal CA/);
    assert.equal(fs.statSync(ca.keyPath).mode & 0o077, 0, 'the CA key is private');
    const again = await new TestCa({ dir: path.join(dir, 'ca') }).init();
    assert.equal(again.certPem, pem);
    again.exportForVpiv(path.join(dir, 'vpiv'));
    assert.equal(fs.readFileSync(path.join(dir, 'vpiv', 'demo-ca.pem'), 'utf8'), pem);
    assert.ok(fs.existsSync(path.join(dir, 'vpiv', 'demo-ca.key')));
});

for (const alg of ['rsa', 'ec']) {
    test(`issues for a ${alg.toUpperCase()} request: the old subject byte for byte, the request's key, "now" + days`, async (t) => {
        const { dir, ca } = await setup(t, { days: 100 });
        const oldKey = newKey(dir, 'old', alg);
        const oldPem = certFor(dir, ca.dir, oldKey);
        const newK = newKey(dir, 'new', alg);
        const req = csr(dir, newK);
        const before = Date.now();
        const got = await ca.issue({ csrPem: req, oldCertDer: new crypto.X509Certificate(oldPem).raw });
        const x = new crypto.X509Certificate(got.pem);
        assert.ok(x.verify(new crypto.X509Certificate(ca.certPem).publicKey), 'signed by the CA');
        assert.ok(parseCert(x.raw).subject.equals(parseCert(new crypto.X509Certificate(oldPem).raw).subject));
        assert.ok(parseCert(x.raw).spki.equals(parseCsr(pemToDer(req, 'CERTIFICATE REQUEST')).spki));
        const nb = Date.parse(x.validFrom);
        assert.ok(nb >= before - 2000 && nb <= Date.now() + 1000, `not before is now: ${x.validFrom}`);
        assert.equal(Date.parse(x.validTo) - nb, 100 * DAY);
        assert.equal(got.notBefore, new Date(nb).toISOString());
        assert.match(x.subject, /CN=张三/);
        assert.match(x.keyUsage ? x.keyUsage.join() : 'digitalSignature', /digitalSignature/);
    });
}

test('validity policy: "tomorrow" starts a day later, "old-end" where the old certificate ends (or now if past)', async (t) => {
    const { dir, ca } = await setup(t, { start: 'tomorrow', days: 30 });
    const key = newKey(dir, 'k', 'ec');
    const old = new crypto.X509Certificate(certFor(dir, ca.dir, key, { fromDays: -300, toDays: 20 }));
    let x = new crypto.X509Certificate((await ca.issue({ csrPem: csr(dir, key), oldCertDer: old.raw })).pem);
    const nb = Date.parse(x.validFrom);
    assert.ok(Math.abs(nb - (Date.now() + DAY)) < 5000, x.validFrom);
    ca.start = 'old-end';
    x = new crypto.X509Certificate((await ca.issue({ csrPem: csr(dir, key), oldCertDer: old.raw })).pem);
    assert.equal(x.validFrom, old.validTo);
    const expired = new crypto.X509Certificate(certFor(dir, ca.dir, key, { fromDays: -300, toDays: -1 }));
    x = new crypto.X509Certificate((await ca.issue({ csrPem: csr(dir, key), oldCertDer: expired.raw })).pem);
    assert.ok(Math.abs(Date.parse(x.validFrom) - Date.now()) < 5000, 'an expired one: now');
    // The clock it is given (the portal's test clock).
    ca.start = 'now';
    ca.now = () => Date.now() + 2 * DAY;
    x = new crypto.X509Certificate((await ca.issue({ csrPem: csr(dir, key), oldCertDer: old.raw })).pem);
    assert.ok(Math.abs(Date.parse(x.validFrom) - (Date.now() + 2 * DAY)) < 5000);
});

test('refuses: another subject, a bad self-signature, garbage, and everything when switched to refuse', async (t) => {
    const { dir, ca } = await setup(t);
    const key = newKey(dir, 'k', 'rsa');
    const old = new crypto.X509Certificate(certFor(dir, ca.dir, key)).raw;
    await assert.rejects(ca.issue({ csrPem: csr(dir, key, '/C=CN/O=NHSA/CN=李四'), oldCertDer: old }), { code: 'SUBJECT_MISMATCH' });
    // Same words, other order: not the same subject.
    await assert.rejects(ca.issue({ csrPem: csr(dir, key, '/CN=张三/O=NHSA/C=CN'), oldCertDer: old }), { code: 'SUBJECT_MISMATCH' });
    const der = Buffer.from(pemToDer(csr(dir, key), 'CERTIFICATE REQUEST'));
    der[der.length - 5] ^= 0x01; // inside the signature
    await assert.rejects(ca.issue({ csrPem: derToPem(der, 'CERTIFICATE REQUEST'), oldCertDer: old }), { code: 'CSR_SIGNATURE' });
    const der2 = Buffer.from(pemToDer(csr(dir, key), 'CERTIFICATE REQUEST'));
    const i = der2.indexOf(Buffer.from('NHSA'));
    der2[i] = 'X'.charCodeAt(0); // the signed subject changed after signing
    await assert.rejects(ca.issue({ csrPem: derToPem(der2, 'CERTIFICATE REQUEST'), oldCertDer: old }), { code: 'CSR_SIGNATURE' });
    await assert.rejects(ca.issue({ csrPem: 'hello', oldCertDer: old }), { code: 'CSR_INVALID' });
    await assert.rejects(ca.issue({ csrPem: `junk\n${csr(dir, key)}`, oldCertDer: old }), { code: 'CSR_INVALID' });
    ca.refuse = true;
    const e = await ca.issue({ csrPem: csr(dir, key), oldCertDer: old }).catch((x) => x);
    assert.equal(e.code, 'CA_REFUSED');
    assert.match(e.messages['zh-CN'], /CA 拒绝签发/);
    assert.match(e.messages.en, /refused/);
    ca.refuse = false;
    assert.ok((await ca.issue({ csrPem: csr(dir, key), oldCertDer: old })).pem);
});

test('concurrent issues are serialised (one openssl ca database)', async (t) => {
    const { dir, ca } = await setup(t);
    const key = newKey(dir, 'k', 'ec');
    const old = new crypto.X509Certificate(certFor(dir, ca.dir, key)).raw;
    const reqs = [1, 2, 3, 4].map(() => csr(dir, key));
    const got = await Promise.all(reqs.map((r) => ca.issue({ csrPem: r, oldCertDer: old })));
    assert.equal(new Set(got.map((g) => g.serial)).size, 4, 'four serials');
});
