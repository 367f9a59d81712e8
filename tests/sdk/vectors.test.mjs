// The protocol vectors (protocol/vectors/*.json), replayed through the SDK: each expected
// response is fed to the SDK's response handling as the answer to a call, and the SDK must turn
// it into the same reason, code and retriability the C side pinned (or return the result).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ukey, UkeyError, knownReasons } from '../../extension/sdk/ukey.js';
import { FakeTransport } from './fake.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = path.join(ROOT, 'protocol/vectors');
const files = fs.readdirSync(DIR).filter((f) => /^\d{3}-.*\.json$/.test(f)).sort();

test('there are vectors to replay', () => assert.ok(files.length >= 50, `${files.length} vectors`));

for (const f of files) {
    const v = JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8'));
    test(`vector ${f}: ${v.description}`, async () => {
        const t = new FakeTransport();
        const ukey = new Ukey(t, { lang: 'en' });
        const p = ukey.call('system.hello');
        const req = await t.next();
        // The vector's answer, addressed to the SDK's request (a refused message may carry a
        // null id, which a real client could not match: the SDK maps by id, so we give it its own).
        t.answer(Object.assign({}, v.response, { id: req.id }));
        if (v.response.error) {
            const e = await p.then(() => assert.fail('resolved'), (e) => e);
            assert.ok(e instanceof UkeyError);
            const d = v.response.error.data || {};
            assert.ok(knownReasons().includes(d.reason), `the SDK knows ${d.reason}`);
            assert.equal(e.reason, d.reason);
            assert.equal(e.code, v.response.error.code);
            if ('retriable' in d) assert.equal(e.retriable, d.retriable);
            for (const [k, val] of Object.entries(d)) if (k !== 'message') assert.deepEqual(e.data[k], val, `data.${k}`);
            assert.ok(e.messages.en && e.messages['zh-CN'], 'messages in both languages, from the SDK table when the daemon gave none');
            assert.equal(e.message, e.messages.en);
        } else {
            assert.deepEqual(await p, v.response.result);
        }
    });
}
