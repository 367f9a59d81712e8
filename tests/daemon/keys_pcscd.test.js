'use strict';
// pcscd going away and coming back while ukeyd keeps running. scripts/rig has no "restart pcscd"
// command and its supervisor stops the whole rig when pcscd dies, so a restart is: pcscd killed
// (SIGKILL, as in a crash; or the rig's orderly down = SIGTERM), then `rig up` with the same DIR —
// from ukeyd's side the same socket path, a new pcscd behind it (DIR/run itself is removed and
// made again by `up`). token.list answers NO_SERVICE meanwhile and works again afterwards
// without restarting ukeyd, whose log says it recovered.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Rig, rigUnavailable, startUkeyd, KeysClient, waitToken, PIN } = require('./lib/rig');

const skip = rigUnavailable() || false;

test('pcscd killed and restarted: ukeyd recovers by itself', { skip, timeout: 90000 }, async (t) => {
    const rig = await new Rig(t).up();
    const d = await startUkeyd(t, rig);
    const c = await KeysClient.unix(d);
    const tok = await waitToken(c, rig.reader);
    const id = tok.id;
    assert.deepEqual((await c.ok('cert.list', { token: id })).certificates.map((e) => e.key), ['9a', '9c']);
    const signParams = { token: id, key: '9a', algorithm: 'RSA-PSS-SHA256', data: crypto.randomBytes(32).toString('base64'), pin: PIN };

    for (const [round, how] of [
        [1, 'SIGKILL'],
        [2, 'rig down (SIGTERM)'],
    ]) {
        await t.test(`round ${round}: pcscd stopped by ${how}, then a new one: token.list, cert.list and sign work again`, async () => {
            const backBefore = d.count(/pcscd is back/);
            if (how === 'SIGKILL') {
                process.kill(rig.pid('pcscd'), 'SIGKILL');
                await c.event((m) => m.method === 'token.removed' && m.params.token.id === id, 10000, 'token.removed');
                // The supervisor saw pcscd die and stopped the card: down reports the kill (3).
                await rig.down({ expect: 3 });
            } else {
                await rig.down();
                await c.event((m) => m.method === 'token.removed' && m.params.token.id === id, 10000, 'token.removed');
            }
            const r = await c.call('token.list');
            assert.equal(r.error && r.error.data.reason, 'NO_SERVICE', JSON.stringify(r));
            const l = await c.call('cert.list', { token: id });
            assert.ok(l.error, `cert.list without pcscd: ${JSON.stringify(l)}`);
            console.log(`# without pcscd: token.list ${r.error.data.reason}, cert.list ${l.error.data.reason}`);
            assert.ok((await c.call('system.hello')).result, 'the daemon keeps serving');

            await rig.up();
            const t0 = performance.now();
            const ev = await c.event((m) => m.method === 'token.inserted' && m.params.token.reader === rig.reader, 15000, 'token.inserted after the restart');
            console.log(`# round ${round}: token back ${(performance.now() - t0).toFixed(0)} ms after rig up returned`);
            assert.equal(ev.params.token.id, id);
            await d.waitCount(/pcscd is back; scanning readers again/, backBefore + 1);
            const { tokens } = await c.ok('token.list');
            assert.equal(tokens.find((x) => x.reader === rig.reader).id, id);
            assert.deepEqual((await c.ok('cert.list', { token: id })).certificates.map((e) => e.key), ['9a', '9c']);
            assert.ok((await c.ok('sign', signParams)).signature);
        });
    }

    c.close();
    await d.stop();
});
