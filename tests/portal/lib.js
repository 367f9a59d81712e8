'use strict';
// Helpers of the portal unit tests: temp dirs, the openssl command line, a "card" (a key pair in
// a file) with a certificate from the portal's CA, and requests signed by it.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PORTAL = path.resolve(__dirname, '..', '..', 'examples', 'portal');

function tempDir(t) {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ukp-'));
    if (t) t.after(() => fs.rmSync(d, { recursive: true, force: true }));
    return d;
}

function openssl(args) {
    return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// GM/T 0009's default SM2 distinguishing ID (what keys and Chinese CAs use).
const SM2_ID = '1234567812345678';

// A key (rsa|ec|sm2) in dir/name.key.
function newKey(dir, name, alg = 'rsa') {
    const key = path.join(dir, `${name}.key`);
    if (alg === 'rsa') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
    else if (alg === 'sm2') openssl(['genpkey', '-algorithm', 'SM2', '-out', key]);
    else openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
    return key;
}

// A PKCS#10 request for key with subj (openssl -subj form, UTF-8); returns the PEM. An SM2 key
// signs with SM3 and the ID `sm2Id` (default the standard one; null: OpenSSL's empty default).
function csr(dir, key, subj = '/C=CN/O=NHSA/CN=张三', { sm2Id } = {}) {
    const out = path.join(dir, `req-${Math.random().toString(36).slice(2)}.csr`);
    const sm2 = sm2Id !== undefined ? ['-sm3', ...(sm2Id === null ? [] : ['-sigopt', `distid:${sm2Id}`])] : [];
    openssl(['req', '-new', '-key', key, '-subj', subj, '-utf8', ...sm2, '-out', out]);
    return fs.readFileSync(out, 'utf8');
}

// An SM2 request made the way the brief of the SKF driver says a key's request looks:
// `openssl req -new -key KEY -sm3 -sigopt distid:1234567812345678`.
function sm2Csr(dir, key, subj, id = SM2_ID) {
    return csr(dir, key, subj, { sm2Id: id });
}

// A certificate for key, signed by the CA in caDir (ca.pem/ca.key), valid from `from` days to
// `days` days relative to now (openssl x509 cannot go back in time: uses `openssl ca` dates).
// sm2: by the SM2 CA (caDir/sm2) with its signing profile and the standard ID.
function certFor(dir, caDir, key, { subj = '/C=CN/O=NHSA/CN=张三', fromDays = -30, toDays = 20, sm2 = false } = {}) {
    const { asn1Time } = require(path.join(PORTAL, 'ca.js'));
    const req = path.join(dir, `c-${Math.random().toString(36).slice(2)}.csr`);
    fs.writeFileSync(req, sm2 ? sm2Csr(dir, key, subj) : csr(dir, key, subj));
    const out = `${req}.pem`;
    const sm2Args = ['-md', 'sm3', '-sigopt', `distid:${SM2_ID}`, '-vfyopt', `distid:${SM2_ID}`];
    openssl([
        'ca', '-batch', '-config', path.join(caDir, ...(sm2 ? ['sm2'] : []), 'db', 'ca.cnf'), '-in', req, '-out', out, '-notext', '-utf8', '-preserveDN',
        '-extensions', sm2 ? 'ext_sm2_sign' : 'ext_9a', '-startdate', asn1Time(Date.now() + fromDays * 86400000), '-enddate', asn1Time(Date.now() + toDays * 86400000),
        ...(sm2 ? sm2Args : []),
    ]);
    return fs.readFileSync(out, 'utf8');
}

module.exports = { PORTAL, SM2_ID, tempDir, openssl, newKey, csr, sm2Csr, certFor };
