'use strict';
// renewal.* on the real daemon against the virtual PIV card: extend 9a (RSA-2048) and 9c
// (P-256) through the Unix socket, each CSR checked by `openssl req -verify` (its output read:
// OpenSSL 3.0 exits 0 on failure), issued by a test CA made here with the openssl CLI, committed
// as PEM; a refused certificate changes nothing on the card (cert.list DER before and after); a
// prepared renewal survives a daemon restart; after commit cert.list shows the new certificate, a
// signature with the key verifies with it, the old certificate is in state_dir/backup and no
// longer on the card (the old pair retired); a certificate valid in a few seconds is activated by
// ukeyd's timer when due (the old pair kept until then, retired then), and renewal.changed
// follows (from the timer too). A renewal belongs to the web origin that prepared it (through WSS,
// the PIN typed in the scripted pinentry): another origin gets RENEWAL_NOT_FOUND for status,
// commit and abort, never a dialog, does not see it in renewal.list nor gets its renewal.changed;
// the local user sees everything. An explicit subject is the CSR's subject; a commit's chain is
// checked (a wrong one: CHAIN_INVALID, the card unchanged). On a card without MOVE KEY, cert.list
// lists the renewed certificate under 9a.
// (The card-level cases - repair, abort, RENEWAL_IN_PROGRESS, SIGKILL at each step, a card
// without MOVE KEY - are in tests/integration/test_renewal.sh.)

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { tempDir, WssClient } = require('./lib/ukeyd');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, openssl, exec, PIN, ORIGIN } = require('./lib/rig');

const OTHER = 'https://other.example.cn';
const reason = (r) => (r && r.error ? r.error.data.reason : r && r.result ? 'OK' : String(r));

async function wssAs(d, origin) {
    return new KeysClient(await WssClient.open(d.port, { origin, ca: d.ca }));
}

async function makeCa(dir, name, subj) {
    const ca = path.join(dir, name);
    await openssl([
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`,
        '-out', `${ca}.pem`, '-subj', subj, '-days', '30',
    ]);
    return ca;
}

// Issues the request in pem with the CA at ca (files ca.pem, ca.key); returns the certificate's PEM.
async function issue(dir, ca, pem, name) {
    const csr = path.join(dir, `${name}.csr`);
    fs.writeFileSync(csr, pem);
    const out = path.join(dir, `${name}.pem`);
    await openssl(['x509', '-req', '-in', csr, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-days', '20', '-out', out]);
    return fs.readFileSync(out, 'utf8');
}

const skip = rigUnavailable() || false;

async function certsDer(c, token) {
    const { certificates } = await c.ok('cert.list', { token, der: true });
    return certificates.map((e) => `${e.key}:${e.der}`);
}

test('renewal: extend 9a and 9c through ukeyd, restart in between, refused certificates change nothing', { skip, timeout: 150000 }, async (t) => {
    const dir = tempDir(t, 'ukr-');
    const rig = await new Rig(t).up();
    const ca = path.join(dir, 'ca');
    await openssl([
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`,
        '-out', `${ca}.pem`, '-subj', '/CN=renewal test CA', '-days', '30',
    ]);
    const config = { piv_allow_default_management_key: true };
    let d = await startUkeyd(t, rig, { config });
    let c = await KeysClient.unix(d);
    const token = (await waitToken(c, rig.reader)).id;

    for (const [slot, alg, sigAlg] of [['9a', 'rsaEncryption', 'RSA-PKCS1-SHA256'], ['9c', 'id-ecPublicKey', 'ECDSA-SHA256']]) {
        const before = await certsDer(c, token);
        const oldDer = (await c.ok('cert.list', { token, der: true })).certificates.find((e) => e.key === slot).der;

        const p = await c.ok('renewal.prepare', { token, slot, mode: 'extend', pin: PIN });
        assert.match(p.renewal_id, /^[0-9a-f]{32}$/);
        assert.equal(p.state, 'prepared');
        assert.match(p.staged_slot, /^(8[2-9a-f]|9[0-5])$/);
        const ev = await c.event((m) => m.method === 'renewal.changed' && m.params.renewal.renewal_id === p.renewal_id);
        assert.equal(ev.params.renewal.state, 'prepared');
        const csr = path.join(dir, `${slot}.csr`);
        fs.writeFileSync(csr, p.csr_pem);
        const v = await exec('openssl', ['req', '-in', csr, '-noout', '-verify', '-text']);
        assert.match(v.stdout + v.stderr, /verify OK|signature ok/);
        assert.doesNotMatch(v.stdout + v.stderr, /fail/i);
        assert.match(v.stdout, new RegExp(alg));
        // The CSR's key is the reported public key.
        const csrPub = await openssl(['req', '-in', csr, '-noout', '-pubkey']);
        assert.equal(
            crypto.createPublicKey(csrPub).export({ type: 'spki', format: 'der' }).toString('base64'),
            p.public_key,
        );
        assert.deepEqual(await certsDer(c, token), before, 'prepare leaves the certificates alone');

        // A restart: the renewal is still there.
        c.close();
        await d.stop();
        d = await startUkeyd(t, rig, { config, dir: d.dir });
        c = await KeysClient.unix(d);
        await waitToken(c, rig.reader);
        const st = await c.ok('renewal.status', { renewal_id: p.renewal_id });
        assert.equal(st.state, 'prepared');
        const list = await c.ok('renewal.list');
        assert.ok(list.renewals.some((r) => r.renewal_id === p.renewal_id));

        // Refused certificates: nothing changes on the card.
        let r = await c.call('renewal.commit', { renewal_id: p.renewal_id, certificate: 'bm90IGEgY2VydGlmaWNhdGU=' });
        assert.equal(r.error.data.reason, 'CERT_INVALID');
        r = await c.call('renewal.commit', { renewal_id: p.renewal_id, certificate: `garbage\n${fs.readFileSync(`${ca}.pem`)}` });
        assert.equal(r.error.data.reason, 'CERT_INVALID');
        r = await c.call('renewal.commit', { renewal_id: p.renewal_id, certificate: fs.readFileSync(`${ca}.pem`, 'utf8') });
        assert.equal(r.error.data.reason, 'CERT_KEY_MISMATCH');
        assert.deepEqual(await certsDer(c, token), before, 'refused certificates change nothing');

        const issued = path.join(dir, `${slot}.pem`);
        await openssl(['x509', '-req', '-in', csr, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-days', '20', '-out', issued]);
        const done = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: fs.readFileSync(issued, 'utf8') });
        assert.equal(done.state, 'done');
        assert.equal(done.certificate.key, slot);
        assert.equal(done.certificate.issuer, 'CN=renewal test CA');
        const newDer = new crypto.X509Certificate(fs.readFileSync(issued)).raw;
        const now = (await c.ok('cert.list', { token, der: true })).certificates.find((e) => e.key === slot);
        assert.equal(now.der, Buffer.from(newDer).toString('base64'), 'cert.list shows the new certificate');

        // The new key signs; the signature verifies with the new certificate.
        const data = crypto.randomBytes(100);
        const s = await c.ok('sign', { token, key: slot, algorithm: sigAlg, data: data.toString('base64'), pin: PIN });
        const ok = crypto.verify('sha256', data, crypto.createPublicKey(fs.readFileSync(issued)), Buffer.from(s.signature, 'base64'));
        assert.ok(ok, `signature with the renewed ${slot} key verifies`);

        // The old certificate is backed up.
        const backups = fs.readdirSync(path.join(d.stateDir, 'backup')).filter((f) => f.includes(`-${slot}-`));
        assert.equal(backups.length, 1);
        assert.equal(fs.readFileSync(path.join(d.stateDir, 'backup', backups[0])).toString('base64'), oldDer);
        // ... and the old pair is retired: no slot lists its certificate any more.
        const listed = (await c.ok('cert.list', { token, der: true })).certificates;
        assert.ok(!listed.some((e) => e.der === oldDer), `the old ${slot} certificate is retired`);
    }
    // A certificate valid only in a few seconds: written, the old pair stays active, and ukeyd's
    // timer activates it when due (token.changed, status done, cert.list shows it).
    const before = (await c.ok('cert.list', { token, der: true })).certificates.find((e) => e.key === '9a').der;
    const p = await c.ok('renewal.prepare', { token, slot: '9a', mode: 'extend', pin: PIN });
    const pubFile = path.join(dir, 'delayed.pub');
    fs.writeFileSync(pubFile, crypto.createPublicKey({ key: Buffer.from(p.public_key, 'base64'), format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }));
    const certFile = path.join(dir, 'delayed.pem');
    await exec('python3', ['-c', `
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
pub = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
ca = x509.load_pem_x509_certificate(open(sys.argv[3], "rb").read())
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
c = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "delayed")]))
     .issuer_name(ca.subject).public_key(pub).serial_number(x509.random_serial_number())
     .not_valid_before(now + datetime.timedelta(seconds=4)).not_valid_after(now + datetime.timedelta(days=30))
     .sign(key, hashes.SHA256()))
open(sys.argv[4], "wb").write(c.public_bytes(serialization.Encoding.PEM))
`, pubFile, `${ca}.key`, `${ca}.pem`, certFile]);
    const w = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: fs.readFileSync(certFile, 'utf8') });
    assert.equal(w.state, 'written');
    assert.equal(w.status, 'not_yet_valid');
    assert.match(w.valid_from, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(w.certificate.status, 'not_yet_valid');
    const mid = (await c.ok('cert.list', { token, der: true })).certificates.find((e) => e.key === '9a').der;
    assert.equal(mid, before, 'the old certificate stays in 9a until the new one is valid');
    const midAll = (await c.ok('cert.list', { token, der: true })).certificates;
    assert.equal(midAll.filter((e) => e.der === before).length, 1, 'the old pair is kept (in 9a only) until activation');
    await c.event((m) => m.method === 'token.changed' && m.params.token.id === token && Date.now() > Date.parse(w.valid_from), 15000, 'token.changed after valid_from');
    const st = await c.ok('renewal.status', { renewal_id: p.renewal_id });
    assert.equal(st.state, 'done');
    // The timer's activation is a renewal.changed too.
    await c.event((m) => m.method === 'renewal.changed' && m.params.renewal.renewal_id === p.renewal_id && m.params.renewal.state === 'done', 10000, 'renewal.changed done after the timer');
    const after = (await c.ok('cert.list', { token, der: true })).certificates.find((e) => e.key === '9a').der;
    assert.equal(after, new crypto.X509Certificate(fs.readFileSync(certFile)).raw.toString('base64'));
    const afterAll = (await c.ok('cert.list', { token, der: true })).certificates;
    assert.ok(!afterAll.some((e) => e.der === before), 'the old pair is retired once the new one is active');

    c.close();
    await d.stop();
});

test('renewal: a card without MOVE KEY keeps the new key in the staging slot, and sign with 9a uses it', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukg-');
    const rig = await new Rig(t, { profile: 'generic' }).up();
    const ca = path.join(dir, 'ca');
    await openssl([
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${ca}.key`,
        '-out', `${ca}.pem`, '-subj', '/CN=renewal test CA', '-days', '30',
    ]);
    const d = await startUkeyd(t, rig, { config: { piv_allow_default_management_key: true } });
    const c = await KeysClient.unix(d);
    const token = (await waitToken(c, rig.reader)).id;
    const p = await c.ok('renewal.prepare', { token, slot: '9a', mode: 'extend', pin: PIN });
    const csr = path.join(dir, 'g.csr');
    fs.writeFileSync(csr, p.csr_pem);
    const issued = path.join(dir, 'g.pem');
    await openssl(['x509', '-req', '-in', csr, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-days', '20', '-out', issued]);
    const done = await c.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: fs.readFileSync(issued, 'utf8') });
    assert.equal(done.state, 'done');
    const { certificates } = await c.ok('cert.list', { token, der: true });
    const raw = new crypto.X509Certificate(fs.readFileSync(issued)).raw.toString('base64');
    // The role follows the card record: 9a lists the renewed certificate, the staging slot is not
    // listed again (yubico-piv-tool still reads the old pair in 9A: test_renewal.sh).
    assert.equal(certificates.find((e) => e.key === '9a').der, raw, 'cert.list shows the renewed certificate under 9a');
    assert.equal(certificates.filter((e) => e.der === raw).length, 1, 'listed once');
    assert.equal(certificates.find((e) => e.key === p.staged_slot), undefined, 'the staging slot is not listed twice');
    const data = crypto.randomBytes(64);
    const s = await c.ok('sign', { token, key: '9a', algorithm: 'RSA-PKCS1-SHA256', data: data.toString('base64'), pin: PIN });
    assert.ok(
        crypto.verify('sha256', data, crypto.createPublicKey(fs.readFileSync(issued)), Buffer.from(s.signature, 'base64')),
        'sign with the role 9a uses the renewed key',
    );
    c.close();
    await d.stop();
});

test('renewal: bound to the web origin that prepared it; explicit subject; chain checked at commit', { skip, timeout: 150000 }, async (t) => {
    const dir = tempDir(t, 'uko-');
    const rig = await new Rig(t).up();
    const ca = await makeCa(dir, 'ca', '/CN=renewal test CA');
    const other = await makeCa(dir, 'other', '/CN=some other CA');
    const d = await startUkeyd(t, rig, { config: { piv_allow_default_management_key: true }, origins: [ORIGIN, OTHER] });
    const c = await KeysClient.unix(d);
    const token = (await waitToken(c, rig.reader)).id;
    const a = await wssAs(d, ORIGIN);
    const b = await wssAs(d, OTHER);
    for (const w of [a, b]) await w.ok('system.subscribe', { events: ['renewal.changed'] });
    const certsBefore = await certsDer(c, token);

    // The web page prepares 9a; the PIN is typed in ukeyd's dialog. An explicit subject.
    d.pinentryAnswers([`pin ${PIN}`]);
    const subject = [
        { type: 'C', value: 'CN' },
        { type: 'O', value: '测试单位' },
        { type: 'OU', value: 'Renewals' },
        { type: 'CN', value: 'Web Renewal' },
    ];
    const p = await a.ok('renewal.prepare', { token, slot: '9a', mode: 'extend', subject });
    assert.equal(p.origin, ORIGIN);
    assert.equal(p.state, 'prepared');
    const csr = path.join(dir, 'web.csr');
    fs.writeFileSync(csr, p.csr_pem);
    const subj = await exec('openssl', ['req', '-in', csr, '-noout', '-subject', '-nameopt', 'RFC2253,-esc_msb']);
    assert.equal(subj.stdout.trim(), 'subject=CN=Web Renewal,OU=Renewals,O=测试单位,C=CN');
    await a.event((m) => m.method === 'renewal.changed' && m.params.renewal.renewal_id === p.renewal_id);
    await c.event((m) => m.method === 'renewal.changed' && m.params.renewal.renewal_id === p.renewal_id);

    // Another origin: not found, never a dialog.
    const dialogs = d.pinentryLog().length;
    d.pinentryAnswers(['ok', 'ok']);
    const pem = await issue(dir, ca, p.csr_pem, 'web');
    assert.equal(reason(await b.call('renewal.status', { renewal_id: p.renewal_id })), 'RENEWAL_NOT_FOUND');
    assert.equal(reason(await b.call('renewal.commit', { renewal_id: p.renewal_id, certificate: pem })), 'RENEWAL_NOT_FOUND');
    assert.equal(reason(await b.call('renewal.abort', { renewal_id: p.renewal_id })), 'RENEWAL_NOT_FOUND');
    assert.equal(reason(await b.call('renewal.status', { renewal_id: '0123456789abcdef0123456789abcdef' })), 'RENEWAL_NOT_FOUND',
        'the same answer as for a renewal that does not exist');
    assert.ok(!(await b.ok('renewal.list')).renewals.some((r) => r.renewal_id === p.renewal_id));
    assert.equal(d.pinentryLog().length, dialogs, 'another origin never causes a dialog');

    // The local user sees it, with its origin; so does its own origin.
    const st = await c.ok('renewal.status', { renewal_id: p.renewal_id });
    assert.equal(st.origin, ORIGIN);
    assert.ok((await c.ok('renewal.list')).renewals.some((r) => r.renewal_id === p.renewal_id && r.origin === ORIGIN));
    assert.equal((await a.ok('renewal.status', { renewal_id: p.renewal_id })).state, 'prepared');

    // A local renewal of 9c: the pages do not see it; its events go to the local user only.
    const lp = await c.ok('renewal.prepare', { token, slot: '9c', mode: 'extend', pin: PIN });
    assert.equal(lp.origin, null);
    assert.equal(reason(await a.call('renewal.status', { renewal_id: lp.renewal_id })), 'RENEWAL_NOT_FOUND');
    assert.ok(!(await a.ok('renewal.list')).renewals.some((r) => r.renewal_id === lp.renewal_id));

    // The chain (over the Unix socket: no dialog): another CA's chain is CHAIN_INVALID and changes
    // nothing; the issuing CA's is accepted.
    const lpem = await issue(dir, ca, lp.csr_pem, 'local');
    const before = await certsDer(c, token);
    let r = await c.call('renewal.commit', { renewal_id: lp.renewal_id, certificate: lpem, chain: [fs.readFileSync(`${other}.pem`, 'utf8')] });
    assert.equal(reason(r), 'CHAIN_INVALID');
    r = await c.call('renewal.commit', { renewal_id: lp.renewal_id, certificate: lpem, chain: 'not an array' });
    assert.equal(reason(r), 'INVALID_PARAMS');
    assert.deepEqual(await certsDer(c, token), before, 'a refused chain changes nothing on the card');
    assert.equal((await c.ok('renewal.status', { renewal_id: lp.renewal_id })).state, 'prepared');
    const ld = await c.ok('renewal.commit', { renewal_id: lp.renewal_id, certificate: lpem, chain: [fs.readFileSync(`${ca}.pem`, 'utf8')] });
    assert.equal(ld.state, 'done');

    // The page commits its own (a consent dialog, answered ok).
    d.pinentryAnswers(['ok']);
    const done = await a.ok('renewal.commit', { renewal_id: p.renewal_id, certificate: pem });
    assert.equal(done.state, 'done');
    assert.equal(done.origin, ORIGIN);
    await a.event((m) => m.method === 'renewal.changed' && m.params.renewal.renewal_id === p.renewal_id && m.params.renewal.state === 'done');

    // The other origin got none of these events.
    await new Promise((res) => setTimeout(res, 300));
    const seen = b.events.filter((m) => m.method === 'renewal.changed').map((m) => m.params.renewal.renewal_id);
    assert.deepEqual(seen, [], 'another origin receives no renewal.changed of these renewals');
    assert.ok(!a.events.some((m) => m.method === 'renewal.changed' && m.params.renewal.renewal_id === lp.renewal_id),
        'the page receives no event of the local renewal');
    assert.notDeepEqual(await certsDer(c, token), certsBefore);
    a.close();
    b.close();
    c.close();
    await d.stop();

    // renewal_ca_bundle: with another CA's bundle the issued certificate is CHAIN_INVALID (the card
    // unchanged); with the issuing CA's it commits.
    let d2 = await startUkeyd(t, rig, { config: { piv_allow_default_management_key: true, renewal_ca_bundle: `${other}.pem` }, dir: d.dir });
    let c2 = await KeysClient.unix(d2);
    await waitToken(c2, rig.reader);
    const bp = await c2.ok('renewal.prepare', { token, slot: '9a', mode: 'extend', pin: PIN });
    const bpem = await issue(dir, ca, bp.csr_pem, 'bundle');
    const bBefore = await certsDer(c2, token);
    assert.equal(reason(await c2.call('renewal.commit', { renewal_id: bp.renewal_id, certificate: bpem })), 'CHAIN_INVALID');
    assert.deepEqual(await certsDer(c2, token), bBefore, 'refused by the CA bundle: nothing changed');
    c2.close();
    await d2.stop();
    d2 = await startUkeyd(t, rig, { config: { piv_allow_default_management_key: true, renewal_ca_bundle: `${ca}.pem` }, dir: d.dir });
    c2 = await KeysClient.unix(d2);
    await waitToken(c2, rig.reader);
    assert.equal((await c2.ok('renewal.commit', { renewal_id: bp.renewal_id, certificate: bpem })).state, 'done');
    c2.close();
    await d2.stop();
});
