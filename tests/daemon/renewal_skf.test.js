'use strict';
// Renewal on an SKF (GM/T 0016) key: the soft SKF module of tests/skf, a real ukeyd, no pcscd.
// The device holds an SM2 signing certificate and an encryption certificate in container "sm2",
// issued by an SM2 test CA made here with openssl; the test's KMC (examples/portal/kmc.js) makes
// and wraps the new encryption pair.
//   - the same through the demo portal's SM2 CA and KMC (examples/portal: TestCa, TestKmc);
//   - an RSA container renewed (RSA-2048, no encryption pair);
//   - repair of an expired certificate (made in the past with faketime), dual certificates;
//   - extend with dual certificates: the SM2/SM3 request (verified by openssl with the GM/T 0009
//     ID) is for a key in a NEW container; refused commits change nothing (an envelope that does
//     not open, another symmetric algorithm than SM4, an encryption certificate for another key,
//     half of the pair, an RSA "encryption" certificate); the commit imports the wrapped pair, writes both certificates and retires
//     the old container; the role sm2/sign then signs with the new key (openssl verifies);
//   - a second renewal of the same role with the blob form of the envelope (the first renewed
//     container is retired in turn), then an aborted one (its container goes);
//   - a fault at every SKF call of prepare and of commit (the call fails, or is carried out and
//     then reported failed): an error each time, the role keeps a working pair at every point,
//     and committing again completes the renewal. A whole commit makes some 110 SKF calls; under
//     ASan (several times slower) every third call is hit, the uninstrumented run hits them all.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const { Ukeyd, tempDir, instrumented } = require('./lib/ukeyd');
const { KeysClient } = require('./lib/rig');
const { TestKmc, envelopedKeyBlob, sm2CipherFromDer } = require('../../examples/portal/kmc');
const { TestCa } = require('../../examples/portal/ca');

const TOOL = process.env.UKSKF_TOOL;
const MODULE = process.env.UKSKF_MODULE;
const ID = '1234567812345678';
const PIN = '123456';
const TOKEN = 'skf:SKF-R';
const skip = MODULE && TOOL ? false : 'UKSKF_MODULE and UKSKF_TOOL are not set';
const FAKETIME = ['/usr/bin/faketime'].find((p) => fs.existsSync(p));

function sh(cmd, args, cwd, input) {
    return execFileSync(cmd, args, { cwd, input, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
}
const sm3 = ['-sm3', '-sigopt', `distid:${ID}`];
const reason = (r) => (r.error ? r.error.data.reason : 'OK');
const pem = (der, label) => `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`;

// The CA, the first signing and encryption pairs, and device ukey0 holding them in "sm2";
// expired: the signing certificate ran out yesterday (made 40 days ago under faketime).
// ca: {key, cert} of another SM2 CA (the demo portal's) instead of a new one.
function provision(dir, { expired = false, ca = null } = {}) {
    const o = (...a) => sh('openssl', a, dir);
    const past = (...a) => sh('faketime', ['-f', '-40d', 'openssl', ...a], dir);
    if (ca) {
        fs.copyFileSync(ca.key, path.join(dir, 'ca.key'));
        fs.copyFileSync(ca.cert, path.join(dir, 'ca.pem'));
    } else {
        o('ecparam', '-name', 'SM2', '-genkey', '-noout', '-out', 'ca.key');
        (expired ? past : o)('req', '-x509', '-new', '-key', 'ca.key', ...sm3, '-subj', '/CN=skf renewal CA', '-days', '90', '-out', 'ca.pem');
    }
    for (const k of ['sig', 'enc']) {
        o('ecparam', '-name', 'SM2', '-genkey', '-noout', '-out', `${k}.key`);
        o('req', '-new', '-key', `${k}.key`, ...sm3, '-subj', `/CN=Zhang San/O=skf ${k}`, '-out', `${k}.csr`);
        const args = ['x509', '-req', '-in', `${k}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', ...sm3, '-vfyopt', `distid:${ID}`,
            '-days', expired && k === 'sig' ? '39' : '20', '-set_serial', k === 'sig' ? '1' : '2', '-out', `${k}.pem`];
        if (expired && k === 'sig') past(...args);
        else o(...args);
    }
    if (expired) assert.ok(new Date(new crypto.X509Certificate(fs.readFileSync(path.join(dir, 'sig.pem'))).validTo) < new Date(), 'expired');
    sh(TOOL, ['provision', '--dir', dir, '--device', 'ukey0', '--serial', 'SKF-R', '--label', 'SKF renewal',
        '--retries', '5', '--container', 'sm2', '--key', 'sig.key', '--cert', 'sig.pem',
        '--enc-key', 'enc.key', '--enc-cert', 'enc.pem'], dir);
}

// Container names on the device, from the soft module's own state file (an independent view).
function containers(dir) {
    const text = fs.readFileSync(path.join(dir, 'ukey0.dev'), 'utf8');
    return text.split('\n').filter((l) => l.startsWith('container ')).map((l) => Buffer.from(l.split(' ')[1], 'hex').toString());
}

let serial = 100;
// Issues what the CA and the KMC send back for a prepared renewal: the signing certificate for
// the request, a new encryption pair certified by the CA and wrapped to the request's key.
async function issue(dir, kmc, prep, opts = {}) {
    const csr = path.join(dir, `r${serial}.csr`);
    fs.writeFileSync(csr, prep.csr_pem);
    // The request is SM2 with SM3 and verifies with the GM/T 0009 ID only (openssl req -verify
    // says so on stderr and exits 0 either way).
    const verify = (...opts) => spawnSync('openssl', ['req', '-in', csr, '-noout', '-verify', ...opts], { encoding: 'utf8' }).stderr;
    assert.match(verify('-vfyopt', `distid:${ID}`), /verify OK/);
    assert.match(verify(), /verify failure/, 'verifies without the ID');
    assert.match(sh('openssl', ['req', '-in', csr, '-noout', '-text'], dir).toString(), /SM2-with-SM3/);
    const out = path.join(dir, `r${serial}.pem`);
    sh('openssl', ['x509', '-req', '-in', csr, '-CA', 'ca.pem', '-CAkey', 'ca.key', ...sm3, '-vfyopt', `distid:${ID}`,
        '-days', String(opts.days || 40), '-set_serial', String(serial++), '-out', out], dir);
    const signing = fs.readFileSync(out, 'utf8');
    const key = await kmc.newKeyPair();
    const encCsr = path.join(dir, `e${serial}.csr`), encOut = path.join(dir, `e${serial}.pem`);
    sh('openssl', ['req', '-new', '-key', key.file, ...sm3, '-subj', '/CN=Zhang San/O=skf enc', '-out', encCsr], dir);
    sh('openssl', ['x509', '-req', '-in', encCsr, '-CA', 'ca.pem', '-CAkey', 'ca.key', ...sm3, '-vfyopt', `distid:${ID}`,
        '-days', '40', '-set_serial', String(serial++), '-out', encOut], dir);
    const env = await kmc.envelope(Buffer.from(prep.public_key, 'base64'), key);
    return { signing, encryption: fs.readFileSync(encOut, 'utf8'), key, ...env };
}

// The role's certificate (cert.list) and a signature by the role checked against it by openssl.
async function roleSigns(c, dir, role = 'sm2/sign') {
    const { certificates } = await c.ok('cert.list', { token: TOKEN, der: true });
    const e = certificates.find((x) => x.key === role);
    assert.ok(e, `cert.list has ${role}: ${JSON.stringify(certificates.map((x) => x.key))}`);
    const der = Buffer.from(e.der, 'base64');
    fs.writeFileSync(path.join(dir, 'role.pub'), new crypto.X509Certificate(der).publicKey.export({ type: 'spki', format: 'pem' }));
    const data = crypto.randomBytes(64);
    fs.writeFileSync(path.join(dir, 'data'), data);
    const r = await c.ok('sign', { token: TOKEN, key: role, algorithm: 'SM2-SM3', pin: PIN, data: data.toString('base64') });
    fs.writeFileSync(path.join(dir, 'sig'), Buffer.from(r.signature, 'base64'));
    assert.match(sh('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', 'role.pub', '-rawin', '-digest', 'sm3',
        '-pkeyopt', `distid:${ID}`, '-in', 'data', '-sigfile', 'sig'], dir).toString(), /Signature Verified Successfully/);
    return { der, certificates };
}

// Resolves once token.list shows the device (want true) or no longer shows it (want false).
async function present(c, want = true) {
    for (let i = 0; ; i++) {
        const r = await c.call('token.list');
        if (r.result && r.result.tokens.some((x) => x.id === TOKEN) === want) return;
        if (i > 400) assert.fail(`${TOKEN} ${want ? 'never came' : 'never went'}: ${JSON.stringify(r)}`);
        await new Promise((res) => setTimeout(res, 50));
    }
}

async function start(t, dir) {
    const d = new Ukeyd(t, { config: { log_level: 'debug', skf_modules: [{ path: MODULE, name: 'Soft SKF' }] } });
    d.env.UKSKF_DIR = dir;
    d.env.PCSCLITE_CSOCK_NAME = path.join(dir, 'no-pcscd/pcscd.comm');
    await d.start();
    const c = await KeysClient.unix(d);
    await present(c);
    return { d, c };
}

test('skf renewal: extend with dual certificates (both envelope forms), refusals change nothing, abort', { skip, timeout: 180000 }, async (t) => {
    const dir = tempDir(t, 'ukskr-');
    provision(dir);
    const kmc = new TestKmc({ dir, ca: null }).init();
    const { d, c } = await start(t, dir);
    const first = await roleSigns(c, dir);

    // Bad parameters: refused before anything happens.
    assert.equal(reason(await c.call('renewal.prepare', { token: TOKEN, slot: 'sm2/enc', mode: 'extend', pin: PIN })), 'INVALID_PARAMS');
    assert.equal(reason(await c.call('renewal.prepare', { token: TOKEN, slot: 'sm2', mode: 'extend', pin: PIN })), 'INVALID_PARAMS');
    assert.equal(reason(await c.call('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'repair', pin: PIN })), 'RENEWAL_STATE');
    assert.deepEqual(containers(dir), ['sm2']);

    const prep = await c.ok('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'extend', pin: PIN });
    assert.equal(prep.algorithm, 'sm2');
    assert.match(prep.staged_slot, /^uk[0-9a-f]{8}\/sign$/);
    const staged = prep.staged_slot.split('/')[0];
    assert.deepEqual(containers(dir).sort(), [staged, 'sm2'].sort(), 'the new key is in a new container');
    const got = await issue(dir, kmc, prep);

    // Refusals: nothing on the card changes, the renewal stays prepared, the old pair signs.
    const other = await issue(dir, kmc, prep);
    const commit = (extra) => c.call('renewal.commit', { renewal_id: prep.renewal_id, certificate: got.signing, pin: PIN, ...extra });
    const corrupt = Buffer.from(got.asn1);
    corrupt[corrupt.length - 5] ^= 0x40; // inside the encrypted private key
    const cipherBad = Buffer.from(got.blob);
    cipherBad[340] ^= 0x01; // the SM2 cipher's hash (C3)
    const refusals = [
        [{ encryption_certificate: got.encryption }, 'INVALID_PARAMS'],
        [{ enveloped_key: got.asn1.toString('base64') }, 'INVALID_PARAMS'],
        [{ encryption_certificate: got.encryption, enveloped_key: 'AAAA' }, 'ENVELOPE_INVALID'],
        [{ encryption_certificate: got.encryption, enveloped_key: cipherBad.toString('base64') }, 'ENVELOPE_INVALID'],
        [{ encryption_certificate: got.encryption, enveloped_key: other.asn1.toString('base64') }, 'CERT_KEY_MISMATCH'],
        [{ encryption_certificate: other.encryption, enveloped_key: got.asn1.toString('base64') }, 'CERT_KEY_MISMATCH'],
        [{ encryption_certificate: fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8').replace(/CERTIFICATE/g, 'X'), enveloped_key: got.asn1.toString('base64') }, 'CERT_INVALID'],
    ];
    // An envelope wrapped to another key (the old signing key) does not open on this one.
    const oldSpki = new crypto.X509Certificate(first.der).publicKey.export({ type: 'spki', format: 'der' });
    const wrongRecipient = await kmc.envelope(oldSpki, got.key);
    refusals.push([{ encryption_certificate: got.encryption, enveloped_key: wrongRecipient.asn1.toString('base64') }, 'ENVELOPE_INVALID']);
    // Another symmetric algorithm than SM4: in the blob (SGD_SM1_ECB) and in the ASN.1 form (SM1).
    const sm1Blob = Buffer.from(got.blob);
    sm1Blob.writeUInt32LE(0x00000101, 4);
    refusals.push([{ encryption_certificate: got.encryption, enveloped_key: sm1Blob.toString('base64') }, 'ENVELOPE_INVALID']);
    const sm1 = await new TestKmc({ dir, ca: null, sm4Oid: '1.2.156.10197.1.102' }).init().envelope(Buffer.from(prep.public_key, 'base64'), got.key);
    refusals.push([{ encryption_certificate: got.encryption, enveloped_key: sm1.asn1.toString('base64') }, 'ENVELOPE_INVALID']);
    // DER that is not an SM2EnvelopedKey.
    refusals.push([{ encryption_certificate: got.encryption, enveloped_key: Buffer.from('3003020101', 'hex').toString('base64') }, 'ENVELOPE_INVALID']);
    // The corrupted private key still decrypts to 32 bytes, but not to the certificate's key.
    refusals.push([{ encryption_certificate: got.encryption, enveloped_key: corrupt.toString('base64') }, null]);
    for (const [extra, want] of refusals) {
        const r = await commit(extra);
        t.diagnostic(`refused ${Object.keys(extra).join('+')}: ${reason(r)}`);
        if (want) assert.equal(reason(r), want, `${JSON.stringify(Object.keys(extra))} ${JSON.stringify(r)}\n${d.log.slice(-3000)}`);
        else assert.ok(r.error, `refused: ${JSON.stringify(r)}`);
        assert.equal((await c.ok('renewal.status', { renewal_id: prep.renewal_id })).state, 'prepared');
        const now = await roleSigns(c, dir);
        assert.deepEqual(now.der, first.der, 'the old certificate stays the role\'s');
    }
    assert.deepEqual(containers(dir).sort(), [staged, 'sm2'].sort());

    // The commit: the new container gets both pairs, the old container goes.
    const done = await commit({ encryption_certificate: got.encryption, enveloped_key: got.asn1.toString('base64') });
    assert.equal(reason(done), 'OK', JSON.stringify(done));
    assert.equal((await c.ok('renewal.status', { renewal_id: prep.renewal_id })).state, 'done');
    assert.deepEqual(containers(dir).filter((n) => !n.startsWith('ukeyd')), [staged], 'the old container is retired');
    const after = await roleSigns(c, dir);
    assert.equal(new crypto.X509Certificate(after.der).serialNumber, new crypto.X509Certificate(got.signing).serialNumber);
    const enc = after.certificates.find((x) => x.key === `${staged}/enc`);
    assert.ok(enc, JSON.stringify(after.certificates.map((x) => x.key)));
    assert.deepEqual(Buffer.from(enc.der, 'base64'), Buffer.from(new crypto.X509Certificate(got.encryption).raw));
    // The old certificate is backed up.
    const st = await c.ok('renewal.status', { renewal_id: prep.renewal_id });
    assert.ok(st.old_certificate_backup && fs.existsSync(st.old_certificate_backup), JSON.stringify(st));

    // A second renewal of the role, with the C blob form of the envelope.
    const prep2 = await c.ok('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'extend', pin: PIN });
    const staged2 = prep2.staged_slot.split('/')[0];
    const got2 = await issue(dir, kmc, prep2);
    assert.equal(reason(await c.call('renewal.commit', {
        renewal_id: prep2.renewal_id, certificate: got2.signing, pin: PIN,
        encryption_certificate: got2.encryption, enveloped_key: got2.blob.toString('base64'),
    })), 'OK');
    assert.deepEqual(containers(dir).filter((n) => !n.startsWith('ukeyd')), [staged2], 'the first renewed container is retired');
    const after2 = await roleSigns(c, dir);
    assert.equal(new crypto.X509Certificate(after2.der).serialNumber, new crypto.X509Certificate(got2.signing).serialNumber);

    // A blob made for 8-byte ULONG modules is not this module's form.
    const prep3 = await c.ok('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'extend', pin: PIN });
    const got3 = await issue(dir, kmc, prep3);
    const cipher = sm2CipherFromDer(await kmc.sm2Encrypt(Buffer.from(prep3.public_key, 'base64'), crypto.randomBytes(16)));
    const wide = envelopedKeyBlob({ encryptedPriKey: Buffer.alloc(64, 1), pub: { x: Buffer.alloc(32, 2), y: Buffer.alloc(32, 3) }, cipher }, 8);
    assert.equal(reason(await c.call('renewal.commit', {
        renewal_id: prep3.renewal_id, certificate: got3.signing, pin: PIN,
        encryption_certificate: got3.encryption, enveloped_key: wide.toString('base64'),
    })), 'ENVELOPE_INVALID');
    // Abort: the staged container goes, the role keeps its pair.
    await c.ok('renewal.abort', { renewal_id: prep3.renewal_id, pin: PIN });
    assert.deepEqual(containers(dir).filter((n) => !n.startsWith('ukeyd')), [staged2]);
    assert.deepEqual((await roleSigns(c, dir)).der, after2.der);
    assert.doesNotMatch(d.log, new RegExp(PIN), 'a PIN in the log');
    c.close();
    d.allowError(/activation stopped|ENVELOPE|SAR/);
    await d.stop();
});

test('skf renewal through the demo portal\'s SM2 CA and KMC: extend with the dual issue it answers', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukskc-');
    const ca = await new TestCa({ dir: path.join(dir, 'portal-ca'), days: 60 }).init();
    provision(dir, { ca: { key: ca.sm2KeyPath, cert: ca.sm2CertPath } });
    const kmc = new TestKmc({ dir: path.join(dir, 'kmc'), ca }).init();
    const { d, c } = await start(t, dir);
    const first = await roleSigns(c, dir);
    const prep = await c.ok('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'extend', pin: PIN });
    // The portal's CA checks the request (SM2 with the ID, the same subject byte for byte).
    const got = await kmc.issueDual({ csrPem: prep.csr_pem, oldCertDer: first.der });
    const r = await c.call('renewal.commit', {
        renewal_id: prep.renewal_id, certificate: got.signing.pem, chain: [ca.sm2CertPem], pin: PIN,
        encryption_certificate: got.encryption.pem, enveloped_key: got.asn1.toString('base64'),
    });
    assert.equal(reason(r), 'OK', JSON.stringify(r));
    const after = await roleSigns(c, dir);
    assert.deepEqual(after.der, got.signing.der);
    const enc = after.certificates.find((x) => x.key === `${prep.staged_slot.split('/')[0]}/enc`);
    assert.deepEqual(Buffer.from(enc.der, 'base64'), got.encryption.der);
    c.close();
    await d.stop();
});

test('skf renewal of an RSA container: RSA-2048 request, no encryption pair', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukskr-');
    const o = (...a) => sh('openssl', a, dir);
    o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-subj', '/CN=skf RSA CA', '-days', '30', '-out', 'ca.pem');
    o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa.key', '-subj', '/CN=Li Si', '-out', 'rsa.csr');
    o('x509', '-req', '-in', 'rsa.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-days', '20', '-set_serial', '7', '-out', 'rsa.pem');
    sh(TOOL, ['provision', '--dir', dir, '--device', 'ukey0', '--serial', 'SKF-R', '--retries', '5',
        '--container', 'rsa', '--key', 'rsa.key', '--cert', 'rsa.pem'], dir);
    const { d, c } = await start(t, dir);
    const prep = await c.ok('renewal.prepare', { token: TOKEN, slot: 'rsa/sign', mode: 'extend', pin: PIN });
    assert.equal(prep.algorithm, 'rsa2048');
    fs.writeFileSync(path.join(dir, 'new.csr'), prep.csr_pem);
    assert.match(spawnSync('openssl', ['req', '-in', 'new.csr', '-noout', '-verify'], { cwd: dir, encoding: 'utf8' }).stderr, /verify OK/);
    o('x509', '-req', '-in', 'new.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-days', '40', '-set_serial', '8', '-out', 'new.pem');
    const issued = fs.readFileSync(path.join(dir, 'new.pem'), 'utf8');
    // An RSA container takes no SM2 envelope.
    assert.equal(reason(await c.call('renewal.commit', { renewal_id: prep.renewal_id, certificate: issued, pin: PIN,
        encryption_certificate: issued, enveloped_key: Buffer.alloc(388, 1).toString('base64') })), 'CERT_INVALID');
    const r = await c.call('renewal.commit', { renewal_id: prep.renewal_id, certificate: issued, chain: [fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8')], pin: PIN });
    assert.equal(reason(r), 'OK', JSON.stringify(r));
    const { certificates } = await c.ok('cert.list', { token: TOKEN, der: true });
    const role = certificates.find((x) => x.key === 'rsa/sign');
    const x = new crypto.X509Certificate(Buffer.from(role.der, 'base64'));
    assert.equal(x.serialNumber, '08');
    const data = crypto.randomBytes(40);
    const sig = await c.ok('sign', { token: TOKEN, key: 'rsa/sign', algorithm: 'RSA-PKCS1-SHA256', pin: PIN, data: data.toString('base64') });
    assert.ok(crypto.verify('sha256', data, x.publicKey, Buffer.from(sig.signature, 'base64')));
    assert.deepEqual(containers(dir), [prep.staged_slot.split('/')[0]], 'the old RSA container is retired');
    c.close();
    await d.stop();
});

test('skf renewal: repair of an expired SM2 certificate, with dual certificates', { skip: skip || (!FAKETIME && 'faketime is not installed'), timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukskp-');
    provision(dir, { expired: true });
    const kmc = new TestKmc({ dir, ca: null }).init();
    const { d, c } = await start(t, dir);
    assert.equal(reason(await c.call('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'extend', pin: PIN })), 'RENEWAL_STATE');
    const prep = await c.ok('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'repair', pin: PIN });
    assert.equal(prep.mode, 'repair');
    // The subject is the expired certificate's.
    assert.match(sh('openssl', ['req', '-noout', '-subject', '-nameopt', 'RFC2253'], dir, prep.csr_pem).toString(), /CN=Zhang San/);
    const got = await issue(dir, kmc, prep);
    const r = await c.call('renewal.commit', {
        renewal_id: prep.renewal_id, certificate: got.signing, pin: PIN,
        encryption_certificate: got.encryption, enveloped_key: got.asn1.toString('base64'),
    });
    assert.equal(reason(r), 'OK', JSON.stringify(r));
    assert.equal((await c.ok('renewal.status', { renewal_id: prep.renewal_id })).state, 'done');
    const after = await roleSigns(c, dir);
    assert.equal(new crypto.X509Certificate(after.der).serialNumber, new crypto.X509Certificate(got.signing).serialNumber);
    assert.deepEqual(containers(dir), [prep.staged_slot.split('/')[0]]);
    c.close();
    await d.stop();
});

test('skf renewal: a fault at every SKF call of prepare and commit never loses the working pair', { skip, timeout: 300000 }, async (t) => {
    const dir = tempDir(t, 'ukskf-');
    provision(dir);
    const kmc = new TestKmc({ dir, ca: null }).init();
    const { d, c } = await start(t, dir);
    const first = await roleSigns(c, dir);
    const ctl = (...a) => sh(TOOL, ['ctl', '--dir', dir, ...a], dir);
    // The role signs with a pair whose certificate cert.list shows: the old one or the new one.
    const working = async (allowed) => {
        const { der } = await roleSigns(c, dir);
        assert.ok(allowed.some((a) => a.equals(der)), 'the role has one of the expected certificates');
        return der;
    };

    // prepare: fault at call N for N = 0, 1, ... until a prepare goes through.
    let prep = null;
    let faults = 0;
    for (let n = 0; !prep; n++) {
        assert.ok(n < 200, 'prepare never completed');
        for (const executed of [false, true]) {
            if (prep) break;
            ctl('clear');
            ctl('fail-after', String(n), '0A000001', ...(executed ? ['executed'] : []));
            const r = await c.call('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'extend', pin: PIN });
            const fired = /^fail-after -1 /m.test(ctl('show').toString());
            ctl('clear');
            if (r.result) {
                prep = r.result;
                break;
            }
            assert.ok(fired, `prepare failed without the fault (n ${n}, executed ${executed}): ${JSON.stringify(r)}\n${d.log.slice(-6000)}`);
            faults++;
            await working([first.der]);
            // Whatever the failed prepare left is cleaned by the next one: never more than one
            // staged container beside the working one.
            assert.ok(containers(dir).filter((x) => !x.startsWith('ukeyd')).length <= 2, JSON.stringify(containers(dir)));
        }
    }
    assert.ok(faults > 10, `faults injected into prepare: ${faults}`);
    t.diagnostic(`prepare: ${faults} faults injected`);
    // That renewal is abandoned; each commit below starts from a new prepared renewal, so that
    // the fault lands on call N of a whole commit.
    await c.ok('renewal.abort', { renewal_id: prep.renewal_id, pin: PIN });
    let old = first.der;
    let whole = false;
    faults = 0;
    const step = instrumented() ? 3 : 1;
    for (let n = 0; !whole; n += step) {
        assert.ok(n < 400, 'commit never completed');
        for (const variant of ['fail', 'executed']) {
            const executed = variant === 'executed';
            const p = await c.ok('renewal.prepare', { token: TOKEN, slot: 'sm2/sign', mode: 'extend', pin: PIN });
            const got = await issue(dir, kmc, p);
            const params = {
                renewal_id: p.renewal_id, certificate: got.signing, pin: PIN,
                encryption_certificate: got.encryption, enveloped_key: got.asn1.toString('base64'),
            };
            const newDer = Buffer.from(new crypto.X509Certificate(got.signing).raw);
            ctl('fail-after', String(n), '0A000001', ...(executed ? ['executed'] : []));
            const r = await c.call('renewal.commit', params);
            const fired = /^fail-after -1 /m.test(ctl('show').toString());
            ctl('clear');
            const state = (await c.ok('renewal.status', { renewal_id: p.renewal_id })).state;
            if (!fired) {
                // The whole commit took fewer than n calls: it went through.
                assert.equal(reason(r), 'OK', JSON.stringify(r));
                assert.equal(state, 'done');
                whole = true;
                break;
            }
            faults++;
            assert.ok(['prepared', 'written', 'activated', 'done'].includes(state), `state ${state} after ${JSON.stringify(r)}`);
            await working([old, newDer]);
            // Committing again finishes it, from wherever the fault left it.
            if (state !== 'done') {
                const again = await c.call('renewal.commit', params);
                assert.equal(reason(again), 'OK', `commit again from ${state} (call ${n}, ${variant}): ${JSON.stringify(again)}\n${d.log.slice(-4000)}`);
            }
            assert.equal((await c.ok('renewal.status', { renewal_id: p.renewal_id })).state, 'done');
            await working([newDer]);
            assert.equal(containers(dir).length, 1, `${JSON.stringify(containers(dir))} after a fault at call ${n} (${variant}), state ${state}\n${d.log.slice(-5000)}`);
            old = newDer;
        }
    }
    assert.ok(faults * step > 100, `faults injected into commit: ${faults}`);
    t.diagnostic(`commit: ${faults} faults injected`);
    assert.equal(containers(dir).length, 1, JSON.stringify(containers(dir)));
    c.close();
    d.allowError(/activation stopped: CARD_(ERROR|REMOVED)|does not read back as written/);
    await d.stop();
});
