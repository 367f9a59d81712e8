'use strict';
// One renewal suite for every token driver (issue 11: "parameterised, so drivers cannot drift
// apart"): the same cases run against the PIV driver (the virtual card in a private rig, key 9a)
// and the PKCS#11 driver (a SoftHSM2 token, key id 01), through the Unix socket of a real ukeyd:
//   - extend: prepare (CSR verified by openssl, its key the reported one), status and list, a
//     restart of ukeyd between prepare and commit, refused certificates (garbage, another key,
//     expired, a chain that does not lead up) that change nothing, commit, the new key signs as
//     the role, the old certificate backed up and the old pair retired (on PKCS#11 its private
//     key too, seen with a login);
//   - abort of a prepared renewal: the staged key is gone;
//   - a certificate that is not valid yet: written, the old pair signs until then, activated by
//     ukeyd's timer; on PKCS#11 the timer has no PIN, so the old pair's retirement waits (state
//     `activated`, step old_key_pending, nothing removed) until the renewal is committed again
//     with the PIN (docs/renewal.md, "PKCS#11 tokens");
//   - repair of an expired certificate.
// The driver-specific part of each case is in the backends below; the cases are shared.
//
// A third backend, opensc, is the virtual PIV card served by the PKCS#11 driver through OpenSC's
// opensc-pkcs11.so, which takes the card over from the PIV driver by an "atr" hint. OpenSC's PIV
// emulation cannot renew (no key-pair generation mechanism; C_GenerateKeyPair, C_CreateObject and
// C_DestroyObject answer CKR_FUNCTION_NOT_SUPPORTED): for it every case asserts that
// renewal.prepare is refused with NOT_SUPPORTED before anything on the card changed (the card's
// state files and PIN counter are the same), and that listing, PIN and signing work.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Ukeyd, tempDir } = require('./lib/ukeyd');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, openssl, exec, mustExec, PIN } = require('./lib/rig');
const hsm = require('./lib/softhsm');

const OPENSC = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';

const reason = (r) => (r && r.error ? r.error.data.reason : r && r.result ? 'OK' : String(r));
const b64 = (pem) => Buffer.from(new crypto.X509Certificate(pem).raw).toString('base64');

// A certificate for the public key spki (base64 DER), issued by the CA at ca (ca.pem, ca.key),
// valid from now + from seconds to now + to seconds; resolves its PEM.
async function certDated(dir, ca, spki, from, to, name) {
    const pub = path.join(dir, `${name}.pub`);
    fs.writeFileSync(pub, crypto.createPublicKey({ key: Buffer.from(spki, 'base64'), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }));
    const out = path.join(dir, `${name}.pem`);
    await exec('python3', ['-c', `
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
pub = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
ca = x509.load_pem_x509_certificate(open(sys.argv[3], "rb").read())
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
c = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sys.argv[5])]))
     .issuer_name(ca.subject).public_key(pub).serial_number(x509.random_serial_number())
     .not_valid_before(now + datetime.timedelta(seconds=int(sys.argv[6])))
     .not_valid_after(now + datetime.timedelta(seconds=int(sys.argv[7])))
     .sign(key, hashes.SHA256()))
open(sys.argv[4], "wb").write(c.public_bytes(serialization.Encoding.PEM))
`, pub, `${ca}.key`, `${ca}.pem`, out, name, String(from), String(to)]);
    assert.ok(fs.existsSync(out), `python3 cryptography made ${out}`);
    return fs.readFileSync(out, 'utf8');
}

async function makeCa(dir, name) {
    const ca = path.join(dir, name);
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`,
        '-out', `${ca}.pem`, '-subj', `/CN=${name}`, '-days', '30']);
    return ca;
}

// The SPKI (base64 DER) of a certificate (PEM or base64 DER).
function spkiOf(cert) {
    const x = new crypto.X509Certificate(cert.includes('BEGIN') ? cert : Buffer.from(cert, 'base64'));
    return x.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
}

/*
 * A backend: open(t, dir, {expiredBy}) prepares a token (with the role's certificate expired when
 * expiredBy, the CA that issues the expired one) and returns a context:
 *   role, sigAlg               the key renewed, the algorithm it signs with
 *   pin                        params for commit/abort (PKCS#11: they delete private keys)
 *   start(reuse)               starts ukeyd (reuse: the previous daemon's dir), resolves {d, c, token}
 *   keys()                     key locations that hold a private key, or null when the token
 *                              cannot tell them without ukeyd (PIV: keys have no listing)
 *   certs()                    (PKCS#11) key ids that have a certificate object
 *   retirementNeedsPin         the activation timer (no PIN) leaves the retirement pending
 */
const backends = [
    {
        name: 'piv',
        skip: rigUnavailable() || false,
        async open(t, dir, { expiredBy } = {}) {
            const rig = await new Rig(t).up();
            if (expiredBy) {
                const cur = (await rig.piv(['-a', 'read-certificate', '-s', '9a'])).toString();
                const pem = await certDated(dir, expiredBy, spkiOf(cur), -40 * 86400, -2 * 86400, 'expired-9a');
                const der = path.join(dir, 'expired-9a.der');
                await openssl(['x509', '-in', path.join(dir, 'expired-9a.pem'), '-outform', 'DER', '-out', der]);
                await rig.piv(['-a', 'import-certificate', '-s', '9a', '-K', 'DER', '-i', der]);
                assert.ok(pem);
            }
            const config = { piv_allow_default_management_key: true };
            return {
                role: '9a',
                sigAlg: 'RSA-PKCS1-SHA256',
                pin: {},
                retirementNeedsPin: false,
                async start(reuse) {
                    const d = await startUkeyd(t, rig, { config, dir: reuse });
                    const c = await KeysClient.unix(d);
                    return { d, c, token: (await waitToken(c, rig.reader)).id };
                },
                keys: () => null,
            };
        },
    },
    {
        name: 'pkcs11',
        skip: hsm.unavailable(),
        async open(t, dir, { expiredBy } = {}) {
            const env = hsm.softhsm(dir, ['01']);
            if (expiredBy) {
                await certDated(dir, expiredBy, spkiOf(fs.readFileSync(path.join(dir, 'c01.pem'), 'utf8')), -40 * 86400, -2 * 86400, 'expired-01');
                const der = path.join(dir, 'expired-01.der');
                await openssl(['x509', '-in', path.join(dir, 'expired-01.pem'), '-outform', 'DER', '-out', der]);
                hsm.writeCert(env, dir, '01', der);
            }
            return {
                role: '01',
                sigAlg: 'RSA-PKCS1-SHA256',
                pin: { pin: hsm.PIN },
                retirementNeedsPin: true,
                async start(reuse) {
                    const d = new Ukeyd(t, { dir: reuse, config: { log_level: 'debug', pkcs11_modules: [{ path: hsm.SOFTHSM, name: 'SoftHSM' }] } });
                    Object.assign(d.env, env);
                    d.env.PCSCLITE_CSOCK_NAME = path.join(dir, 'no-pcscd/pcscd.comm');
                    await d.start();
                    const c = await KeysClient.unix(d);
                    await c.ok('system.subscribe');
                    return { d, c, token: (await hsm.tokenByLabel(c)).id };
                },
                keys: () => hsm.objects(env, dir).filter((o) => o.type === 'privkey').map((o) => o.id).sort(),
                certs: () => hsm.objects(env, dir).filter((o) => o.type === 'cert').map((o) => o.id).sort(),
            };
        },
    },
    {
        name: 'opensc',
        skip: rigUnavailable() || (fs.existsSync(OPENSC) ? false : `OpenSC's module is not installed (${OPENSC})`),
        // renewal.prepare's answer on this backend: the cases check the refusal instead.
        refuses: 'NOT_SUPPORTED',
        async open(t, dir) {
            const rig = await new Rig(t).up();
            const atr = (await mustExec('opensc-tool', ['-a'], { env: rig.pcscEnv })).toString().match(/^([0-9a-f]{2}(:[0-9a-f]{2})+)$/m);
            assert.ok(atr, 'opensc-tool -a prints the card\'s ATR');
            const config = { log_level: 'debug', pkcs11_modules: [{ path: OPENSC, name: 'OpenSC', atr: atr[1] }] };
            return {
                role: '01', // PIV slot 9a through OpenSC: CKA_ID 01
                sigAlg: 'RSA-PKCS1-SHA256',
                pin: { pin: PIN },
                rig,
                async start(reuse) {
                    const d = await startUkeyd(t, rig, { config, dir: reuse });
                    const c = await KeysClient.unix(d);
                    return { d, c, token: (await waitToken(c, `OpenSC: ${rig.reader}`)).id };
                },
                keys: () => null,
                // The card's own state (objects, keys, PIN counter), to show nothing changed.
                cardState: () => stateDigest(rig.env.UK_RIG_CARD_STATE),
            };
        },
    },
];

// A digest of the virtual card's persistent state file (keys, objects, PIN counter).
const stateDigest = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// A backend that cannot renew (b.refuses): the token is listed once, through the PKCS#11 driver;
// renewal.prepare (mode) answers b.refuses without a PIN try and with the card unchanged; the
// role's certificate is still listed and signs. Resolves when done.
async function refusedRenewal(t, b, mode) {
    const dir = tempDir(t, `ukrx-${b.name}-`);
    const x = await b.open(t, dir);
    const { d, c, token } = await x.start();
    const { tokens } = await c.ok('token.list');
    assert.deepEqual(tokens.filter((e) => e.id).map((e) => `${e.driver} ${e.reader}`), [`p11 OpenSC: ${x.rig.reader}`], `listed once, through the module: ${JSON.stringify(tokens)}`);
    const oldDer = await roleDer(c, token, x.role);
    assert.equal(oldDer, b64((await x.rig.piv(['-a', 'read-certificate', '-s', '9a'])).toString()), 'the certificate of PIV slot 9a');
    const retries = (await c.ok('token.list')).tokens.find((e) => e.id === token).pin_retries;
    const before = x.cardState();
    const r = await c.call('renewal.prepare', { token, slot: x.role, mode, pin: PIN });
    assert.equal(reason(r), b.refuses, JSON.stringify(r));
    assert.equal(x.cardState(), before, 'nothing on the card changed');
    assert.deepEqual((await c.ok('renewal.list')).renewals, [], 'no renewal recorded');
    await d.waitLog(/offers no key-pair generation; no renewal on it/);
    // The PIN and signing work; the wrong PIN costs a try, the right one restores them.
    const bad = await c.call('sign', { token, key: x.role, algorithm: x.sigAlg, data: Buffer.from('x').toString('base64'), pin: '999999' });
    assert.equal(reason(bad), 'PIN_INCORRECT', JSON.stringify(bad));
    assert.notEqual(x.cardState(), before, 'the wrong PIN is counted on the card: the digest sees what the card keeps');
    assert.ok(await signsWith(c, token, x, new crypto.X509Certificate(Buffer.from(oldDer, 'base64')).toString()), 'the role signs with its key');
    assert.equal((await c.ok('token.list')).tokens.find((e) => e.id === token).pin_retries, retries);
    c.close();
    await d.stop();
}

async function certsDer(c, token) {
    const { certificates } = await c.ok('cert.list', { token, der: true });
    return certificates.map((e) => `${e.key}:${e.der}`).sort();
}

async function roleDer(c, token, role) {
    const e = (await c.ok('cert.list', { token, der: true })).certificates.find((x) => x.key === role);
    return e && e.der;
}

async function signsWith(c, token, x, certPem) {
    const data = crypto.randomBytes(64);
    const s = await c.ok('sign', { token, key: x.role, algorithm: x.sigAlg, data: data.toString('base64'), pin: PIN });
    return crypto.verify('sha256', data, crypto.createPublicKey(certPem), Buffer.from(s.signature, 'base64'));
}

for (const b of backends) {
    test(`renewal on ${b.name}: extend, restart between prepare and commit, refusals, commit, old pair retired`, { skip: b.skip, timeout: 120000 }, async (t) => {
        if (b.refuses) return refusedRenewal(t, b, 'extend');
        const dir = tempDir(t, `ukrd-${b.name}-`);
        const ca = await makeCa(dir, 'drivers CA');
        const other = await makeCa(dir, 'other CA');
        const x = await b.open(t, dir);
        let { d, c, token } = await x.start();
        const oldDer = await roleDer(c, token, x.role);
        assert.ok(oldDer, `${x.role} has a certificate`);
        const keysBefore = x.keys();

        const p = await c.ok('renewal.prepare', { token, slot: x.role, mode: 'extend', pin: PIN });
        assert.equal(p.state, 'prepared');
        assert.notEqual(p.staged_slot, x.role);
        const csr = path.join(dir, 'r.csr');
        fs.writeFileSync(csr, p.csr_pem);
        const v = await exec('openssl', ['req', '-in', csr, '-noout', '-verify', '-pubkey']);
        assert.match(v.stdout + v.stderr, /verify OK|signature ok/);
        assert.doesNotMatch(v.stdout + v.stderr, /fail/i);
        assert.equal(crypto.createPublicKey(v.stdout.slice(v.stdout.indexOf('-----BEGIN'))).export({ type: 'spki', format: 'der' }).toString('base64'), p.public_key);
        assert.equal(p.public_key === spkiOf(oldDer), false, 'a new key');
        if (keysBefore) assert.deepEqual(x.keys(), [...keysBefore, p.staged_slot].sort(), 'the new key is staged next to the old one');
        const before = await certsDer(c, token);

        // ukeyd restarted between prepare and commit: the renewal is still there.
        c.close();
        await d.stop();
        ({ d, c, token } = await x.start(d.dir));
        assert.equal((await c.ok('renewal.status', { renewal_id: p.renewal_id })).state, 'prepared');
        assert.ok((await c.ok('renewal.list')).renewals.some((r) => r.renewal_id === p.renewal_id && r.state === 'prepared'));

        // Refused certificates change nothing.
        const refusals = [
            ['garbage', 'bm90IGEgY2VydGlmaWNhdGU=', 'CERT_INVALID'],
            ['another key', fs.readFileSync(`${ca}.pem`, 'utf8'), 'CERT_KEY_MISMATCH'],
            ['expired', await certDated(dir, ca, p.public_key, -20 * 86400, -3600, 'staged-expired'), 'CERT_EXPIRED'],
        ];
        for (const [what, certificate, want] of refusals)
            assert.equal(reason(await c.call('renewal.commit', { renewal_id: p.renewal_id, certificate, ...x.pin })), want, what);
        const issued = await certDated(dir, ca, p.public_key, -60, 20 * 86400, 'issued');
        const wrongChain = await c.call('renewal.commit', { renewal_id: p.renewal_id, certificate: issued, chain: [fs.readFileSync(`${other}.pem`, 'utf8')], ...x.pin });
        assert.equal(reason(wrongChain), 'CHAIN_INVALID');
        assert.deepEqual(await certsDer(c, token), before, 'refused certificates change nothing');
        assert.equal((await c.ok('renewal.status', { renewal_id: p.renewal_id })).state, 'prepared');
        if (keysBefore) assert.deepEqual(x.keys(), [...keysBefore, p.staged_slot].sort());

        const done = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: issued, chain: [fs.readFileSync(`${ca}.pem`, 'utf8')], ...x.pin });
        assert.equal(done.state, 'done');
        assert.equal(done.certificate.key, x.role);
        assert.equal(await roleDer(c, token, x.role), b64(issued), 'cert.list shows the new certificate for the role');
        assert.ok(await signsWith(c, token, x, issued), 'the role signs with the new key');
        const backups = fs.readdirSync(path.join(d.stateDir, 'backup'));
        assert.equal(backups.length, 1);
        assert.equal(fs.readFileSync(path.join(d.stateDir, 'backup', backups[0])).toString('base64'), oldDer);
        const after = (await c.ok('cert.list', { token, der: true })).certificates;
        assert.ok(!after.some((e) => e.der === oldDer), 'the old certificate is retired');
        if (keysBefore) {
            const gone = keysBefore.filter((k) => !x.keys().includes(k));
            assert.deepEqual(x.keys(), [p.staged_slot], `the old private key is deleted (was ${keysBefore}, deleted ${gone})`);
        }
        const st = await c.ok('renewal.status', { renewal_id: p.renewal_id });
        assert.equal(st.state, 'done');
        assert.ok(!st.steps.some((s) => s.step === 'old_key_pending' || s.step === 'old_key_kept'), JSON.stringify(st.steps));
        c.close();
        await d.stop();
    });

    test(`renewal on ${b.name}: abort, then a certificate not valid yet is written, activated when due, and the old pair retired`, { skip: b.skip || (b.refuses && 'no renewal on this backend: the extend case checks the refusal'), timeout: 120000 }, async (t) => {
        const dir = tempDir(t, `ukra-${b.name}-`);
        const ca = await makeCa(dir, 'drivers CA');
        const x = await b.open(t, dir);
        const { d, c, token } = await x.start();
        const oldDer = await roleDer(c, token, x.role);
        const oldPem = new crypto.X509Certificate(Buffer.from(oldDer, 'base64')).toString();
        const before = await certsDer(c, token);
        const keysBefore = x.keys();

        // Abort of a prepared renewal: the staged key goes, nothing else changes.
        const a = await c.ok('renewal.prepare', { token, slot: x.role, mode: 'extend', pin: PIN });
        const ab = await c.ok('renewal.abort', { renewal_id: a.renewal_id, ...x.pin });
        assert.equal(ab.state, 'aborted');
        assert.deepEqual(await certsDer(c, token), before);
        if (keysBefore) assert.deepEqual(x.keys(), keysBefore, 'the staged key is deleted');

        // A certificate valid in a few seconds.
        const p = await c.ok('renewal.prepare', { token, slot: x.role, mode: 'extend', pin: PIN });
        if (!keysBefore) assert.equal(p.staged_slot, a.staged_slot, 'the aborted staging slot was freed (lowest free slot again)');
        const delayed = await certDated(dir, ca, p.public_key, 5, 20 * 86400, 'delayed');
        const w = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: delayed, ...x.pin });
        assert.equal(w.state, 'written');
        assert.equal(w.status, 'not_yet_valid');
        assert.equal(await roleDer(c, token, x.role), oldDer, 'the old certificate stays the role\'s until the new one is valid');
        assert.ok(await signsWith(c, token, x, oldPem), 'the old pair signs until then');
        await c.event((m) => m.method === 'renewal.changed' && m.params.renewal.renewal_id === p.renewal_id && ['activated', 'done'].includes(m.params.renewal.state), 20000, 'renewal.changed after valid_from');
        const st = await c.ok('renewal.status', { renewal_id: p.renewal_id });
        assert.equal(await roleDer(c, token, x.role), b64(delayed), 'activated when due');
        assert.ok(await signsWith(c, token, x, delayed), 'the new pair signs');
        if (x.retirementNeedsPin) {
            // The timer has no PIN: the new pair is active, the old one stays whole until a
            // renewal operation with the PIN; ukeyd says so (activated, old_key_pending).
            assert.equal(st.state, 'activated', JSON.stringify(st));
            assert.equal(st.steps[st.steps.length - 1].step, 'old_key_pending');
            assert.equal(st.steps[st.steps.length - 1].result, 'PIN_REQUIRED');
            assert.deepEqual(x.keys(), [...keysBefore, p.staged_slot].sort(), 'nothing removed without the PIN');
            assert.ok(x.certs().includes(x.role), 'the old certificate stays with its key (cert.list lists the role\'s active pair only)');
            const again = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: delayed, ...x.pin });
            assert.equal(again.state, 'done');
        } else {
            assert.equal(st.state, 'done');
        }
        assert.ok(!(await c.ok('cert.list', { token, der: true })).certificates.some((e) => e.der === oldDer), 'the old pair is retired');
        if (keysBefore) assert.deepEqual(x.keys(), [p.staged_slot]);
        c.close();
        await d.stop();
    });

    test(`renewal on ${b.name}: repair of an expired certificate`, { skip: b.skip, timeout: 120000 }, async (t) => {
        if (b.refuses) return refusedRenewal(t, b, 'repair');
        const dir = tempDir(t, `ukrr-${b.name}-`);
        const ca = await makeCa(dir, 'drivers CA');
        const x = await b.open(t, dir, { expiredBy: ca });
        const { d, c, token } = await x.start();
        const oldDer = await roleDer(c, token, x.role);
        assert.equal((await c.ok('cert.list', { token })).certificates.find((e) => e.key === x.role).status, 'expired');
        assert.equal(reason(await c.call('renewal.prepare', { token, slot: x.role, mode: 'extend', pin: PIN })), 'RENEWAL_STATE', 'extend needs a valid certificate');
        const p = await c.ok('renewal.prepare', { token, slot: x.role, mode: 'repair', pin: PIN });
        assert.equal(p.mode, 'repair');
        const csr = path.join(dir, 'repair.csr');
        fs.writeFileSync(csr, p.csr_pem);
        assert.match((await openssl(['req', '-in', csr, '-noout', '-subject'])).toString(), new RegExp(`expired-${x.role}`), 'the expired certificate\'s subject');
        const issued = await certDated(dir, ca, p.public_key, -60, 20 * 86400, 'repaired');
        const done = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: issued, ...x.pin });
        assert.equal(done.state, 'done');
        assert.equal(await roleDer(c, token, x.role), b64(issued));
        assert.match((await c.ok('cert.list', { token })).certificates.find((e) => e.key === x.role).status, /^(valid|expiring)$/);
        assert.ok(await signsWith(c, token, x, issued));
        assert.ok(!(await c.ok('cert.list', { token, der: true })).certificates.some((e) => e.der === oldDer), 'the expired pair is retired');
        if (x.keys()) assert.deepEqual(x.keys(), [p.staged_slot]);
        c.close();
        await d.stop();
    });
}
