'use strict';
// token.list and cert.list of the real daemon against the virtual PIV card of a private rig,
// judged by yubico-piv-tool and openssl: the demo certificates field by field, a warm cert.list
// without a single APDU, certificates written by yubico-piv-tool (gzip-compressed, ~3 KiB in a
// retired slot) seen after a card event, empty slots absent, a malformed object reported for its
// slot only.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const { tempDir } = require('./lib/ukeyd');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, openssl } = require('./lib/rig');

const skip = rigUnavailable() || false;

// What openssl says about a DER certificate, in the daemon's spelling.
async function opensslFields(derFile) {
    const out = await openssl([
        'x509', '-inform', 'DER', '-in', derFile, '-noout', '-subject', '-issuer', '-serial',
        '-startdate', '-enddate', '-fingerprint', '-sha256', '-nameopt', 'RFC2253,-esc_msb',
    ]);
    const f = {};
    for (const line of out.split('\n')) {
        const i = line.indexOf('=');
        if (i > 0) f[line.slice(0, i)] = line.slice(i + 1);
    }
    const iso = (s) => new Date(s).toISOString().replace('.000Z', 'Z');
    return {
        subject: f.subject,
        issuer: f.issuer,
        serial: f.serial.toLowerCase().replace(/^0+(?=.)/, ''),
        not_before: iso(f.notBefore),
        not_after: iso(f.notAfter),
        fingerprint_sha256: f['sha256 Fingerprint'].replace(/:/g, '').toLowerCase(),
    };
}

// days_left as docs/certificates.md defines it, for a time now (ms; the daemon's clock has whole
// seconds, and time() reads the kernel's coarse clock, a tick behind ours: callers give a second
// of slack).
function daysLeft(notAfter, now) {
    return Math.floor((Date.parse(notAfter) - Math.floor(now / 1000) * 1000) / 86400000);
}

// Checks one cert.list entry against openssl's reading of its DER (written to dir), and, when
// given, against the bytes yubico-piv-tool reads from the card. `before`/`after` bracket the
// call (ms) for days_left.
async function checkEntry(e, dir, { fromTool, before, after }) {
    assert.equal(e.error, undefined, `entry ${e.key} has an error: ${JSON.stringify(e)}`);
    assert.ok(e.der, `entry ${e.key} has its DER (der: true)`);
    const der = Buffer.from(e.der, 'base64');
    if (fromTool) assert.ok(der.equals(fromTool), `${e.key}: DER from ukeyd = DER from yubico-piv-tool`);
    const file = path.join(dir, `${e.key}.der`);
    fs.writeFileSync(file, der);
    const want = await opensslFields(file);
    for (const k of Object.keys(want)) {
        const got = k === 'serial' ? e[k].toLowerCase().replace(/^0+(?=.)/, '') : e[k];
        assert.equal(got, want[k], `${e.key}.${k}`);
    }
    assert.ok([daysLeft(e.not_after, after), daysLeft(e.not_after, before), daysLeft(e.not_after, before - 1000)].includes(e.days_left), `${e.key}: days_left ${e.days_left}`);
}

async function certList(c, token, der = true) {
    const before = Date.now();
    const r = await c.call('cert.list', { token, der });
    const after = Date.now();
    assert.ok(r.result, `cert.list failed: ${JSON.stringify(r)}`);
    assert.equal(r.result.token, token);
    return { list: r.result.certificates, before, after, byKey: Object.fromEntries(r.result.certificates.map((e) => [e.key, e])) };
}

// Removes and re-inserts the card; resolves the token once it is identified again.
async function reinsert(rig, c, id) {
    await rig.ctl('remove');
    await c.event((m) => m.method === 'token.removed' && m.params.token.id === id, 10000, 'token.removed');
    await rig.ctl('insert');
    const ev = await c.event((m) => m.method === 'token.inserted' && m.params.token.id === id, 10000, 'token.inserted');
    return ev.params.token;
}

// A certificate for pub (PEM) signed by the demo CA; ext: extension file lines. Resolves its DER.
async function demoCert(rig, dir, name, pub, ext = []) {
    const ca = path.join(rig.cardDir(0), 'demo');
    const extFile = path.join(dir, `${name}.ext`);
    fs.writeFileSync(extFile, ext.join('\n') + '\n');
    const pem = path.join(dir, `${name}.pem`);
    await openssl([
        'x509', '-new', '-subj', `/CN=${name}/O=ukeyd tests`, '-force_pubkey', pub, '-CA', path.join(ca, 'demo-ca.pem'),
        '-CAkey', path.join(ca, 'demo-ca.key'), '-days', '200', '-extfile', extFile, '-out', pem,
    ]);
    await openssl(['x509', '-in', pem, '-outform', 'DER', '-out', path.join(dir, `${name}.der`)]);
    return fs.readFileSync(path.join(dir, `${name}.der`));
}

// A certificate of about `target` bytes DER (a long SAN list padded with a URI). yubico-piv-tool
// 2.2.0 writes objects up to about 3052 bytes.
async function bigCert(rig, dir, pub, target) {
    let pad = 200;
    let der;
    for (let i = 0; i < 4; i++) {
        const dns = Array.from({ length: 40 }, (_, n) => `DNS:host-${n}.a-rather-long-subdomain-name.ukeyd.example`);
        const san = `subjectAltName=${dns.join(',')},URI:https://ukeyd.example/${'x'.repeat(pad)}`;
        der = await demoCert(rig, dir, 'big', pub, [san]);
        if (der.length === target) break;
        pad += target - der.length;
    }
    return der;
}

test('token.list and cert.list against yubico-piv-tool and openssl', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukk-');
    const rig = await new Rig(t).up();
    const d = await startUkeyd(t, rig, { config: { piv_allow_default_management_key: false } });
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const id = tok.id;

    await t.test('token.list: the card with its serial, driver and PIN retries; the empty second reader', async () => {
        const status = await rig.piv(['-a', 'status']);
        const serial = status.match(/^Serial Number:\s*(\d+)/m)[1];
        const { tokens } = await c.ok('token.list');
        assert.equal(tokens.length, 2, JSON.stringify(tokens));
        assert.deepEqual(tokens[0], {
            id: `piv:${serial}`,
            reader: rig.reader,
            present: true,
            driver: 'piv',
            serial,
            label: `PIV ${serial}`,
            model: 'PIV (YubiKey-compatible)',
            pin_retries: 3,
        });
        assert.deepEqual(tokens[1], { id: null, reader: rig.reader1, present: false });
    });

    await t.test('cert.list: the demo certificates of 9a and 9c, field by field; no other slot', async () => {
        const { list, byKey, before, after } = await certList(c, id);
        assert.deepEqual(list.map((e) => e.key), ['9a', '9c']);
        for (const key of ['9a', '9c']) {
            const fromTool = await rig.piv(['-a', 'read-certificate', '-s', key, '-K', 'DER'], { binary: true });
            await checkEntry(byKey[key], dir, { fromTool, before, after });
            const e = byKey[key];
            assert.equal(e.subject, 'CN=张三,O=NHSA,C=CN');
            assert.deepEqual(e.subject_parts, [
                { type: 'C', value: 'CN' },
                { type: 'O', value: 'NHSA' },
                { type: 'CN', value: '张三' },
            ]);
            assert.equal(e.issuer, 'CN=ukeyd Demo CA,O=NHSA,C=CN');
            assert.equal(e.status, 'valid');
            // The demo certificates run from 30 days ago to 365 days from provisioning.
            assert.ok(e.days_left === 364 || e.days_left === 365, `days_left ${e.days_left}`);
            assert.equal(e.is_ca, false);
            assert.ok(e.key_usage.includes('digitalSignature'));
        }
        assert.deepEqual([byKey['9a'].key_algorithm, byKey['9a'].key_size, byKey['9a'].curve], ['RSA', 2048, null]);
        assert.deepEqual([byKey['9c'].key_algorithm, byKey['9c'].key_size, byKey['9c'].curve], ['EC', 256, 'P-256']);
        // Without der: the same entries minus the DER (days_left may have ticked meanwhile).
        const plain = await certList(c, id, false);
        const strip = (l) => l.map(({ der, days_left, ...rest }) => rest);
        assert.equal(plain.list[0].der, undefined);
        assert.deepEqual(strip(plain.list), strip(list));
    });

    await t.test('a warm cert.list sends no APDU', async () => {
        const a = await rig.counters();
        const { list } = await certList(c, id);
        const b = await rig.counters();
        assert.equal(list.length, 2);
        assert.equal(b.apdus_in, a.apdus_in, `APDUs during a warm cert.list: ${b.apdus_in - a.apdus_in}`);
    });

    await t.test('certificates written by yubico-piv-tool: gzip in 9d, ~3 KiB in retired slot 82', async () => {
        // Keys made host-side: cert.list does not care whether the slot holds the private key.
        await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path.join(dir, 'k.pem')]);
        await openssl(['pkey', '-in', path.join(dir, 'k.pem'), '-pubout', '-out', path.join(dir, 'k.pub')]);
        const small = await demoCert(rig, dir, 'compressed', path.join(dir, 'k.pub'));
        fs.writeFileSync(path.join(dir, 'compressed.der.gz'), zlib.gzipSync(small));
        await rig.piv(['-a', 'import-certificate', '-s', '9d', '-K', 'GZIP', '-i', path.join(dir, 'compressed.der.gz')]);
        const big = await bigCert(rig, dir, path.join(dir, 'k.pub'), 3030);
        console.log(`# big certificate: ${big.length} bytes DER`);
        assert.ok(big.length >= 2900 && big.length <= 3050, `big certificate ${big.length} bytes`);
        await rig.piv(['-a', 'import-certificate', '-s', '82', '-K', 'DER', '-i', path.join(dir, 'big.der')]);
        // The object really is compressed (CertInfo 01) and the big one really is in 82.
        const obj9d = await rig.piv(['-a', 'read-object', '--id', '0x5fc10b', '-f', 'hex']);
        assert.match(obj9d.trim().toLowerCase(), /^70(82....|81..)1f8b.*710101fe00$/, 'gzip certificate object');
        const from82 = await rig.piv(['-a', 'read-certificate', '-s', '82', '-K', 'DER'], { binary: true });
        assert.ok(from82.equals(big), 'yubico-piv-tool reads the big certificate back from 82');

        // Nothing told the daemon: the cache still answers (no card event, no APDU).
        const a = await rig.counters();
        assert.deepEqual((await certList(c, id)).list.map((e) => e.key), ['9a', '9c']);
        assert.equal((await rig.counters()).apdus_in, a.apdus_in);

        // A card event drops the cache.
        await reinsert(rig, c, id);
        const { list, byKey, before, after } = await certList(c, id);
        assert.deepEqual(list.map((e) => e.key), ['9a', '9c', '9d', '82']);
        await checkEntry(byKey['9d'], dir, { fromTool: small, before, after });
        await checkEntry(byKey['82'], dir, { fromTool: big, before, after });
        assert.equal(byKey['9d'].subject, 'O=ukeyd tests,CN=compressed');
        assert.equal(byKey['82'].subject, 'O=ukeyd tests,CN=big');
        assert.equal(byKey['82'].status, 'valid');
        assert.ok(byKey['82'].days_left === 199 || byKey['82'].days_left === 200, `days_left ${byKey['82'].days_left}`);
    });

    await t.test('a malformed certificate object: CERT_INVALID for its key, the others still listed', async () => {
        // write-object stores its input as the content of the 53 container: 70 {garbage} 71 00 FE 00.
        const garbage = Buffer.concat([Buffer.from('7010', 'hex'), Buffer.from('30820102deadbeef00112233445566ff', 'hex'), Buffer.from('710100fe00', 'hex')]);
        fs.writeFileSync(path.join(dir, 'garbage.bin'), garbage);
        await rig.piv(['-a', 'write-object', '--id', '0x5fc10b', '-f', 'binary', '-i', path.join(dir, 'garbage.bin')]);
        // The compressed certificate moves to 9e.
        await rig.piv(['-a', 'import-certificate', '-s', '9e', '-K', 'GZIP', '-i', path.join(dir, 'compressed.der.gz')]);
        await reinsert(rig, c, id);
        const { list, byKey } = await certList(c, id);
        assert.deepEqual(list.map((e) => e.key), ['9a', '9c', '9d', '9e', '82']);
        assert.equal(byKey['9d'].error.reason, 'CERT_INVALID', JSON.stringify(byKey['9d']));
        assert.ok(byKey['9d'].error.en && byKey['9d'].error['zh-CN'], 'the error carries its messages');
        assert.equal(byKey['9d'].subject, undefined);
        assert.equal(byKey['9d'].der, undefined);
        for (const k of ['9a', '9c', '9e', '82']) assert.equal(byKey[k].error, undefined, `${k} still listed`);
        assert.equal(byKey['9e'].subject, 'O=ukeyd tests,CN=compressed');
        // Deleting the object (53 00) makes the slot empty again: no entry at all.
        await rig.piv(['-a', 'delete-certificate', '-s', '9d']);
        await reinsert(rig, c, id);
        assert.deepEqual((await certList(c, id)).list.map((e) => e.key), ['9a', '9c', '9e', '82']);
    });

    await t.test('cert.list of an unknown token', async () => {
        const r = await c.call('cert.list', { token: 'piv:00000000' });
        assert.ok(r.error, JSON.stringify(r));
        console.log(`# cert.list of an unknown token: ${r.error.data.reason}`);
        assert.equal(r.error.data.reason, 'NO_TOKEN');
    });

    c.close();
    await d.stop();
});
