'use strict';
// sign.cms, verify.cms, pin.status and pin.change on the real daemon against the virtual PIV card:
// SignedData from the RSA key (9a) and the P-256 key (9c), attached and detached, SHA-256 and
// SHA-384, each checked by `openssl cms -verify` (without trust, and against the demo CA);
// verify.cms on ukeyd's own output and on `openssl cms -sign` output, and its refusals; the PIN
// changed with params and through the dialogs (old PIN, new PIN twice), a wrong old PIN with the
// retries left, a new PIN of the wrong format refused before the card is touched; the page-PIN
// policy for web origins.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { tempDir } = require('./lib/ukeyd');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, openssl, exec, PIN } = require('./lib/rig');

const skip = rigUnavailable() || false;

const reason = (r) => r && r.error && r.error.data && r.error.data.reason;

test('sign.cms and verify.cms: RSA and P-256, attached and detached, checked by openssl cms', { skip, timeout: 120000 }, async (t) => {
    const dir = tempDir(t, 'ukc-');
    const rig = await new Rig(t).up();
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const id = (await waitToken(c, rig.reader)).id;
    const caFile = path.join(rig.cardDir(0), 'demo', 'demo-ca.pem');
    const { certificates } = await c.ok('cert.list', { token: id, der: true });
    const der = Object.fromEntries(certificates.map((e) => [e.key, e.der]));

    const data = crypto.randomBytes(2000);
    const dataFile = path.join(dir, 'data');
    fs.writeFileSync(dataFile, data);
    let n = 0;
    // openssl cms -verify of the base64 DER; trust: -noverify, or the demo CA.
    const opensslVerify = async (b64, { detached, trust }) => {
        const f = path.join(dir, `cms-${n++}.der`);
        const out = `${f}.out`;
        fs.writeFileSync(f, Buffer.from(b64, 'base64'));
        const args = ['cms', '-verify', '-binary', '-inform', 'DER', '-in', f, '-out', out];
        if (trust) args.push('-CAfile', caFile, '-purpose', 'any');
        else args.push('-noverify');
        if (detached) args.push('-content', dataFile);
        const r = await exec('openssl', args);
        return { code: r.code, text: (r.stdout + r.stderr).trim(), content: fs.existsSync(out) ? fs.readFileSync(out) : null };
    };

    for (const [key, hash] of [['9a', 'SHA-256'], ['9a', 'SHA-384'], ['9c', 'SHA-256'], ['9c', 'SHA-512']]) {
        for (const detached of [false, true]) {
            await t.test(`${key} ${hash} ${detached ? 'detached' : 'attached'}: openssl cms -verify, with and without the CA`, async () => {
                const before = Date.now();
                const r = await c.ok('sign.cms', { token: id, key, hash, detached, data: data.toString('base64'), pin: PIN });
                assert.equal(r.key, key);
                assert.equal(r.hash, hash);
                assert.equal(r.detached, detached);
                const when = Date.parse(r.signing_time);
                assert.ok(when >= Math.floor(before / 1000) * 1000 - 1000 && when <= Date.now() + 1000, r.signing_time);
                for (const trust of [false, true]) {
                    const v = await opensslVerify(r.cms, { detached, trust });
                    assert.equal(v.code, 0, v.text);
                    assert.match(v.text, /Verification successful/);
                    assert.deepEqual(v.content, data, 'openssl reads back the signed content');
                }
                // The structure: the signer's certificate inside, the three signed attributes.
                const f = path.join(dir, `print-${n++}.der`);
                fs.writeFileSync(f, Buffer.from(r.cms, 'base64'));
                const printed = await openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', f]);
                for (const attr of ['contentType', 'signingTime', 'messageDigest']) assert.match(printed, new RegExp(`object: ${attr}`));
                assert.match(printed, key === '9a' ? /algorithm: rsaEncryption/ : /algorithm: ecdsa-with-SHA/);
                // And ukeyd's own check agrees.
                const params = { cms: r.cms };
                if (detached) params.content = data.toString('base64');
                const back = await c.ok('verify.cms', params);
                assert.equal(back.detached, detached);
                assert.equal(Buffer.from(back.content, 'base64').equals(data), true);
                assert.equal(back.signer.der, der[key], 'the signer is the certificate of the key');
                assert.equal(back.signing_time, r.signing_time);
            });
        }
    }

    await t.test('verify.cms of `openssl cms -sign` output, and its refusals', async () => {
        // A signature made by openssl with the demo CA's own key: ukeyd checks it, trust aside.
        const demo = path.join(rig.cardDir(0), 'demo');
        const f = path.join(dir, 'by-openssl.der');
        await openssl(['cms', '-sign', '-binary', '-nodetach', '-outform', 'DER', '-in', dataFile, '-signer', caFile,
            '-inkey', path.join(demo, 'demo-ca.key'), '-out', f]);
        const theirs = fs.readFileSync(f).toString('base64');
        const v = await c.ok('verify.cms', { cms: theirs });
        assert.equal(Buffer.from(v.content, 'base64').equals(data), true);
        assert.match(v.signer.subject, /Demo CA/);

        const det = await c.ok('sign.cms', { token: id, key: '9c', detached: true, data: data.toString('base64'), pin: PIN });
        const other = Buffer.from(data);
        other[7] ^= 1;
        const cases = [
            ['not a CMS', { cms: Buffer.from('hello').toString('base64') }, 'INVALID_PARAMS'],
            ['a certificate, not a CMS', { cms: der['9a'] }, 'INVALID_PARAMS'],
            ['detached without its content', { cms: det.cms }, 'INVALID_PARAMS'],
            ['attached and content given too', { cms: theirs, content: data.toString('base64') }, 'INVALID_PARAMS'],
            ['other content', { cms: det.cms, content: other.toString('base64') }, 'SIGNATURE_INVALID'],
            ['not base64', { cms: '***' }, 'INVALID_PARAMS'],
            ['an unknown parameter', { cms: theirs, trust: true }, 'INVALID_PARAMS'],
        ];
        for (const [what, params, want] of cases) assert.equal(reason(await c.call('verify.cms', params)), want, what);
        // One flipped bit in the signature value (the last bytes of the DER).
        const bad = Buffer.from(det.cms, 'base64');
        bad[bad.length - 3] ^= 1;
        assert.equal(reason(await c.call('verify.cms', { cms: bad.toString('base64'), content: data.toString('base64') })), 'SIGNATURE_INVALID');
    });

    await t.test('sign.cms: bad parameters, and keys that cannot sign', async () => {
        const base = { token: id, key: '9a', data: data.toString('base64'), pin: PIN };
        const cases = [
            ['unknown hash', { ...base, hash: 'SHA-1' }, 'INVALID_PARAMS'],
            ['no data', { token: id, key: '9a', pin: PIN }, 'INVALID_PARAMS'],
            ['detached not a boolean', { ...base, detached: 'yes' }, 'INVALID_PARAMS'],
            ['a slot without certificate (9e)', { ...base, key: '9e' }, 'CERT_NOT_FOUND'],
            ['an unknown token', { ...base, token: 'piv:00000000' }, 'NO_TOKEN'],
            ['a PIN of 3 digits', { ...base, pin: '123' }, 'PIN_INVALID'],
            ['an unknown parameter', { ...base, algorithm: 'RSA-PKCS1-SHA256' }, 'INVALID_PARAMS'],
        ];
        for (const [what, params, want] of cases) assert.equal(reason(await c.call('sign.cms', params)), want, what);
        assert.equal((await c.ok('token.list')).tokens.find((x) => x.id === id).pin_retries, 3, 'no try spent');
    });
    c.close();
});

test('sign.cms from a web page: the PIN dialog names origin, key and content digest; a page PIN is refused', { skip, timeout: 60000 }, async (t) => {
    const rig = await new Rig(t).up();
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const id = (await waitToken(c, rig.reader)).id;
    const w = await KeysClient.wss(d);
    const data = crypto.randomBytes(100);
    const digest = crypto.createHash('sha256').update(data).digest('hex');
    d.pinentryAnswers([`pin ${PIN}`]);
    const before = d.pinentryLog().length;
    const r = await w.ok('sign.cms', { token: id, key: '9a', data: data.toString('base64') });
    assert.ok(r.cms);
    const shown = d.pinentryLog().slice(before);
    assert.equal(shown.length, 1, 'the PIN dialog is the consent');
    assert.equal(shown[0].command, 'GETPIN');
    assert.ok(shown[0].description.includes('https://portal.example.cn'), shown[0].description);
    assert.ok(shown[0].description.toLowerCase().includes(digest.slice(0, 32)), shown[0].description);
    assert.equal(reason(await w.call('sign.cms', { token: id, key: '9a', data: data.toString('base64'), pin: PIN })), 'PIN_FROM_PAGE_DISABLED');
    d.pinentryAnswers(['cancel']);
    assert.equal(reason(await w.call('sign.cms', { token: id, key: '9a', data: data.toString('base64') })), 'CONSENT_DENIED');
    w.close();
    c.close();
});

test('pin.status, pin.change and pin.verify: params, dialogs, wrong PINs, bad new PIN, web policy', { skip, timeout: 90000 }, async (t) => {
    const rig = await new Rig(t).up();
    // More wrong PINs than the default 5 a minute are typed on purpose here; the limit itself is
    // tested in keys_pin.test.js.
    const d = await startUkeyd(t, rig, { limits: { pin_attempts_per_minute: 60 } });
    const c = await KeysClient.unix(d);
    const id = (await waitToken(c, rig.reader)).id;
    const toolRetries = async () => Number((await rig.piv(['-a', 'status'])).match(/^PIN tries left:\s*(\d+)/m)[1]);
    const signWith = (pin) => c.call('sign', { token: id, key: '9c', algorithm: 'ECDSA-SHA256', data: 'aGVsbG8=', pin });
    const NEW1 = '48151623';
    const NEW2 = '112358';

    await t.test('pin.status reads the tries without spending one', async () => {
        assert.deepEqual(await c.ok('pin.status', { token: id }), { token: id, retries_left: 3 });
        assert.equal(await toolRetries(), 3);
        assert.equal(reason(await c.call('pin.status', { token: 'piv:00000000' })), 'NO_TOKEN');
        assert.equal(reason(await c.call('pin.status', {})), 'INVALID_PARAMS');
    });

    await t.test('pin.change with params: a new PIN of the wrong format costs nothing; the change works', async () => {
        for (const bad of ['12345', '123456789', '1234\u00e967']) {
            const r = await c.call('pin.change', { token: id, old_pin: PIN, new_pin: bad });
            assert.equal(reason(r), 'PIN_INVALID', `${bad}: ${JSON.stringify(r)}`);
        }
        assert.equal(reason(await c.call('pin.change', { token: id, old_pin: PIN })), 'INVALID_PARAMS');
        assert.equal(reason(await c.call('pin.change', { token: id, new_pin: NEW1 })), 'INVALID_PARAMS');
        assert.equal(await toolRetries(), 3, 'no try spent');
        const r = await c.ok('pin.change', { token: id, old_pin: PIN, new_pin: NEW1 });
        assert.equal(r.changed, true);
        assert.equal(r.retries_left, 3);
        assert.equal(reason(await signWith(PIN)), 'PIN_INCORRECT', 'the old PIN is gone');
        assert.ok((await signWith(NEW1)).result, 'the new PIN signs');
    });

    await t.test('a wrong old PIN: PIN_INCORRECT with retries_left; token.list follows', async () => {
        const r = await c.call('pin.change', { token: id, old_pin: '00000000', new_pin: NEW2 });
        assert.equal(reason(r), 'PIN_INCORRECT', JSON.stringify(r));
        assert.equal(r.error.data.retries_left, 2);
        assert.equal((await c.ok('token.list')).tokens.find((x) => x.id === id).pin_retries, 2);
        assert.deepEqual(await c.ok('pin.status', { token: id }), { token: id, retries_left: 2 });
    });

    await t.test('through the dialogs: old PIN, then the new one twice (a mismatch asked again)', async () => {
        d.pinentryAnswers([`pin ${NEW1}`, `pin ${NEW2}`, 'pin 99999999', `pin ${NEW2}`, `pin ${NEW2}`]);
        const before = d.pinentryLog().length;
        const r = await c.ok('pin.change', { token: id });
        assert.equal(r.retries_left, 3, 'the right old PIN restored the tries');
        const shown = d.pinentryLog().slice(before);
        assert.equal(shown.length, 5, JSON.stringify(shown));
        assert.ok(shown.every((s) => s.command === 'GETPIN'));
        assert.match(shown[0].description, /change the PIN|修改/);
        assert.match(shown[3].error || '', /match|不一致/, 'the mismatch is said');
        assert.ok(!JSON.stringify(shown).includes(NEW2));
        assert.ok((await signWith(NEW2)).result, 'the PIN from the dialogs signs');
        d.pinentryAnswers(['cancel']);
        assert.equal(reason(await c.call('pin.change', { token: id })), 'CONSENT_DENIED');
        d.pinentryAnswers([`pin ${NEW2}`, 'cancel']);
        assert.equal(reason(await c.call('pin.change', { token: id })), 'CONSENT_DENIED', 'cancelled at the new PIN');
        assert.ok((await signWith(NEW2)).result, 'unchanged');
    });

    await t.test('one try left: the change asks before spending it', async () => {
        for (let i = 0; i < 2; i++) assert.equal(reason(await signWith('00000000')), 'PIN_INCORRECT');
        assert.equal(await toolRetries(), 1);
        d.pinentryAnswers(['cancel']);
        const before = d.pinentryLog().length;
        assert.equal(reason(await c.call('pin.change', { token: id, old_pin: NEW2, new_pin: NEW1 })), 'CONSENT_DENIED');
        assert.equal(d.pinentryLog().slice(before)[0].command, 'CONFIRM');
        assert.equal(await toolRetries(), 1, 'not spent');
        d.pinentryAnswers(['ok']);
        assert.ok((await c.ok('pin.change', { token: id, old_pin: NEW2, new_pin: NEW1 })).changed);
        assert.equal(await toolRetries(), 3);
    });

    await t.test('from a web origin: old_pin / new_pin refused without pin_from_page', async () => {
        const w = await KeysClient.wss(d);
        const before = d.pinentryLog().length;
        assert.equal(reason(await w.call('pin.change', { token: id, old_pin: NEW1, new_pin: NEW2 })), 'PIN_FROM_PAGE_DISABLED');
        assert.equal(reason(await w.call('pin.change', { token: id, new_pin: NEW2 })), 'PIN_FROM_PAGE_DISABLED');
        assert.equal(d.pinentryLog().length, before, 'no dialog');
        assert.equal((await w.ok('pin.status', { token: id })).retries_left, 3);
        w.close();
    });

    await t.test('pin.verify: checks the PIN and leaves nothing unlocked; wrong PIN, dialog, web policy', async () => {
        assert.deepEqual(await c.ok('pin.verify', { token: id, pin: NEW1 }), { token: id, verified: true, retries_left: 3 });
        // The card forgot it again: VERIFY without data asks for it (yubico-piv-tool's status
        // reads the same counter; a verified PIN would answer 9000 there).
        assert.equal(await toolRetries(), 3);
        assert.deepEqual(await c.ok('pin.status', { token: id }), { token: id, retries_left: 3 });
        const bad = await c.call('pin.verify', { token: id, pin: '00000000' });
        assert.equal(reason(bad), 'PIN_INCORRECT', JSON.stringify(bad));
        assert.equal(bad.error.data.retries_left, 2);
        assert.equal((await c.ok('token.list')).tokens.find((x) => x.id === id).pin_retries, 2);
        assert.equal(reason(await c.call('pin.verify', { token: id, pin: '12' })), 'PIN_INVALID');
        assert.equal(reason(await c.call('pin.verify', { token: 'piv:00000000', pin: NEW1 })), 'NO_TOKEN');
        assert.equal(reason(await c.call('pin.verify', {})), 'INVALID_PARAMS');
        // The dialog: a wrong PIN asked again with the tries left, then the right one (from 3
        // tries again: with 1 left a "continue?" would come first, tested for pin.change above).
        assert.equal((await c.ok('pin.verify', { token: id, pin: NEW1 })).retries_left, 3);
        d.pinentryAnswers(['pin 99999999', `pin ${NEW1}`]);
        const before = d.pinentryLog().length;
        assert.equal((await c.ok('pin.verify', { token: id })).retries_left, 3);
        const shown = d.pinentryLog().slice(before);
        assert.equal(shown.length, 2, JSON.stringify(shown));
        assert.match(shown[0].description, /check the PIN|核对/);
        assert.match(shown[1].error || '', /2/, 'the tries left were said');
        d.pinentryAnswers(['cancel']);
        assert.equal(reason(await c.call('pin.verify', { token: id })), 'CONSENT_DENIED');
        const w = await KeysClient.wss(d);
        const n = d.pinentryLog().length;
        assert.equal(reason(await w.call('pin.verify', { token: id, pin: NEW1 })), 'PIN_FROM_PAGE_DISABLED');
        assert.equal(d.pinentryLog().length, n, 'no dialog');
        w.close();
    });
    c.close();
    await d.stop();
    for (const pin of [NEW1, NEW2]) assert.equal(d.log.includes(pin), false, `${pin} in the log`);
});

test('decrypt.cms: `openssl cms -encrypt` to RSA keys (9d, 9a) and to the P-256 key (9c), unwrapped on the card; refusals', { skip, timeout: 90000 }, async (t) => {
    const dir = tempDir(t, 'ukd-');
    const rig = await new Rig(t).up();
    // An RSA-2048 key generated on the card in 9d (key management) with a certificate of the demo CA.
    const demo = path.join(rig.cardDir(0), 'demo');
    const pub = path.join(dir, '9d.pub');
    await rig.piv(['-a', 'generate', '-s', '9d', '-A', 'RSA2048', '-o', pub]);
    const cert9d = path.join(dir, '9d.pem');
    const ext = path.join(dir, 'ext.cnf');
    fs.writeFileSync(ext, '[km]\nkeyUsage = critical, keyEncipherment\nsubjectKeyIdentifier = hash\n');
    await openssl(['x509', '-new', '-subj', '/CN=key management', '-force_pubkey', pub, '-CA', path.join(demo, 'demo-ca.pem'),
        '-CAkey', path.join(demo, 'demo-ca.key'), '-days', '30', '-extfile', ext, '-extensions', 'km', '-out', cert9d]);
    await rig.piv(['-a', 'import-certificate', '-s', '9d', '-i', cert9d]);
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const id = (await waitToken(c, rig.reader)).id;
    const { certificates } = await c.ok('cert.list', { token: id, der: true });
    const pem = {};
    for (const e of certificates) {
        pem[e.key] = path.join(dir, `${e.key}.cert.der`);
        fs.writeFileSync(pem[e.key], Buffer.from(e.der, 'base64'));
    }
    const data = crypto.randomBytes(3000);
    const dataFile = path.join(dir, 'data');
    fs.writeFileSync(dataFile, data);
    let n = 0;
    const encrypt = async (recips, cipher = '-aes256', extra = []) => {
        const out = path.join(dir, `env-${n++}.der`);
        const args = ['cms', '-encrypt', '-binary', cipher, '-outform', 'DER', '-in', dataFile, '-out', out];
        for (const r of recips) args.push('-recip', r);
        args.push(...extra); // after the recipient: -keyopt applies to the one before it
        await openssl(args);
        return fs.readFileSync(out).toString('base64');
    };

    await t.test('to 9d (AES-256, AES-128, 3DES), to 9a among other recipients, to 9c (ECDH): the content comes back', async () => {
        for (const cipher of ['-aes256', '-aes128', '-des3']) {
            const r = await c.ok('decrypt.cms', { token: id, cms: await encrypt([pem['9d']], cipher), pin: PIN });
            assert.equal(r.key, '9d');
            assert.equal(Buffer.from(r.content, 'base64').equals(data), true, cipher);
        }
        const caPem = path.join(demo, 'demo-ca.pem');
        // The demo CA's key is EC: its recipient is a key agreement one, next to 9a's key transport.
        let r = await c.ok('decrypt.cms', { token: id, cms: await encrypt([caPem, pem['9a']]), pin: PIN });
        assert.equal(r.key, '9a');
        assert.equal(Buffer.from(r.content, 'base64').equals(data), true);
        // 9d named by its subjectKeyIdentifier instead of issuer and serial.
        r = await c.ok('decrypt.cms', { token: id, cms: await encrypt([pem['9d']], '-aes128', ['-keyid']), pin: PIN });
        assert.equal(r.key, '9d');
        assert.equal(Buffer.from(r.content, 'base64').equals(data), true);
        // The P-256 key (9c): key agreement, ECDH on the card, X9.63 KDF (SHA-256, then SHA-384)
        // and AES key wrap on the host.
        for (const md of ['sha256', 'sha384']) {
            r = await c.ok('decrypt.cms', { token: id, cms: await encrypt([pem['9c']], '-aes256', ['-keyopt', `ecdh_kdf_md:${md}`]), pin: PIN });
            assert.equal(r.key, '9c');
            assert.equal(Buffer.from(r.content, 'base64').equals(data), true, md);
        }
    });

    await t.test('refusals: another recipient, RSA-OAEP, not a CMS, a wrong PIN with the tries left', async () => {
        const before = d.pinentryLog().length;
        const toCa = await encrypt([path.join(demo, 'demo-ca.pem')]);
        let r = await c.call('decrypt.cms', { token: id, cms: toCa });
        assert.equal(reason(r), 'DECRYPT_FAILED', JSON.stringify(r));
        r = await c.call('decrypt.cms', { token: id, cms: await encrypt([pem['9d']], '-aes256', ['-keyopt', 'rsa_padding_mode:oaep']) });
        assert.equal(reason(r), 'NOT_SUPPORTED', `RSA-OAEP: ${JSON.stringify(r)}`);
        assert.equal(reason(await c.call('decrypt.cms', { token: id, cms: certificates[0].der })), 'INVALID_PARAMS');
        assert.equal(reason(await c.call('decrypt.cms', { token: id, cms: 'aGVsbG8=' })), 'INVALID_PARAMS');
        assert.equal(reason(await c.call('decrypt.cms', { token: 'piv:00000000', cms: toCa })), 'NO_TOKEN');
        assert.equal(d.pinentryLog().length, before, 'none of these asked the user anything');
        assert.equal((await c.ok('pin.status', { token: id })).retries_left, 3, 'nor spent a try');
        r = await c.call('decrypt.cms', { token: id, cms: await encrypt([pem['9d']]), pin: '00000000' });
        assert.equal(reason(r), 'PIN_INCORRECT');
        assert.equal(r.error.data.retries_left, 2);
        assert.ok((await c.ok('decrypt.cms', { token: id, cms: await encrypt([pem['9d']]), pin: PIN })).content);
        assert.equal((await c.ok('token.list')).tokens.find((x) => x.id === id).pin_retries, 3);
    });

    await t.test('from a web page: the PIN dialog names the origin and the key; a page PIN is refused', async () => {
        const w = await KeysClient.wss(d);
        const cms = await encrypt([pem['9d']]);
        assert.equal(reason(await w.call('decrypt.cms', { token: id, cms, pin: PIN })), 'PIN_FROM_PAGE_DISABLED');
        d.pinentryAnswers([`pin ${PIN}`]);
        const before = d.pinentryLog().length;
        const r = await w.ok('decrypt.cms', { token: id, cms });
        assert.equal(Buffer.from(r.content, 'base64').equals(data), true);
        const shown = d.pinentryLog().slice(before);
        assert.equal(shown.length, 1);
        assert.ok(shown[0].description.includes('https://portal.example.cn'), shown[0].description);
        assert.match(shown[0].description, /decrypt|解密/);
        assert.match(shown[0].description, /key management/, 'the certificate of 9d is named');
        w.close();
    });
    c.close();
});
