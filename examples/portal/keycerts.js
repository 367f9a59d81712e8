#!/usr/bin/env node
'use strict';
// The 9A certificate of every key ukeyd sees, written as PEM files, for `server.js --enroll`:
//
//   node examples/portal/keycerts.js OUTDIR UKEYCTL [UKEYCTL ARGS...]
//
// runs `UKEYCTL ARGS call token.list` and `... call cert.list {"token":ID,"der":true}` and prints
// one line per certificate: `--enroll` and `SERIAL:9a:OUTDIR/SERIAL.pem` (two lines, for mapfile).
// scripts/run uses it to put the demo key's certificate on record, as a CA knows what it issued.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { derToPem } = require('./der');

const [outDir, ctl, ...ctlArgs] = process.argv.slice(2);
if (!outDir || !ctl) {
    console.error('usage: keycerts.js OUTDIR UKEYCTL [ARGS...]');
    process.exit(2);
}
const call = (method, params) => {
    const args = [...ctlArgs, 'call', method];
    if (params) args.push(JSON.stringify(params));
    return JSON.parse(execFileSync(ctl, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
};
fs.mkdirSync(outDir, { recursive: true });
let tokens = [];
try {
    tokens = call('token.list').tokens || [];
} catch {
    process.exit(0);
}
for (const t of tokens.filter((x) => x.present && x.id && x.serial)) {
    let certs = [];
    try {
        certs = call('cert.list', { token: t.id, der: true }).certificates || [];
    } catch {
        continue;
    }
    const e = certs.find((c) => c.key === '9a' && c.der);
    if (!e) continue;
    const file = path.join(outDir, `${String(t.serial).replace(/[^0-9A-Za-z]/g, '_')}.pem`);
    fs.writeFileSync(file, derToPem(Buffer.from(e.der, 'base64'), 'CERTIFICATE'));
    console.log('--enroll');
    console.log(`${t.serial}:9a:${file}`);
}
