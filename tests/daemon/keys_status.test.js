'use strict';
// Certificate status against the clock (docs/certificates.md): cards provisioned with a
// certificate that expires in 20 days, one that expired yesterday and one that starts tomorrow;
// status, days_left, valid_from and days_until_valid as the daemon reports them, and the
// expiring_days threshold from the configuration.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken } = require('./lib/rig');

const skip = rigUnavailable() || false;

// A rig whose cards are provisioned by us (before `up`, which then reuses the state) with the
// demo certificates placed by vpiv's --cert-from/--cert-days (days relative to today).
async function provisionedRig(t, cards) {
    const rig = new Rig(t, { cards: cards.length });
    for (let i = 0; i < cards.length; i++) {
        const args = ['--serial', String(30000000 + i), '--demo-certs', path.join(rig.cardDir(0), 'demo')];
        if (cards[i].from !== undefined) args.push('--cert-from', String(cards[i].from));
        args.push('--cert-days', String(cards[i].days));
        await rig.provision(i, args);
    }
    return rig.up();
}

async function certs(c, token) {
    const before = Date.now();
    const r = await c.ok('cert.list', { token });
    const after = Date.now();
    assert.deepEqual(r.certificates.map((e) => e.key), ['9a', '9c']);
    return { certs: r.certificates, before, after };
}

// The values f(now) may have for the daemon's now in [before, after]: its clock has whole seconds
// and time() reads the kernel's coarse clock, a tick behind ours (a second of slack).
function oneOf(f, before, after) {
    return [...new Set([f(before - 1000), f(before), f(after)])];
}

const sec = (ms) => Math.floor(ms / 1000) * 1000;
const daysLeft = (e) => (now) => Math.floor((Date.parse(e.not_after) - sec(now)) / 86400000);
const daysUntil = (e) => (now) => Math.ceil((Date.parse(e.not_before) - sec(now)) / 86400000);

test('expiring in 20 days, expired yesterday; the expiring_days threshold', { skip, timeout: 60000 }, async (t) => {
    const rig = await provisionedRig(t, [{ days: 20 }, { from: -400, days: -1 }]);
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const t0 = await waitToken(c, rig.reader);
    const t1 = await waitToken(c, rig.reader1);

    await t.test('20 days left: expiring', async () => {
        const { certs: list, before, after } = await certs(c, t0.id);
        for (const e of list) {
            assert.equal(e.status, 'expiring', JSON.stringify(e));
            assert.ok(oneOf(daysLeft(e), before, after).includes(e.days_left), `days_left ${e.days_left}`);
            assert.ok(e.days_left === 19 || e.days_left === 20, `days_left ${e.days_left}`);
            assert.equal(e.valid_from, undefined);
        }
    });

    await t.test('ended yesterday: expired, days_left negative', async () => {
        const { certs: list, before, after } = await certs(c, t1.id);
        for (const e of list) {
            assert.equal(e.status, 'expired', JSON.stringify(e));
            assert.ok(oneOf(daysLeft(e), before, after).includes(e.days_left), `days_left ${e.days_left}`);
            assert.ok(e.days_left === -1 || e.days_left === -2, `days_left ${e.days_left}`);
        }
    });

    await t.test('expiring_days 10: 20 days left is valid', async () => {
        const d10 = await startUkeyd(t, rig, { config: { expiring_days: 10 } });
        const c10 = await KeysClient.unix(d10);
        await waitToken(c10, rig.reader);
        for (const e of (await certs(c10, t0.id)).certs) assert.equal(e.status, 'valid', JSON.stringify(e));
        c10.close();
        await d10.stop();
    });

    c.close();
    await d.stop();
});

test('starting tomorrow: not_yet_valid with valid_from and days_until_valid', { skip, timeout: 60000 }, async (t) => {
    const rig = await provisionedRig(t, [{ from: 1, days: 365 }]);
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const { certs: list, before, after } = await certs(c, tok.id);
    for (const e of list) {
        assert.equal(e.status, 'not_yet_valid', JSON.stringify(e));
        assert.equal(e.valid_from, e.not_before);
        assert.ok(Date.parse(e.not_before) > after, 'not_before is in the future');
        assert.ok(oneOf(daysUntil(e), before, after).includes(e.days_until_valid), `days_until_valid ${e.days_until_valid}`);
        assert.equal(e.days_until_valid, 1);
        assert.ok(oneOf(daysLeft(e), before, after).includes(e.days_left), `days_left ${e.days_left}`);
    }
    c.close();
    await d.stop();
});
