'use strict';
// PKCS#11 over PC/SC: OpenSC's opensc-pkcs11.so configured as a module while the virtual PIV card
// sits in the private rig. The card is reachable through two drivers (PIV over PC/SC, and the
// module's slot for the same reader); ukeyd lists it once, through the PIV driver
// (docs/drivers.md, "One card, two drivers"), and the card keeps working. With an "atr" hint the
// module takes the card over (docs/drivers.md, "Module hints"): the second test pulls the card at
// every APDU of a signature made through OpenSC.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const crypto = require('node:crypto');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, mustExec, PIN } = require('./lib/rig');

const OPENSC = '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so';
const skip = rigUnavailable() || (fs.existsSync(OPENSC) ? false : `OpenSC's module is not installed (${OPENSC})`);

test('pkcs11 with OpenSC over the virtual PIV card: one card, listed once (PIV driver)', { skip, timeout: 120000 }, async (t) => {
    const rig = await new Rig(t).up();
    const d = await startUkeyd(t, rig, { config: { pkcs11_modules: [{ path: OPENSC, name: 'OpenSC' }] } });
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    assert.equal(tok.driver, 'piv');
    // The module's slot names the reader: it is seen, and hidden.
    await d.waitLog(/module slot 'OpenSC: [^']*' shows the card in reader/);
    const { tokens } = await c.ok('token.list');
    assert.deepEqual(tokens.filter((x) => x.id).map((x) => x.id), [tok.id], JSON.stringify(tokens));
    assert.ok(!tokens.some((x) => x.reader.startsWith('OpenSC: ')), JSON.stringify(tokens));
    // The card still answers through the PIV driver.
    const { certificates } = await c.ok('cert.list', { token: tok.id });
    assert.ok(certificates.some((e) => e.key === '9a'));
    c.close();
    await d.stop();
});

const reason = (r) => (r && r.error ? r.error.data.reason : r && r.result ? 'OK' : String(r));

// OpenSC 0.23 initialised with CKF_OS_LOCKING_OK deadlocks in itself when the card goes while
// C_Login runs (the worker waits in sc_lock() for a mutex its own error path left held). ukeyd
// initialises modules without OS locking and serialises its calls into each module itself
// (uk_p11_int.h), so every pull below must end in an answer, and the card must come back.
test('pkcs11 hint: OpenSC takes the card over by its ATR; the card pulled at each APDU of a signature, then it lists and signs with its certificate', { skip, timeout: 90000 }, async (t) => {
    const rig = await new Rig(t).up();
    const atr = (await mustExec('opensc-tool', ['-a'], { env: rig.pcscEnv })).toString().match(/^([0-9a-f]{2}(:[0-9a-f]{2})+)$/m);
    assert.ok(atr, 'opensc-tool -a prints the ATR');
    const d = await startUkeyd(t, rig, { config: { pkcs11_modules: [{ path: OPENSC, name: 'OpenSC', atr: atr[1] }] } });
    const c = await KeysClient.unix(d);
    const reader = `OpenSC: ${rig.reader}`;
    const tok = await waitToken(c, reader);
    assert.equal(tok.driver, 'p11');
    const only = async () => {
        const { tokens } = await c.ok('token.list');
        assert.deepEqual(tokens.filter((x) => x.id).map((x) => `${x.id} ${x.reader}`), [`${tok.id} ${reader}`], JSON.stringify(tokens));
    };
    await only();
    await d.waitLog(/the card's ATR matches a hint of module OpenSC/);
    const certDer = (await c.ok('cert.list', { token: tok.id, der: true })).certificates.find((e) => e.key === '01').der;
    const cert = new crypto.X509Certificate(Buffer.from(certDer, 'base64'));
    const sign = async () => {
        const data = crypto.randomBytes(32);
        const r = await c.call('sign', { token: tok.id, key: '01', algorithm: 'RSA-PKCS1-SHA256', data: data.toString('base64'), pin: PIN });
        if (r.result) assert.ok(crypto.verify('sha256', data, cert.publicKey, Buffer.from(r.result.signature, 'base64')), 'verifies with the original certificate');
        return r;
    };

    // How many APDUs a signature through OpenSC takes.
    await rig.ctl('counters-reset');
    assert.equal(reason(await sign()), 'OK');
    const apdus = (await rig.counters()).apdus_in;
    console.log(`# a signature through OpenSC: ${apdus} APDUs`);
    assert.ok(apdus > 0, 'OpenSC talks to the card');
    const seen = {};
    let n = 0;
    for (; ; n++) {
        assert.ok(n <= apdus + 8, `the signature completes within ${apdus} APDUs and a few of OpenSC's own`);
        await rig.ctl(`drop-after ${n}`);
        const r = await Promise.race([sign(), new Promise((res) => setTimeout(res, 15000, null).unref())]);
        if (r === null) {
            // A hang (see above): say where, and end the daemon.
            const bt = d.stacks();
            d.kill();
            assert.fail(`drop-after ${n}: no answer to sign within 15 s; ukeyd's threads:\n${bt.split('\n').filter((l) => /^Thread|^#\d+ .*(C_|sc_|uk_p11|p11_)/.test(l)).join('\n')}`);
        }
        const status = await rig.ctl('status');
        console.log(`# drop-after ${n}: ${reason(r)}; card ${status}`);
        if (r.result && /^ok inserted/.test(status)) {
            await rig.ctl('drop-after 1000000000'); // not reached: disarmed
            break;
        }
        seen[reason(r)] = (seen[reason(r)] || 0) + 1;
        if (r.error) {
            // OpenSC answers CKR_GENERAL_ERROR, and its slot still shows the card for a second
            // (it caches slot state): CARD_ERROR, whose message says to re-insert the key.
            assert.ok(['CARD_REMOVED', 'CARD_ERROR'].includes(r.error.data.reason), `drop-after ${n}: ${JSON.stringify(r.error)}`);
            assert.ok(r.error.message, 'a message');
        }
        // Out (ukeyd says so), back in, served by the module again, with its certificate.
        await c.event((m) => m.method === 'token.removed' && m.params.token.reader === reader, 10000, `token.removed after drop-after ${n}`);
        await rig.ctl('insert');
        await c.event((m) => m.method === 'token.inserted' && m.params.token.reader === reader, 15000, `token.inserted after drop-after ${n}`);
        await only();
        const again = (await c.ok('cert.list', { token: tok.id, der: true })).certificates.find((e) => e.key === '01');
        assert.equal(again && again.der, certDer, `drop-after ${n}: the certificate is still there`);
    }
    console.log(`# signature: ${apdus} APDUs; pulled at ${n} of them: ${JSON.stringify(seen)}`);
    assert.ok(n > 0, 'the card was pulled at least once');
    // Afterwards: listed once, signs with its certificate, renewal refused without a change.
    await only();
    assert.equal(reason(await sign()), 'OK');
    assert.equal(reason(await c.call('renewal.prepare', { token: tok.id, slot: '01', mode: 'extend', pin: PIN })), 'NOT_SUPPORTED');
    c.close();
    await d.stop();
});
