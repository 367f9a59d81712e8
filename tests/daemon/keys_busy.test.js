'use strict';
// Another program holding the card exclusively (`uk-pcsc hold READER --exclusive`): a cold
// cert.list and a sign answer CARD_BUSY naming the reader after the daemon's bounded retry, the
// daemon answers other requests meanwhile, and once the holder lets go everything works; a hold
// that ends during the retry is waited out.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, PIN } = require('./lib/rig');

const skip = rigUnavailable() || false;

// Generous bound on the daemon's retry (busy_timeout_ms: 5 s by default).
const BOUND_MS = 20000;

test('card held exclusively by another program: CARD_BUSY, then it works', { skip, timeout: 90000 }, async (t) => {
    const rig = await new Rig(t).up();
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const id = tok.id;
    const signParams = { token: id, key: '9c', algorithm: 'ECDSA-SHA256', data: crypto.randomBytes(32).toString('base64'), pin: PIN };

    // A call that must answer CARD_BUSY naming the reader; the loop stays free meanwhile.
    async function busy(method, params) {
        const t0 = performance.now();
        const pending = c.call(method, params);
        let answered = false;
        pending.then(() => (answered = true));
        const hello = await c.call('system.hello');
        assert.ok(hello.result);
        assert.equal(answered, false, `system.hello is answered while ${method} waits for the card`);
        assert.equal((await c.ok('token.list')).tokens[0].id, id, 'token.list still lists the token');
        const r = await pending;
        const ms = performance.now() - t0;
        console.log(`# ${method} while the card is held: ${r.error && r.error.data.reason} after ${ms.toFixed(0)} ms`);
        assert.equal(r.error && r.error.data.reason, 'CARD_BUSY', JSON.stringify(r));
        assert.equal(r.error.data.retriable, true);
        assert.equal(r.error.data.reader, rig.reader, `the error names the reader: ${JSON.stringify(r.error.data)}`);
        assert.ok(ms <= BOUND_MS, `answered within ${BOUND_MS} ms`);
    }

    await t.test('cold cert.list and sign during an exclusive hold: CARD_BUSY with the reader; after it, both work', async () => {
        const h = await rig.hold('exclusive', 60);
        await busy('cert.list', { token: id });
        await busy('sign', signParams);
        assert.match(d.log, new RegExp(`reader '${rig.reader}' is held exclusively by another program`));
        h.proc.kill('SIGTERM');
        await h.done;
        const { certificates } = await c.ok('cert.list', { token: id });
        assert.deepEqual(certificates.map((e) => e.key), ['9a', '9c']);
        assert.ok((await c.ok('sign', signParams)).signature);
        assert.equal((await c.ok('token.list')).tokens[0].pin_retries, 3);
    });

    await t.test('a hold that ends during the retry: the sign waits and succeeds', async () => {
        const h = await rig.hold('exclusive', 2);
        const t0 = performance.now();
        const r = await c.call('sign', signParams);
        const ms = performance.now() - t0;
        console.log(`# sign during a 2 s hold: ${r.result ? 'signed' : r.error.data.reason} after ${ms.toFixed(0)} ms`);
        assert.ok(r.result, JSON.stringify(r));
        assert.equal(await h.done, 0);
    });

    c.close();
    await d.stop();
});
