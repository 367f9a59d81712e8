// The SDK's reason table is generated from daemon/util/errors.def; this fails when it is stale
// (run node extension/sdk/gen-reasons.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { ERRORS_DEF, SDK, parseErrorsDef, regenerate } from '../../extension/sdk/gen-reasons.mjs';
import { errorFromRpc, knownReasons } from '../../extension/sdk/ukey.js';

test('extension/sdk/ukey.js has the reasons of daemon/util/errors.def', () => {
    const sdk = fs.readFileSync(SDK, 'utf8');
    assert.equal(regenerate(sdk, fs.readFileSync(ERRORS_DEF, 'utf8')), sdk, 'run node extension/sdk/gen-reasons.mjs');
});

test('every daemon reason keeps its code, retriability and messages through the SDK', () => {
    const rows = parseErrorsDef(fs.readFileSync(ERRORS_DEF, 'utf8'));
    assert.ok(rows.length >= 50);
    for (const r of rows) {
        assert.ok(knownReasons().includes(r.name));
        // An error that carries only the reason: the SDK fills in the rest from its table.
        const e = errorFromRpc({ code: r.code, message: r.en, data: { reason: r.name } }, 'zh-CN');
        assert.equal(e.reason, r.name);
        assert.equal(e.code, r.code);
        assert.equal(e.retriable, r.retriable, r.name);
        if (r.name !== 'PIN_INCORRECT' && r.name !== 'NOT_YET_VALID' && r.name !== 'CERT_EXPIRED') {
            assert.equal(e.messages.en, r.en);
            assert.equal(e.message, r.zh);
        }
    }
});
