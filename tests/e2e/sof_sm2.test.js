'use strict';
// The SDK's GM/T 0020 module (extension/sdk/sof.js) in Chromium with SM2 certificates: a private
// ukeyd with the soft SKF module of tests/skf (no pcscd, no rig) holding an SM2 signing and
// encryption pair, the scripted pinentry, one page origin with the default policy (PINs in
// ukeyd's dialog). Checked from outside the page: SOF_SignData gives SM2-SM3 with the GM/T 0009
// ID (openssl pkeyutl with distid, and not without it); SOF_VerifySignedData checks SM2 through
// ukeyd (WebCrypto has none) and refuses other data; SOF_SignMessage attached and detached gives
// GM/T 0010 SignedData (SM3, SM2-with-SM3, the signature over the signed attributes checked by
// openssl pkeyutl) that SOF_VerifySignedMessage accepts; SOF_SetSignMethod SHA256_RSA with an
// SM2 certificate is SOR_ALGTYPEERR before any dialog; SOF_EncryptData with the SM2 encryption
// certificate makes a GM/T 0010 envelope in the page that SOF_DecryptData opens on the key (and one
// made with openssl); SM2 with AES content is SOR_NOTSUPPORTYETERR (docs/protocol.md, decrypt.cms).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Ukeyd, tempDir } = require('../daemon/lib/ukeyd');
const { KeysClient } = require('../daemon/lib/rig');
const { OID, oidOf, signedParts, provisionSm2, sm2Envelope, sm2Verdict } = require('../daemon/lib/cms_der');
const { browserMissing, serve, trustDaemonCa, launchPersistent, sdkPageHandler } = require('./lib/browser');

const TOOL = process.env.UKSKF_TOOL;
const MODULE = process.env.UKSKF_MODULE;
const PIN = '123456';
// Written out, not imported from the module under test.
const SOR = { NOTSUPPORTYETERR: 0x0b000002, ALGTYPEERR: 0x0b000007, VERIFYSIGNDATAERR: 0x0b000410 };
const SGD_SHA256_RSA = 0x00010004;
const SGD_SM3_SM2 = 0x00020201;

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>SOF SM2</title></head><body><pre id="out"></pre>
<script type="module">
import * as lib from '/sdk/sof.js';
window.lib = lib;
window.sofCall = async (name, ...args) => {
    try {
        return { result: await window.sof[name](...args) };
    } catch (e) {
        return { error: { reason: e.reason, sor: e.sor, message: e.message } };
    }
};
window.sofLoaded = true;
</script></body></html>
`;

const handler = sdkPageHandler(PAGE);

const skip = browserMissing() || (MODULE && TOOL ? false : 'UKSKF_MODULE and UKSKF_TOOL are not set');

test('GM/T 0020 SOF functions in Chromium with the SM2 keys of a soft SKF device', { skip, timeout: 180000 }, async (t) => {
    const dir = tempDir(t, 'uksm2-');
    provisionSm2(dir, TOOL, { serial: 'SKF-E', label: 'SKF SOF' });
    const page0 = `http://127.0.0.1:${await serve(t, handler)}`;
    const d = new Ukeyd(t, {
        origins: [page0],
        config: { log_level: 'debug', skf_modules: [{ path: MODULE, name: 'Soft SKF', ulong_bytes: 4 }] },
    });
    d.env.UKSKF_DIR = dir;
    d.env.PCSCLITE_CSOCK_NAME = path.join(dir, 'no-pcscd/pcscd.comm');
    d.port = 1;
    d.writeConfig();
    trustDaemonCa(d);
    await d.start();
    const c = await KeysClient.unix(d);
    for (let i = 0; ; i++) {
        const r = await c.call('token.list');
        if (((r.result && r.result.tokens) || []).some((x) => x.id === 'skf:SKF-E')) break;
        assert.ok(i < 100, 'the SKF token never came');
        await new Promise((res) => setTimeout(res, 100));
    }
    const sigId = 'skf:SKF-E/sm2/sign';
    const encId = 'skf:SKF-E/sm2/enc';
    const sigDer = fs.readFileSync(path.join(dir, 'sig.der'));
    const retries = async () => (await c.ok('pin.status', { token: 'skf:SKF-E' })).retries_left;

    const ctx = await launchPersistent(t, path.join(dir, 'profile'), { env: d.env });
    const page = await ctx.newPage();
    await page.goto(`${page0}/page`);
    await page.waitForFunction(() => window.sofLoaded === true);
    const newSof = () => page.evaluate((o) => {
        window.sof = window.lib.createSof(o);
    }, { prefer: 'wss', ports: [d.port], extensionTimeoutMs: 100, lang: 'en' });
    await newSof();
    const call = (name, ...args) => page.evaluate(([n, a]) => window.sofCall(n, ...a), [name, args]);
    const ok = async (name, ...args) => {
        const r = await call(name, ...args);
        assert.ok(!r.error, `${name} failed: ${JSON.stringify(r.error)}`);
        return r.result;
    };
    // The PIN through ukeyd's dialog, as pages with the default policy get it.
    const withDialog = async (fn) => {
        d.pinentryAnswers([`pin ${PIN}`]);
        return fn();
    };
    const pkeyutl = (msg, sig, withId) => sm2Verdict(dir, msg, sig, withId);
    const text = '国密 SM2 签名 ' + crypto.randomBytes(8).toString('hex');

    await t.test('SOF_GetUserList names the SM2 signing certificate; SOF_ExportUserCert gives it', async () => {
        const list = await ok('SOF_GetUserList');
        assert.ok(list.split('&&&').some((u) => u.split('||')[1] === sigId), list);
        assert.equal(await ok('SOF_ExportUserCert', sigId), sigDer.toString('base64'));
    });

    await t.test('SOF_SignData: SM2-SM3 with the default ID; SOF_VerifySignedData through ukeyd', async () => {
        const sig = await withDialog(() => ok('SOF_SignData', sigId, text));
        const raw = Buffer.from(sig, 'base64');
        assert.match(pkeyutl(Buffer.from(text, 'utf8'), raw, true), /Signature Verified Successfully/);
        assert.match(pkeyutl(Buffer.from(text, 'utf8'), raw, false), /^failed/, 'not with the empty ID');
        assert.equal(await ok('SOF_VerifySignedData', sigDer.toString('base64'), text, sig), true);
        const bad = await call('SOF_VerifySignedData', sigDer.toString('base64'), `${text}!`, sig);
        assert.equal(bad.error && bad.error.sor, SOR.VERIFYSIGNDATAERR, JSON.stringify(bad));
    });

    for (const flag of [0, 1]) {
        await t.test(`SOF_SignMessage ${flag ? 'detached' : 'attached'}: GM/T 0010 SignedData; SOF_VerifySignedMessage`, async () => {
            const cms = await withDialog(() => ok('SOF_SignMessage', flag, sigId, text));
            const p = signedParts(Buffer.from(cms, 'base64'));
            assert.equal(p.contentType, OID.signedData);
            assert.equal(p.digestAlgorithm, OID.sm3);
            assert.equal(p.signatureAlgorithm, OID.sm2WithSm3);
            assert.deepEqual(p.certificates, [sigDer]);
            assert.equal(oidOf(p.attrs[OID.contentType][0]), OID.data);
            assert.deepEqual(Buffer.from(p.attrs[OID.messageDigest][0].value), crypto.createHash('sm3').update(text, 'utf8').digest());
            assert.match(pkeyutl(p.attrsSet, p.signature, true), /Signature Verified Successfully/);
            if (flag) assert.equal(p.content, null);
            else assert.equal(Buffer.from(p.content).toString('utf8'), text);
            assert.equal(await ok('SOF_VerifySignedMessage', cms, flag ? text : ''), true);
        });
    }

    await t.test('SOF_SetSignMethod: SHA256_RSA with an SM2 certificate is SOR_ALGTYPEERR before any dialog; SM3_SM2 signs', async () => {
        const left = await retries();
        const before = d.pinentryLog().length;
        assert.equal(await ok('SOF_SetSignMethod', SGD_SHA256_RSA), true);
        for (const [fn, args] of [['SOF_SignData', [sigId, text]], ['SOF_SignMessage', [0, sigId, text]]]) {
            const r = await call(fn, ...args);
            assert.equal(r.error && r.error.sor, SOR.ALGTYPEERR, `${fn}: ${JSON.stringify(r)}`);
        }
        assert.equal(d.pinentryLog().length, before, 'no dialog');
        assert.equal(await retries(), left);
        assert.equal(await ok('SOF_SetSignMethod', SGD_SM3_SM2), true);
        const sig = await withDialog(() => ok('SOF_SignData', sigId, text));
        assert.match(pkeyutl(Buffer.from(text, 'utf8'), Buffer.from(sig, 'base64'), true), /Signature Verified Successfully/);
        await newSof(); // back to the default method for the tests after this one
    });

    await t.test('SOF_EncryptData in the page (GM/T 0010) → SOF_DecryptData opened on the key; an openssl-made envelope; AES content refused', async () => {
        const encDer = fs.readFileSync(path.join(dir, 'enc.der')).toString('base64');
        const left = await retries();
        for (const msg of [text, 'x', '长'.repeat(700)]) {
            const env = await ok('SOF_EncryptData', encDer, msg);
            const before = d.pinentryLog().length;
            assert.equal(await withDialog(() => ok('SOF_DecryptData', encId, env)), msg);
            assert.ok(d.pinentryLog().length > before, 'the dialog asked');
        }
        const made = sm2Envelope(dir, Buffer.from(text, 'utf8')).toString('base64');
        assert.equal(await withDialog(() => ok('SOF_DecryptData', encId, made)), text);
        assert.equal(await retries(), left, 'no try spent');
        // SM2 key transport with AES content: a key decrypts SM4 only; refused at once.
        const before = d.pinentryLog().length;
        const r = await call('SOF_DecryptData', encId, sm2Envelope(dir, Buffer.from(text, 'utf8'), { aes: true }).toString('base64'));
        assert.equal(r.error && r.error.reason, 'NOT_SUPPORTED', JSON.stringify(r));
        assert.equal(r.error.sor, SOR.NOTSUPPORTYETERR);
        assert.equal(d.pinentryLog().length, before, 'no dialog');
    });
    c.close();
    await ctx.close();
    await d.stop();
});
