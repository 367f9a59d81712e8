'use strict';
// The SDK's GM/T 0020 module (extension/sdk/sof.js) in Chromium against the virtual PIV card: a
// private rig (pcscd + virtual card with the demo certificates in 9a and 9c, plus an RSA key
// management key and certificate made in 9d here), a private ukeyd with the scripted pinentry, and
// two page origins: one with the default policy (PINs only in ukeyd's dialog) and one whose policy
// lets the page send the PIN. Every SOF function is called from the page over WSS and its answer
// checked against what the card holds (cert.list on the Unix socket), node:crypto and openssl:
// user list, certificate export, login through the dialog, retry count, PIN change through the
// dialogs, certificate information by type and OID, validation, raw and CMS signatures (attached and
// detached) verified in the page, by ukeyd and by openssl, envelopes made in the page and opened
// on the card, random bytes, device information, and the documented error codes (wrong PIN with
// its retries, unknown certID and key, unsupported types and methods, a foreign envelope, a
// malformed CMS, a cancelled dialog).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Ukeyd, tempDir } = require('../daemon/lib/ukeyd');
const { Rig, rigUnavailable, waitToken, KeysClient, openssl, exec, PIN } = require('../daemon/lib/rig');
const { browserMissing, serve, trustDaemonCa, launchPersistent, screenshot, sdkPageHandler } = require('./lib/browser');

const missing = browserMissing();

// The codes the test expects, written out (not imported from the module under test).
const SOR = {
    OK: 0, UNKNOWNERR: 0x0b000001, NOTSUPPORTYETERR: 0x0b000002, ALGTYPEERR: 0x0b000007, APPNOTFOUNDERR: 0x0b000404,
    CERTNOTFOUNTERR: 0x0b000310, CERTENCODEERR: 0x0b000405, VERIFYSIGNDATAERR: 0x0b000410, DECYPTDATAERR: 0x0b000416,
    PKCS7ENCODEERR: 0x0b000417, PARAMETERNOTSUPPORTEERR: 0x0b000419, CTLNOTFOUND: 0x0b000420, INDATALENERR: 0x0b000200,
};

const PAGE = `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>ukeyd SOF test page</title>
<style>body{font:14px "Noto Sans CJK SC",sans-serif;margin:1em}pre{white-space:pre-wrap;background:#f6f8fa;padding:.5em}</style></head>
<body><h1>GM/T 0020 SOF 接口测试页</h1><p>origin: <code id="origin"></code></p><pre id="out"></pre>
<script type="module">
import * as lib from '/sdk/sof.js';
window.lib = lib;
document.getElementById('origin').textContent = location.origin;
const out = document.getElementById('out');
// Calls sof[name](...args); resolves {result} or {error: {...the SofError's facts}}; shows it.
window.sofCall = async (name, ...args) => {
    let r;
    try {
        r = { result: await window.sof[name](...args) };
    } catch (e) {
        r = { error: { name: e.name, reason: e.reason, sor: e.sor, sorName: e.sorName, message: e.message, data: e.data, retriable: e.retriable } };
    }
    out.textContent += name + ' → ' + JSON.stringify(r).slice(0, 200) + '\\n';
    return r;
};
window.sofLoaded = true;
</script></body></html>
`;

const handler = sdkPageHandler(PAGE);

const asn1Date = (iso) => iso.replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

test('GM/T 0020 SOF functions in Chromium on the virtual PIV card', { skip: missing || rigUnavailable() || false, timeout: 240000 }, async (t) => {
    const dir = tempDir(t, 'uks-');
    const rig = await new Rig(t).up();
    // An RSA-2048 key management key in 9d with a certificate of the demo CA (the exchange certificate).
    const demo = path.join(rig.cardDir(0), 'demo');
    await rig.piv(['-a', 'generate', '-s', '9d', '-A', 'RSA2048', '-o', path.join(dir, '9d.pub')]);
    fs.writeFileSync(path.join(dir, 'km.cnf'), '[km]\nkeyUsage = critical, keyEncipherment\nsubjectKeyIdentifier = hash\n');
    await openssl(['x509', '-new', '-subj', '/CN=key management', '-force_pubkey', path.join(dir, '9d.pub'), '-CA', path.join(demo, 'demo-ca.pem'),
        '-CAkey', path.join(demo, 'demo-ca.key'), '-days', '30', '-extfile', path.join(dir, 'km.cnf'), '-extensions', 'km', '-out', path.join(dir, '9d.pem')]);
    await rig.piv(['-a', 'import-certificate', '-s', '9d', '-i', path.join(dir, '9d.pem')]);

    const page0 = `http://127.0.0.1:${await serve(t, handler)}`; // default policy: PINs in ukeyd's dialog only
    const page1 = `http://127.0.0.1:${await serve(t, handler)}`; // pin_from_page
    const d = new Ukeyd(t, {
        origins: [page0, page1],
        config: { log_level: 'debug', origin_policies: { [page1]: { pin_from_page: true, consent: 'session' } } },
    });
    d.env.PCSCLITE_CSOCK_NAME = rig.env.PCSCLITE_CSOCK_NAME;
    d.port = 1;
    d.writeConfig();
    trustDaemonCa(d);
    await d.start();

    // What the card holds, as the Unix socket sees it.
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const { certificates } = await c.ok('cert.list', { token: tok.id, der: true });
    const byKey = Object.fromEntries(certificates.filter((e) => !e.error).map((e) => [e.key, e]));
    assert.ok(byKey['9a'] && byKey['9c'] && byKey['9d'], JSON.stringify(Object.keys(byKey)));
    const id9a = `${tok.id}/9a`;
    const id9c = `${tok.id}/9c`;
    const retries = async () => (await c.ok('pin.status', { token: tok.id })).retries_left;

    const ctx = await launchPersistent(t, path.join(dir, 'profile'), {
        args: ['--lang=zh-CN'],
        env: d.env,
        locale: 'zh-CN',
        viewport: { width: 900, height: 700 },
    });

    async function openSof(origin, opts = {}) {
        const page = await ctx.newPage();
        await page.goto(`${origin}/page`);
        await page.waitForFunction(() => window.sofLoaded === true);
        await page.evaluate((o) => {
            window.sof = window.lib.createSof(o);
        }, { prefer: 'wss', ports: [d.port], extensionTimeoutMs: 100, lang: 'zh-CN', ...opts });
        return page;
    }
    const call = (page, name, ...args) => page.evaluate(([n, a]) => window.sofCall(n, ...a), [name, args]);
    const ok = async (page, name, ...args) => {
        const r = await call(page, name, ...args);
        assert.ok(!r.error, `${name}(${JSON.stringify(args).slice(0, 120)}) failed: ${JSON.stringify(r.error)}`);
        return r.result;
    };
    const err = async (page, name, ...args) => {
        const r = await call(page, name, ...args);
        assert.ok(r.error, `${name} should have failed: ${JSON.stringify(r)}`);
        return r.error;
    };
    // Sets the scripted dialog answers; returns a function giving the dialogs shown since.
    const dialogs = (answers) => {
        d.pinentryAnswers(answers);
        const before = d.pinentryLog().length;
        return () => d.pinentryLog().slice(before);
    };

    const page = await openSof(page0, { trustedCAs: [fs.readFileSync(path.join(demo, 'demo-ca.pem'), 'utf8')] });

    await t.test('SOF_GetVersion, SOF_GetUserList, SOF_ExportUserCert, SOF_ExportExChangeUserCert', async () => {
        assert.equal(await ok(page, 'SOF_GetVersion'), await page.evaluate(() => import('/sdk/ukey.js').then((m) => m.SDK_VERSION)));
        const list = await ok(page, 'SOF_GetUserList');
        const users = list.split('&&&').map((u) => u.split('||'));
        const cn = (e) => e.subject_parts.find((p) => p.type === 'CN').value;
        assert.deepEqual(users.find(([, id]) => id === id9a), [cn(byKey['9a']), id9a], list);
        assert.ok(!users.some(([, id]) => id === `${tok.id}/9d`), `the encryption certificate is not a user: ${list}`);
        assert.equal(await ok(page, 'SOF_ExportUserCert', id9a), byKey['9a'].der);
        assert.equal(await ok(page, 'SOF_ExportExChangeUserCert', id9a), byKey['9d'].der);
    });

    const cert9a = byKey['9a'].der;
    const x9a = new crypto.X509Certificate(Buffer.from(cert9a, 'base64'));

    await t.test('SOF_GetCertInfo by type and by OID, SOF_ValidateCert', async () => {
        const info = (type) => ok(page, 'SOF_GetCertInfo', cert9a, type);
        assert.equal(await info(0x01), 'V3');
        assert.equal(await info(0x02), byKey['9a'].serial.toUpperCase());
        assert.equal(await info(0x07), byKey['9a'].subject, "the subject as ukeyd's cert.list writes it");
        assert.equal(await info(0x05), byKey['9a'].issuer);
        assert.equal(await info(0x35), asn1Date(byKey['9a'].not_before));
        assert.equal(await info(0x36), asn1Date(byKey['9a'].not_after));
        assert.equal(await info(0x31), x9a.subject.split('\n').find((l) => l.startsWith('CN=')).slice(3));
        assert.equal(await info(0x08), x9a.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'));
        assert.equal(await info(0x100), byKey['9a'].signature_algorithm);
        assert.equal(await info(0x101), byKey['9a'].key_algorithm);
        assert.equal(await ok(page, 'SOF_GetCertInfoByOid', cert9a, '2.5.4.3'), await info(0x31));
        assert.equal((await err(page, 'SOF_GetCertInfo', cert9a, 0x77)).sor, SOR.PARAMETERNOTSUPPORTEERR);
        assert.equal((await err(page, 'SOF_GetCertInfo', 'MIIBAAAA', 0x01)).sor, SOR.CERTENCODEERR);
        assert.equal(await ok(page, 'SOF_ValidateCert', cert9a), 0, 'issued by the demo CA, within its dates');
        const other = await openSof(page0);
        assert.equal((await err(other, 'SOF_ValidateCert', cert9a)).sor, SOR.CTLNOTFOUND, 'no trust list given: said so');
        await other.close();
    });

    await t.test('SOF_GetPinRetryCount, SOF_Login through the dialog; a page PIN refused by policy falls back to it', async () => {
        assert.equal(await ok(page, 'SOF_GetPinRetryCount', id9a), 3);
        let shown = dialogs([`pin ${PIN}`]);
        assert.equal(await ok(page, 'SOF_Login', id9a, ''), true);
        const g = shown().filter((l) => l.command === 'GETPIN');
        assert.equal(g.length, 1, JSON.stringify(shown()));
        assert.ok(g[0].description.includes(page0), 'the dialog names the page');
        assert.match(g[0].description, /check the PIN|核对/, 'a login checks the PIN and signs nothing');
        // The page types a PIN as vendor pages do: ukeyd refuses it (policy), the dialog asks.
        shown = dialogs([`pin ${PIN}`]);
        assert.equal(await ok(page, 'SOF_Login', id9a, PIN), true);
        assert.equal(shown().filter((l) => l.command === 'GETPIN').length, 1);
        assert.equal(await ok(page, 'SOF_GetPinRetryCount', id9a), 3);
    });

    await t.test('a wrong PIN in the dialog: asked again with the tries left; cancelled then: PIN_INCORRECT with retries_left (SOR_UNKNOWNERR)', async () => {
        const shown = dialogs(['pin 00000000', 'cancel']);
        const e = await err(page, 'SOF_Login', id9a, '');
        // ukeyd answers the PIN error the user left the dialog on, not a plain "declined".
        assert.equal(e.reason, 'PIN_INCORRECT', JSON.stringify(e));
        assert.equal(e.sor, SOR.UNKNOWNERR);
        assert.equal(e.sorName, 'SOR_UNKNOWNERR');
        assert.equal(e.data.retries_left, 2);
        assert.match(e.message, /还剩 2 次/);
        const g = shown().filter((l) => l.command === 'GETPIN');
        assert.equal(g.length, 2, JSON.stringify(shown()));
        assert.match(g[1].error, /2 tries left/, 'the second dialog says 2 tries are left');
        assert.equal(await ok(page, 'SOF_GetPinRetryCount', id9a), 2);
        assert.equal(await page.evaluate(() => window.sof.SOF_GetLastError()), SOR.OK);
        dialogs([`pin ${PIN}`]);
        assert.equal(await ok(page, 'SOF_Login', id9a, ''), true);
        assert.equal(await retries(), 3, 'the right PIN resets the counter');
        // A dialog cancelled at once: CONSENT_DENIED, nothing spent.
        dialogs(['cancel']);
        const c2 = await err(page, 'SOF_Login', id9a, '');
        assert.equal(c2.reason, 'CONSENT_DENIED');
        assert.equal(c2.sor, SOR.UNKNOWNERR);
        assert.equal(await retries(), 3);
    });

    await t.test('pin_from_page origin: a wrong page PIN is PIN_INCORRECT with retries_left; the right one is used for the calls after login', async () => {
        const p1 = await openSof(page1);
        let shown = dialogs(['ok']); // the session's consent
        const e = await err(p1, 'SOF_Login', id9a, '00000000');
        assert.equal(e.reason, 'PIN_INCORRECT');
        assert.equal(e.sor, SOR.UNKNOWNERR);
        assert.equal(e.data.retries_left, 2);
        assert.match(e.message, /还剩 2 次/);
        assert.equal(await p1.evaluate(() => window.sof.SOF_GetLastError()), SOR.UNKNOWNERR);
        assert.equal(shown().filter((l) => l.command === 'GETPIN').length, 0, 'no PIN dialog: the page gave the PIN');
        shown = dialogs(['ok', 'ok']);
        assert.equal(await ok(p1, 'SOF_Login', id9a, PIN), true);
        const sig = await ok(p1, 'SOF_SignData', id9a, '登录后签名');
        assert.ok(crypto.verify('sha256', Buffer.from('登录后签名'), x9a.publicKey, Buffer.from(sig, 'base64')));
        assert.equal(shown().filter((l) => l.command === 'GETPIN').length, 0, 'the PIN from SOF_Login was used');
        assert.equal(await retries(), 3);
        await p1.close();
    });

    await t.test('SOF_ChangePassWd through the dialogs (old PIN, new PIN twice), then back', async () => {
        const NEW = '87654321';
        let shown = dialogs([`pin ${PIN}`, `pin ${NEW}`, `pin ${NEW}`]);
        assert.equal(await ok(page, 'SOF_ChangePassWd', id9a, '', ''), true);
        assert.equal(shown().filter((l) => l.command === 'GETPIN').length, 3);
        dialogs([`pin ${NEW}`]);
        assert.equal(await ok(page, 'SOF_Login', id9a, ''), true, 'the new PIN works');
        shown = dialogs([`pin ${NEW}`, `pin ${PIN}`, `pin ${PIN}`]);
        assert.equal(await ok(page, 'SOF_ChangePassWd', id9a, NEW, PIN), true, 'page PINs refused by policy: the dialogs ask');
        assert.equal(shown().filter((l) => l.command === 'GETPIN').length, 3);
        dialogs([`pin ${PIN}`]);
        assert.equal(await ok(page, 'SOF_Login', id9a, ''), true);
    });

    await t.test('SOF_SignData + SOF_VerifySignedData (RSA 9a, P-256 9c); sign methods', async () => {
        for (const [id, e] of [[id9a, byKey['9a']], [id9c, byKey['9c']]]) {
            const data = `待签名数据 ${e.key} ${crypto.randomBytes(4).toString('hex')}`;
            dialogs([`pin ${PIN}`]);
            const sig = await ok(page, 'SOF_SignData', id, data);
            const x = new crypto.X509Certificate(Buffer.from(e.der, 'base64'));
            assert.ok(crypto.verify('sha256', Buffer.from(data), x.publicKey, Buffer.from(sig, 'base64')), `${e.key}: node:crypto verifies`);
            assert.equal(await ok(page, 'SOF_VerifySignedData', e.der, data, sig), true);
            const bad = await err(page, 'SOF_VerifySignedData', e.der, data + '改', sig);
            assert.equal(bad.sor, SOR.VERIFYSIGNDATAERR);
        }
        assert.equal(await ok(page, 'SOF_SetSignMethod', 0x00010004), true);
        assert.equal(await ok(page, 'SOF_GetSignMethod'), 0x00010004);
        // SM3/SM2 is a method now (SM2 keys: tests/e2e/sof_sm2.test.js); with the PIV RSA key it is
        // SOR_ALGTYPEERR at signing, before any dialog.
        assert.equal(await ok(page, 'SOF_SetSignMethod', 0x00020201), true);
        const before = d.pinentryLog().length;
        assert.equal((await err(page, 'SOF_SignData', id9a, 'x')).sor, SOR.ALGTYPEERR, 'SM3/SM2 with an RSA key');
        assert.equal(d.pinentryLog().length, before, 'no dialog');
        assert.equal(await ok(page, 'SOF_SetSignMethod', 0x00010004), true);
        assert.equal((await err(page, 'SOF_SetSignMethod', 0x00010002)).sor, SOR.NOTSUPPORTYETERR, 'SHA-1: not in ukeyd');
        assert.equal((await err(page, 'SOF_SetSignMethod', 7)).sor, SOR.ALGTYPEERR);
    });

    await t.test('SOF_SignMessage attached and detached; SOF_VerifySignedMessage; openssl cms -verify', async () => {
        const data = `消息签名 ${crypto.randomBytes(8).toString('hex')}`;
        const dataFile = path.join(dir, 'msg.txt');
        fs.writeFileSync(dataFile, data);
        for (const flag of [0, 1]) {
            dialogs([`pin ${PIN}`]);
            const cms = await ok(page, 'SOF_SignMessage', flag, id9a, data);
            assert.equal(await ok(page, 'SOF_VerifySignedMessage', cms, flag ? data : ''), true);
            const f = path.join(dir, `msg-${flag}.p7s`);
            fs.writeFileSync(f, Buffer.from(cms, 'base64'));
            const args = ['cms', '-verify', '-binary', '-inform', 'DER', '-in', f, '-CAfile', path.join(demo, 'demo-ca.pem'), '-purpose', 'any', '-out', `${f}.out`];
            if (flag) args.push('-content', dataFile);
            const v = await exec('openssl', args);
            assert.equal(v.code, 0, v.stderr);
            assert.equal(fs.readFileSync(`${f}.out`, 'utf8'), data);
            if (flag) {
                const bad = await err(page, 'SOF_VerifySignedMessage', cms, data + '!');
                assert.equal(bad.reason, 'SIGNATURE_INVALID');
                assert.equal(bad.sor, SOR.VERIFYSIGNDATAERR);
            }
        }
        assert.equal((await err(page, 'SOF_VerifySignedMessage', Buffer.from('not a CMS').toString('base64'), '')).sor, SOR.PKCS7ENCODEERR);
    });

    await t.test('SOF_EncryptData in the page → SOF_DecryptData on the card (RSA 9d, P-256 9c); openssl cms -encrypt → SOF_DecryptData', async () => {
        for (const key of ['9d', '9c']) {
            const text = `机密 ${key} ${crypto.randomBytes(16).toString('hex')}`;
            const env = await ok(page, 'SOF_EncryptData', byKey[key].der, text);
            const shown = dialogs([`pin ${PIN}`]);
            assert.equal(await ok(page, 'SOF_DecryptData', id9a, env), text, key);
            const g = shown().filter((l) => l.command === 'GETPIN');
            assert.equal(g.length, 1);
            assert.match(g[0].description, /decrypt|解密/);
        }
        const text = 'openssl 信封';
        fs.writeFileSync(path.join(dir, 'plain'), text);
        fs.writeFileSync(path.join(dir, '9d.der'), Buffer.from(byKey['9d'].der, 'base64'));
        await openssl(['cms', '-encrypt', '-binary', '-aes256', '-outform', 'DER', '-in', path.join(dir, 'plain'), '-out', path.join(dir, 'env.der'), '-recip', path.join(dir, '9d.der')]);
        dialogs([`pin ${PIN}`]);
        assert.equal(await ok(page, 'SOF_DecryptData', id9a, fs.readFileSync(path.join(dir, 'env.der')).toString('base64')), text);
        // An envelope for someone else (the demo CA): DECRYPT_FAILED at once, no dialog, no try.
        const shown = dialogs([]);
        const foreign = await ok(page, 'SOF_EncryptData', fs.readFileSync(path.join(demo, 'demo-ca.pem'), 'utf8'), 'x');
        const e = await err(page, 'SOF_DecryptData', id9a, foreign);
        assert.equal(e.sor, SOR.DECYPTDATAERR);
        assert.equal(shown().length, 0);
        assert.equal(await retries(), 3);
    });

    await t.test('SOF_GenRandom, SOF_GetDeviceInfo', async () => {
        const r = Buffer.from(await ok(page, 'SOF_GenRandom', 32), 'base64');
        assert.equal(r.length, 32);
        assert.notDeepEqual(r, Buffer.from(await ok(page, 'SOF_GenRandom', 32), 'base64'));
        assert.equal((await err(page, 'SOF_GenRandom', 0)).sor, SOR.INDATALENERR);
        assert.equal(await ok(page, 'SOF_GetDeviceInfo', id9a, 0x208), tok.serial);
        assert.equal(await ok(page, 'SOF_GetDeviceInfo', id9a, 0x203), tok.label);
        assert.equal(await ok(page, 'SOF_GetDeviceInfo', id9a, 0x202), tok.model);
        assert.equal((await err(page, 'SOF_GetDeviceInfo', id9a, 0x204)).sor, SOR.NOTSUPPORTYETERR);
    });

    await t.test('error codes: unknown certID, key or token', async () => {
        const shown = dialogs([]);
        assert.equal((await err(page, 'SOF_ExportUserCert', `${tok.id}/9b`)).sor, SOR.CERTNOTFOUNTERR);
        assert.equal((await err(page, 'SOF_SignData', 'not-a-cert-id', 'x')).sor, SOR.CERTNOTFOUNTERR);
        const gone = await err(page, 'SOF_Login', 'piv:00000000/9a', '');
        assert.equal(gone.reason, 'NO_TOKEN');
        assert.equal(gone.sor, SOR.APPNOTFOUNDERR);
        assert.equal((await err(page, 'SOF_GetDeviceInfo', 'piv:00000000/9a', 0x208)).sor, SOR.APPNOTFOUNDERR);
        assert.equal(shown().length, 0, 'none of these asked anything');
        await screenshot(page, 'e2e-sof-page.png');
    });

    c.close();
    await ctx.close();
    await d.stop();
});
