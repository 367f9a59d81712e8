'use strict';
// PKCS#11 over PC/SC: OpenSC's opensc-pkcs11.so configured as a module while the virtual PIV card
// sits in the private rig. The card is reachable through two drivers (PIV over PC/SC, and the
// module's slot for the same reader); ukeyd lists it once, through the PIV driver
// (docs/drivers.md, "One card, two drivers"), and the card keeps working.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken } = require('./lib/rig');

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
