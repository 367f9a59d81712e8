'use strict';
// The card pulled out in the middle of an operation (the virtual card's drop-after fault: it
// answers N more APDUs and vanishes on the next one): a cold cert.list and a sign (before the
// VERIFY, and after it, before the signature) end with a clean CARD_REMOVED, the daemon keeps
// serving, and after the card is back the token is listed again and cert.list and sign work.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { tempDir } = require('./lib/ukeyd');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, openssl, exec, PIN } = require('./lib/rig');

const skip = rigUnavailable() || false;

test('card removed in the middle of cert.list and of sign', { skip, timeout: 90000 }, async (t) => {
    const dir = tempDir(t, 'ukm-');
    const rig = await new Rig(t).up();
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const id = tok.id;
    const data = crypto.randomBytes(100);
    fs.writeFileSync(path.join(dir, 'data'), data);
    const signParams = { token: id, key: '9a', algorithm: 'RSA-PKCS1-SHA256', data: data.toString('base64'), pin: PIN };

    // After a fault: the daemon answers, reports the token gone, and takes the card back.
    async function recovers(what) {
        const hello = await c.call('system.hello');
        assert.ok(hello.result, `system.hello after ${what}: ${JSON.stringify(hello)}`);
        await c.event((m) => m.method === 'token.removed' && m.params.token.reader === rig.reader, 10000, 'token.removed');
        const { tokens } = await c.ok('token.list');
        assert.equal(tokens.find((x) => x.reader === rig.reader).present, false);
        const st = await rig.ctl('status');
        assert.match(st, /^ok removed/, `the card is out: ${st}`);
        await rig.ctl('insert');
        const ev = await c.event((m) => m.method === 'token.inserted' && m.params.token.reader === rig.reader, 10000, 'token.inserted');
        assert.equal(ev.params.token.id, id, 'the same token id after re-insert');
        assert.equal((await c.ok('token.list')).tokens.find((x) => x.reader === rig.reader).id, id);
    }

    async function signsAndVerifies() {
        const r = await c.ok('sign', signParams);
        const sig = path.join(dir, 'sig');
        fs.writeFileSync(sig, Buffer.from(r.signature, 'base64'));
        const { certificates } = await c.ok('cert.list', { token: id, der: true });
        const der = path.join(dir, '9a.der');
        fs.writeFileSync(der, Buffer.from(certificates[0].der, 'base64'));
        const pub = path.join(dir, '9a.pub');
        fs.writeFileSync(pub, await openssl(['x509', '-inform', 'DER', '-in', der, '-noout', '-pubkey']));
        const v = await exec('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', sig, path.join(dir, 'data')]);
        assert.equal(v.stdout.trim(), 'Verified OK');
    }

    await t.test('cold cert.list, card gone after 3 APDUs: CARD_REMOVED; then it works again', async () => {
        await rig.ctl('drop-after 3');
        const t0 = performance.now();
        const r = await c.call('cert.list', { token: id });
        console.log(`# cert.list with the card pulled: ${r.error && r.error.data.reason} after ${(performance.now() - t0).toFixed(0)} ms`);
        assert.equal(r.error && r.error.data.reason, 'CARD_REMOVED', JSON.stringify(r));
        assert.equal(r.error.data.retriable, true);
        assert.ok(performance.now() - t0 <= 5000, 'answered within 5 s');
        await recovers('cert.list');
        const { certificates } = await c.ok('cert.list', { token: id });
        assert.deepEqual(certificates.map((e) => e.key), ['9a', '9c']);
        await signsAndVerifies();
    });

    for (const [n, when] of [
        [1, 'before the VERIFY'],
        [2, 'after the VERIFY, at the signature'],
    ]) {
        await t.test(`sign, card gone ${when} (drop-after ${n}): CARD_REMOVED; no PIN try lost; then it works again`, async () => {
            await rig.ctl(`drop-after ${n}`);
            const t0 = performance.now();
            const r = await c.call('sign', signParams);
            console.log(`# sign with the card pulled ${when}: ${r.error && r.error.data.reason} after ${(performance.now() - t0).toFixed(0)} ms`);
            assert.equal(r.error && r.error.data.reason, 'CARD_REMOVED', JSON.stringify(r));
            assert.ok(performance.now() - t0 <= 5000, 'answered within 5 s');
            await recovers('sign');
            assert.equal((await c.ok('token.list')).tokens[0].pin_retries, 3);
            await signsAndVerifies();
        });
    }

    await t.test('a cert.list waiting behind a sign that loses the card: both answered', async () => {
        // signsAndVerifies() filled the cache: a card event makes it cold again.
        await rig.ctl('remove');
        await c.event((m) => m.method === 'token.removed', 10000, 'token.removed');
        await rig.ctl('insert');
        await c.event((m) => m.method === 'token.inserted' && m.params.token.id === id, 10000, 'token.inserted');
        await rig.ctl('drop-after 2');
        const [s, l] = await Promise.all([c.call('sign', signParams), c.call('cert.list', { token: id })]);
        console.log(`# sign + cert.list queued behind it, card pulled: ${s.error && s.error.data.reason}, ${l.error ? l.error.data.reason : 'a list'}`);
        assert.equal(s.error && s.error.data.reason, 'CARD_REMOVED', JSON.stringify(s));
        assert.equal(l.error && l.error.data.reason, 'CARD_REMOVED', JSON.stringify(l));
        await recovers('sign + cert.list');
        assert.deepEqual((await c.ok('cert.list', { token: id })).certificates.map((e) => e.key), ['9a', '9c']);
    });

    c.close();
    await d.stop();
});
