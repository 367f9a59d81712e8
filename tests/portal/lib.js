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

// A key (rsa|ec) in dir/name.key.
function newKey(dir, name, alg = 'rsa') {
    const key = path.join(dir, `${name}.key`);
    if (alg === 'rsa') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key]);
    else openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
    return key;
}

// A PKCS#10 request for key with subj (openssl -subj form, UTF-8); returns the PEM.
function csr(dir, key, subj = '/C=CN/O=NHSA/CN=张三') {
    const out = path.join(dir, `req-${Math.random().toString(36).slice(2)}.csr`);
    openssl(['req', '-new', '-key', key, '-subj', subj, '-utf8', '-out', out]);
    return fs.readFileSync(out, 'utf8');
}

// A certificate for key, signed by the CA in caDir (ca.pem/ca.key), valid from `from` days to
// `days` days relative to now (openssl x509 cannot go back in time: uses `openssl ca` dates).
function certFor(dir, caDir, key, { subj = '/C=CN/O=NHSA/CN=张三', fromDays = -30, toDays = 20 } = {}) {
    const { asn1Time } = require(path.join(PORTAL, 'ca.js'));
    const req = path.join(dir, `c-${Math.random().toString(36).slice(2)}.csr`);
    fs.writeFileSync(req, csr(dir, key, subj));
    const out = `${req}.pem`;
    openssl([
        'ca', '-batch', '-config', path.join(caDir, 'db', 'ca.cnf'), '-in', req, '-out', out, '-notext', '-utf8', '-preserveDN',
        '-extensions', 'ext_9a', '-startdate', asn1Time(Date.now() + fromDays * 86400000), '-enddate', asn1Time(Date.now() + toDays * 86400000),
    ]);
    return fs.readFileSync(out, 'utf8');
}

module.exports = { PORTAL, tempDir, openssl, newKey, csr, certFor };
