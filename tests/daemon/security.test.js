'use strict';
// The security layer on the real daemon with the virtual card: pairing of unknown origins in a
// native dialog (the scripted pinentry answers and records what each dialog showed), the PIN and
// consent dialogs of sign (origin, key, subject and digest shown; cancel, a wrong PIN asked again),
// a portal allowed to send the PIN with consent per session, the per-key PIN rate, the last PIN
// try never spent without a yes, origins relayed by the extension, the audit log (never a PIN)
// and the administrator's system config that the user cannot override.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { BIN, Ukeyd, WssClient, run } = require('./lib/ukeyd');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, PIN } = require('./lib/rig');

const skip = rigUnavailable() || false;

const ALLOWED = 'https://portal.example.cn'; // rig.js's origin, in the config
const LEGACY = 'https://legacy.example.cn'; // in the config, may send the PIN, consent per session
const PAGE = 'https://pair.example.com'; // unknown: pairable
const PAGE2 = 'https://other.example.com'; // unknown: the user declines it
const PAGE3 = 'https://third.example.com'; // unknown, never paired
const EXT_ID = 'abcdefghijklmnopabcdefghijklmnop';
const EXT = `chrome-extension://${EXT_ID}`;

async function wssAs(d, origin) {
    return new KeysClient(await WssClient.open(d.port, { origin, ca: d.ca }));
}

// A request with the top-level "origin" an extension names (only its session may).
function callAs(c, method, params, origin) {
    const id = c.nextId++;
    const req = { jsonrpc: '2.0', method, id, origin };
    if (params !== undefined) req.params = params;
    return new Promise((resolve) => {
        c.pending.set(id, resolve);
        c.conn.send(req);
    });
}

const reason = (r) => (r && r.error ? r.error.data.reason : r && r.result ? 'OK' : String(r));

function ctl(d, args) {
    return run(BIN.ctl, ['--socket', d.socket, ...args], { env: d.env });
}

test('security: pairing, PIN and consent dialogs, page PIN policy, PIN rate, last try, extension origins, audit', { skip, timeout: 180000 }, async (t) => {
    const rig = await new Rig(t).up();
    const opts = {
        origins: [ALLOWED, LEGACY],
        extension_ids: [EXT_ID],
        config: {
            origin_policies: { [LEGACY]: { pin_from_page: true, consent: 'session' } },
            limits: { pin_attempts_per_minute: 3 },
        },
    };
    let d = await startUkeyd(t, rig, opts);
    let c = await KeysClient.unix(d);
    const token = (await waitToken(c, rig.reader)).id;
    const cert9a = (await c.ok('cert.list', { token, der: true })).certificates.find((e) => e.key === '9a');
    const pub9a = new crypto.X509Certificate(Buffer.from(cert9a.der, 'base64')).publicKey;
    const data = crypto.randomBytes(200);
    const signParams = { token, key: '9a', algorithm: 'RSA-PKCS1-SHA256', data: data.toString('base64') };
    const digestHex = crypto.createHash('sha256').update(data).digest('hex');
    const retries = async () => (await c.ok('token.list')).tokens.find((x) => x.id === token).pin_retries;
    // The summary follows the card through token.changed, after the answer: wait for it.
    const retriesBecome = (n) =>
        c.event((m) => m.method === 'token.changed' && m.params.token.id === token && m.params.token.pin_retries === n,
            10000, `pin_retries ${n}`);
    const dialogs = () => d.pinentryLog();

    await t.test('an unknown origin: hello says pairable and offers hello and pair only; cert.list is NOT_PAIRED', async () => {
        const w = await wssAs(d, PAGE3);
        const hello = await w.ok('system.hello');
        assert.equal(hello.access, 'pairable');
        assert.deepEqual([...hello.methods].sort(), ['system.hello', 'system.pair']);
        assert.equal(reason(await w.call('cert.list', { token })), 'NOT_PAIRED');
        assert.equal(reason(await w.call('sign', signParams)), 'NOT_PAIRED');
        assert.equal(reason(await w.call('audit.read')), 'METHOD_NOT_ALLOWED');
        w.close();
    });

    await t.test('pairing: declined twice, then no more dialogs for a while', async () => {
        d.pinentryAnswers(['cancel', 'notconfirmed']);
        const w = await wssAs(d, PAGE2);
        const before = dialogs().length;
        assert.equal(reason(await w.call('system.pair')), 'CONSENT_DENIED');
        assert.equal(reason(await w.call('system.pair')), 'CONSENT_DENIED');
        assert.equal(reason(await w.call('system.pair')), 'RATE_LIMITED');
        const shown = dialogs().slice(before);
        assert.equal(shown.length, 2, 'the third request showed no dialog');
        for (const s of shown) {
            assert.equal(s.command, 'CONFIRM');
            assert.ok(s.description.includes(PAGE2), `the dialog names the origin: ${s.description}`);
        }
        w.close();
    });

    await t.test('pairing: approved, listed by ukeyctl, revoked (open connections lose access at once), approved again', async () => {
        d.pinentryAnswers(['ok']);
        const w = await wssAs(d, PAGE);
        const r = await w.ok('system.pair');
        assert.deepEqual(r, { paired: true, already: false });
        assert.equal((await w.ok('system.hello')).access, 'paired');
        assert.equal((await w.ok('cert.list', { token })).certificates.length, 2);
        assert.deepEqual(await w.ok('system.pair'), { paired: true, already: true });

        const list = ctl(d, ['origins', 'list', '--json']);
        assert.equal(list.code, 0, list.stderr);
        const origins = JSON.parse(list.stdout).origins;
        const mine = origins.find((o) => o.origin === PAGE);
        assert.equal(mine.access, 'paired');
        assert.equal(mine.source, 'pairing');
        assert.match(mine.paired_at, /^\d{4}-\d\d-\d\dT/);
        assert.ok(origins.some((o) => o.origin === ALLOWED && o.access === 'allowed'));
        const table = ctl(d, ['origins', 'list']);
        assert.equal(table.code, 0, table.stderr);
        assert.ok(table.stdout.includes(PAGE));

        const rv = ctl(d, ['origins', 'revoke', PAGE]);
        assert.equal(rv.code, 0, rv.stderr);
        assert.equal(reason(await w.call('cert.list', { token })), 'NOT_PAIRED');
        const again = ctl(d, ['origins', 'revoke', PAGE]);
        assert.notEqual(again.code, 0, 'revoking twice fails');
        const cfgRevoke = ctl(d, ['origins', 'revoke', ALLOWED]);
        assert.notEqual(cfgRevoke.code, 0, 'configured origins are not revoked by ukeyctl');

        d.pinentryAnswers(['ok']);
        assert.equal((await w.ok('system.pair')).paired, true);
        w.close();
    });

    await t.test('sign from a paired page: the PIN dialog names origin, key, subject and digest; the signature verifies', async () => {
        d.pinentryAnswers([`pin ${PIN}`]);
        const w = await wssAs(d, PAGE);
        const before = dialogs().length;
        const r = await w.ok('sign', signParams);
        const ok = crypto.verify('sha256', data, pub9a, Buffer.from(r.signature, 'base64'));
        assert.equal(ok, true, 'the signature verifies with the certificate of 9a');
        const shown = dialogs().slice(before);
        assert.equal(shown.length, 1, 'one dialog: the PIN dialog is the consent');
        assert.equal(shown[0].command, 'GETPIN');
        const desc = shown[0].description;
        assert.ok(desc.includes(PAGE), desc);
        assert.ok(desc.includes('张三'), `the certificate's subject: ${desc}`);
        assert.ok(desc.toLowerCase().includes(digestHex.slice(0, 32)), `the digest: ${desc}`);
        assert.ok(!JSON.stringify(shown).includes(PIN), 'the log of dialogs never holds the PIN');

        d.pinentryAnswers(['cancel']);
        assert.equal(reason(await w.call('sign', signParams)), 'CONSENT_DENIED');
        assert.equal(await retries(), 3, 'a cancelled dialog costs no try');

        d.pinentryAnswers(['pin 00000000', `pin ${PIN}`]);
        const n = dialogs().length;
        assert.ok((await w.ok('sign', signParams)).signature);
        const two = dialogs().slice(n);
        assert.equal(two.length, 2);
        assert.equal(two[0].error, null);
        assert.match(two[1].error, /2/, 'the second dialog says how many tries are left');
        assert.equal(await retries(), 3, 'the right PIN restored the tries');

        const before2 = dialogs().length;
        assert.equal(reason(await w.call('sign', { ...signParams, pin: PIN })), 'PIN_FROM_PAGE_DISABLED');
        assert.equal(dialogs().length, before2, 'a refused page PIN shows no dialog');
        w.close();
    });

    await t.test('a portal allowed to send the PIN: a CONFIRM once per session', async () => {
        d.pinentryAnswers(['ok']);
        const before = dialogs().length;
        const w = await wssAs(d, LEGACY);
        assert.ok((await w.ok('sign', { ...signParams, pin: PIN })).signature);
        assert.ok((await w.ok('sign', { ...signParams, pin: PIN })).signature);
        const shown = dialogs().slice(before);
        assert.equal(shown.length, 1, 'one consent for the session');
        assert.equal(shown[0].command, 'CONFIRM');
        assert.ok(shown[0].description.includes(LEGACY));
        w.close();
        d.pinentryAnswers(['cancel']);
        const w2 = await wssAs(d, LEGACY);
        assert.equal(reason(await w2.call('sign', { ...signParams, pin: PIN })), 'CONSENT_DENIED');
        w2.close();
    });

    // The wrong PIN of the dialog test above counts too: three in a minute.
    await t.test('PIN attempts per key per minute: the fourth wrong PIN is not sent to the card', async () => {
        c.events.length = 0;
        for (let i = 0; i < 2; i++)
            assert.equal(reason(await c.call('sign', { ...signParams, pin: '00000000' })), 'PIN_INCORRECT');
        await retriesBecome(1);
        const before = dialogs().length;
        assert.equal(reason(await c.call('sign', { ...signParams, pin: PIN })), 'RATE_LIMITED');
        assert.equal(await retries(), 1, 'the card was not asked');
        assert.equal(dialogs().length, before);
    });

    // A restart forgets the strikes (and shows that pairings persist).
    c.close();
    await d.stop();
    d = await startUkeyd(t, rig, { ...opts, dir: d.dir });
    c = await KeysClient.unix(d);
    await waitToken(c, rig.reader);

    await t.test('the last PIN try is never spent without a yes', async () => {
        assert.equal(await retries(), 1);
        const w = await wssAs(d, PAGE);
        assert.equal((await w.ok('system.hello')).access, 'paired', 'the pairing survived the restart');
        d.pinentryAnswers(['cancel']);
        let before = dialogs().length;
        assert.equal(reason(await w.call('sign', signParams)), 'CONSENT_DENIED');
        let shown = dialogs().slice(before);
        assert.equal(shown.length, 1);
        assert.equal(shown[0].command, 'CONFIRM');
        assert.match(shown[0].description, /one PIN attempt/i);
        assert.equal(await retries(), 1);
        // The local user's own PIN with one try left also needs the yes.
        d.pinentryAnswers(['cancel']);
        assert.equal(reason(await c.call('sign', { ...signParams, pin: PIN })), 'CONSENT_DENIED');
        assert.equal(await retries(), 1);
        d.pinentryAnswers(['ok', `pin ${PIN}`]);
        c.events.length = 0;
        before = dialogs().length;
        assert.ok((await w.ok('sign', signParams)).signature);
        shown = dialogs().slice(before);
        assert.deepEqual(shown.map((s) => s.command), ['CONFIRM', 'GETPIN']);
        await retriesBecome(3);
        w.close();
    });

    await t.test('origins relayed by the extension: its own calls, allowed, unpaired and forged page origins', async () => {
        const x = await KeysClient.unix(d);
        // Before attaching, "origin" is an unknown member like any other.
        assert.equal(reason(await callAs(x, 'system.hello', undefined, ALLOWED)), 'INVALID_REQUEST');
        await x.ok('system.attach', { extension: `${EXT}/` });
        assert.equal((await x.ok('system.hello')).origin, EXT);
        assert.ok((await x.ok('token.list')).tokens.length >= 1, 'the popup lists keys');
        const ol = await x.ok('origins.list');
        assert.ok(ol.origins.some((o) => o.origin === ALLOWED));
        assert.equal(reason(await x.call('sign', signParams)), 'METHOD_NOT_ALLOWED', 'the extension itself does not sign');
        assert.equal(reason(await x.call('audit.read')), 'METHOD_NOT_ALLOWED');

        const h = await callAs(x, 'system.hello', undefined, ALLOWED);
        assert.equal(h.result.origin, ALLOWED);
        assert.equal(h.result.access, 'allowed');
        assert.equal(reason(await callAs(x, 'cert.list', { token }, ALLOWED)), 'OK');
        assert.equal(reason(await callAs(x, 'origins.list', undefined, ALLOWED)), 'METHOD_NOT_ALLOWED');
        assert.equal(reason(await callAs(x, 'cert.list', { token }, 'https://unknown.example.org')), 'NOT_PAIRED');
        for (const forged of ['null', '', 'HTTPS://PORTAL.EXAMPLE.CN', `${ALLOWED}/`, EXT, 'file://'])
            assert.equal(reason(await callAs(x, 'cert.list', { token }, forged)), 'ORIGIN_NOT_ALLOWED', forged);
        x.close();
        // Over WSS the member is refused too: only the extension's session may name an origin.
        const w = await wssAs(d, ALLOWED);
        assert.equal(reason(await callAs(w, 'system.hello', undefined, PAGE)), 'INVALID_REQUEST');
        w.close();
    });

    await t.test('the audit log: who did what with which key and certificate, never a PIN or the data', async () => {
        const r = ctl(d, ['audit', '--json', '-n', '1000']);
        assert.equal(r.code, 0, r.stderr);
        const entries = JSON.parse(r.stdout).entries;
        const signs = entries.filter((e) => e.method === 'sign' && e.origin === PAGE);
        assert.ok(signs.some((e) => e.result === 'OK' && e.token === token && e.endpoint === 'wss'), JSON.stringify(signs));
        assert.ok(signs.some((e) => e.result === 'CONSENT_DENIED'));
        const okSigns = signs.filter((e) => e.result === 'OK');
        assert.ok(okSigns.every((e) => typeof e.cert_serial === 'string' && e.cert_serial.length > 0), JSON.stringify(okSigns));
        assert.ok(entries.some((e) => e.method === 'system.pair' && e.origin === PAGE && e.result === 'OK'));
        assert.ok(entries.some((e) => e.method === 'origins.revoke' && e.endpoint === 'unix'));
        assert.ok(entries.some((e) => e.method === 'cert.list' && e.result === 'NOT_PAIRED'));
        const text = ctl(d, ['audit', '-n', '5']);
        assert.equal(text.code, 0, text.stderr);
        assert.equal(text.stdout.trim().split('\n').length, 5);
        const raw = fs.readdirSync(d.stateDir).filter((f) => f.startsWith('audit.log'))
            .map((f) => fs.readFileSync(path.join(d.stateDir, f), 'utf8')).join('');
        assert.ok(!raw.includes(PIN), 'no PIN in the audit log');
        assert.ok(!raw.includes(signParams.data), 'no data in the audit log');
        assert.equal(fs.statSync(path.join(d.stateDir, 'audit.log')).mode & 0o777, 0o600);
    });
    c.close();
});

test('security: the administrator turns pairing off; the user cannot turn it on', async (t) => {
    const d = new Ukeyd(t, { origins: [ALLOWED], config: { pairing: true } });
    d.writeSystemConfig({ pairing: false });
    await d.start();
    await assert.rejects(WssClient.open(d.port, { origin: PAGE, ca: d.ca }), /403/);
    const w = await WssClient.open(d.port, { origin: ALLOWED, ca: d.ca });
    w.close();
    assert.match(d.log, /refused: endpoint=wss origin="https:\/\/pair\.example\.com" reason=ORIGIN_NOT_ALLOWED/);
});
