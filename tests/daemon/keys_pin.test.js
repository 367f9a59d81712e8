'use strict';
// The PIN through the real daemon: a wrong PIN reports the retries left (and token.list and a
// token.changed event follow), a right one restores them, three wrong ones block the PIN
// (PIN_LOCKED, also for the right PIN), yubico-piv-tool unblocks it with the PUK and signing works
// again. No PIN ever appears in the daemon's log, at debug level.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, PIN, PUK } = require('./lib/rig');

const skip = rigUnavailable() || false;

// Distinctive PINs, so that a find in the log means the PIN and nothing else.
const MY_PIN = '73914682';
const WRONG = ['60482715', '51937028', '28461973'];

// SELECT, then GENERAL AUTHENTICATE with 9a (RSA-2048) on a padded block, chained (short APDUs):
// 6982 unless the PIN is verified on the card.
const RAW_SIGN_9A = (() => {
    const body = '7c820106' + '8200' + '81820100' + '0001' + 'ff'.repeat(254);
    const rest = body.slice(510);
    return [
        '00A4040009A0000003080000100000',
        `1087079aff${body.slice(0, 510)}`,
        `0087079a${(rest.length / 2).toString(16).padStart(2, '0')}${rest}00`,
    ];
})();

test('wrong PIN, retries, PIN_LOCKED, unblock with the PUK; no PIN in the log', { skip, timeout: 60000 }, async (t) => {
    const rig = await new Rig(t).up();
    await rig.piv(['-a', 'change-pin', '-P', PIN, '-N', MY_PIN]);
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const id = tok.id;
    assert.equal(tok.pin_retries, 3);

    const data = crypto.randomBytes(64).toString('base64');
    const sign = (pin, key = '9a') =>
        c.call('sign', { token: id, key, algorithm: key === '9a' ? 'RSA-PKCS1-SHA256' : 'ECDSA-SHA256', data, pin });
    const retries = async () => (await c.ok('token.list')).tokens.find((x) => x.id === id).pin_retries;
    const changed = (n) =>
        c.event((m) => m.method === 'token.changed' && m.params.token.id === id && m.params.token.pin_retries === n, 10000, `token.changed with pin_retries ${n}`);
    const toolRetries = async () => Number((await rig.piv(['-a', 'status'])).match(/^PIN tries left:\s*(\d+)/m)[1]);

    await t.test('a wrong PIN: PIN_INCORRECT, retries_left 2; a right one restores 3', async () => {
        const r = await sign(WRONG[0]);
        assert.equal(r.error && r.error.data.reason, 'PIN_INCORRECT', JSON.stringify(r));
        assert.equal(r.error.data.retries_left, 2);
        assert.equal(r.error.data.retriable, true);
        await changed(2);
        assert.equal(await retries(), 2);
        assert.ok((await sign(MY_PIN)).result, 'the right PIN signs');
        await changed(3);
        assert.equal(await retries(), 3);
    });

    await t.test('three wrong PINs: retries_left 2, then 1, then PIN_LOCKED; the right PIN is PIN_LOCKED too', async () => {
        for (const [i, n] of [[0, 2], [1, 1]]) {
            const r = await sign(WRONG[i], i ? '9c' : '9a');
            assert.equal(r.error && r.error.data.reason, 'PIN_INCORRECT', JSON.stringify(r));
            assert.equal(r.error.data.retries_left, n);
            await changed(n);
            assert.equal(await retries(), n);
        }
        // With one try left ukeyd asks before spending it, even for the local user's own PIN.
        d.pinentryAnswers(['ok']);
        const shown = d.pinentryLog().length;
        let r = await sign(WRONG[2]);
        assert.equal(r.error && r.error.data.reason, 'PIN_LOCKED', JSON.stringify(r));
        assert.equal(d.pinentryLog().length, shown + 1, 'the last try was confirmed in a dialog');
        assert.equal(r.error.data.retriable, false);
        await changed(0);
        assert.equal(await retries(), 0);
        r = await sign(MY_PIN);
        assert.equal(r.error && r.error.data.reason, 'PIN_LOCKED', JSON.stringify(r));
        assert.equal(await toolRetries(), 0, 'yubico-piv-tool agrees: blocked');
    });

    await t.test('unblocked by yubico-piv-tool with the PUK: signing works, retries back to 3', async () => {
        await rig.piv(['-a', 'unblock-pin', '-P', PUK, '-N', MY_PIN]);
        assert.equal(await toolRetries(), 3);
        const r = await sign(MY_PIN, '9c');
        assert.ok(r.result, JSON.stringify(r));
        await changed(3);
        assert.equal(await retries(), 3);
    });

    // After ukeyd signed with 9a (PIN policy "once"), the card must not stay with the PIN
    // verified: another program that connects before pcscd powers the card down would sign with
    // 9a without knowing the PIN. ukeyd ends every PIN job with VERIFY P1=FF (the driver's logout).
    await t.test(
        'after a sign, the PIN is not left verified on the card for other programs',
        async () => {
            assert.ok((await sign(MY_PIN)).result);
            const r = await rig.pcsc(['apdu', '--auto-get-response', rig.reader, ...RAW_SIGN_9A]);
            const sws = r.stdout.trim().split('\n').map((l) => l.slice(-4));
            assert.deepEqual(sws, ['9000', '9000', '6982'], 'GENERAL AUTHENTICATE with 9a without VERIFY must be refused');
        },
    );

    c.close();
    await d.stop();

    await t.test('no PIN in the log (as text or as hex), wrong ones included', () => {
        assert.match(d.log, /PIN_INCORRECT/, 'the log is the one of this session');
        for (const pin of [MY_PIN, PIN, PUK, ...WRONG]) {
            const hex = Buffer.from(pin).toString('hex');
            for (const s of [pin, hex, hex.toUpperCase()]) assert.equal(d.log.includes(s), false, `'${s}' in the log:\n${d.log}`);
        }
    });
});
