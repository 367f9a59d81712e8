'use strict';
// `ukeyd tls-setup` and `ukeyd tls-remove` against a real NSS database in a temporary HOME: the
// files and their modes, trust added with certutil (checked with certutil -L), the CA keyless and
// name-constrained, idempotence, and removal. Then a daemon serves WSS with that certificate.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Ukeyd, WssClient, BIN, run } = require('./lib/ukeyd');

const CERTUTIL = ['/usr/bin/certutil', '/bin/certutil'].find((p) => fs.existsSync(p));
const OPENSSL = ['/usr/bin/openssl', '/bin/openssl'].find((p) => fs.existsSync(p));
const ORIGIN = 'https://portal.example.cn';

function nssList(home) {
    const r = run(CERTUTIL, ['-L', '-d', `sql:${path.join(home, '.pki/nssdb')}`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
}

// Our nickname's line in `certutil -L`: "ukeyd local CA (HOST)   C,,".
function ourEntry(list) {
    return list.split('\n').find((l) => l.startsWith('ukeyd local CA'));
}

test('tls-setup makes the CA and server certificate, trusts the CA in the NSS db; tls-remove undoes it', { skip: !CERTUTIL || !OPENSSL ? 'certutil or openssl missing' : false }, async (t) => {
    const d = new Ukeyd(t, { origins: [ORIGIN] });
    d.port = 1;
    d.writeConfig();
    const home = d.env.HOME;
    const nssdb = path.join(home, '.pki/nssdb');
    fs.mkdirSync(nssdb, { recursive: true });
    const init = run(CERTUTIL, ['-N', '-d', `sql:${nssdb}`, '--empty-password']);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(ourEntry(nssList(home)), undefined);

    const setup = run(BIN.ukeyd, ['tls-setup', '--config', d.configPath], { env: d.env });
    assert.equal(setup.code, 0, setup.stderr);
    assert.match(setup.stdout, /^created /m);
    assert.match(setup.stdout, /NSS database: added/);
    d.checkLog(setup.stderr);

    // Files and modes.
    const tlsDir = path.join(d.stateDir, 'tls');
    assert.equal(fs.statSync(tlsDir).mode & 0o777, 0o700);
    for (const f of ['ca.pem', 'server.pem', 'server.key']) assert.ok(fs.statSync(path.join(tlsDir, f)).isFile(), f);
    assert.equal(fs.statSync(path.join(tlsDir, 'server.key')).mode & 0o777, 0o600);
    // The only private key on disk is the server's, and it belongs to server.pem.
    for (const f of fs.readdirSync(tlsDir))
        if (f !== 'server.key') assert.doesNotMatch(fs.readFileSync(path.join(tlsDir, f), 'latin1'), /PRIVATE KEY/, f);
    const ca = new crypto.X509Certificate(fs.readFileSync(path.join(tlsDir, 'ca.pem')));
    const server = new crypto.X509Certificate(fs.readFileSync(path.join(tlsDir, 'server.pem')));
    const key = crypto.createPrivateKey(fs.readFileSync(path.join(tlsDir, 'server.key')));
    assert.ok(server.checkPrivateKey(key));
    assert.ok(!ca.checkPrivateKey(key));
    assert.ok(server.verify(ca.publicKey), 'the server certificate is issued by the CA');
    assert.ok(ca.ca && !server.ca);
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.equal(server.checkHost('evil.example'), undefined);
    const days = (Date.parse(server.validTo) - Date.now()) / 86400000;
    assert.ok(days <= 825, `server certificate valid ${days} days`);
    const nc = run(OPENSSL, ['x509', '-noout', '-ext', 'nameConstraints', '-in', path.join(tlsDir, 'ca.pem')]);
    assert.equal(nc.code, 0, nc.stderr);
    assert.match(nc.stdout, /critical/);
    assert.match(nc.stdout, /Permitted:[^]*IP:127\.0\.0\.1\/255\.255\.255\.255[^]*DNS:localhost/);

    // Trusted for TLS servers only, under our nickname.
    const entry = ourEntry(nssList(home));
    assert.ok(entry, nssList(home));
    assert.match(entry, new RegExp(`^ukeyd local CA \\(${os.hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)\\s+C,,\\s*$`));

    // Again: nothing to do.
    const again = run(BIN.ukeyd, ['tls-setup', '--config', d.configPath], { env: d.env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^kept /m);
    assert.match(again.stdout, /NSS database: present/);
    assert.equal(fs.readFileSync(path.join(tlsDir, 'ca.pem'), 'utf8'), ca.toString());

    // A daemon on this state dir serves WSS with this certificate, trusted through ca.pem alone.
    const live = await new Ukeyd(t, { origins: [ORIGIN], dir: d.dir }).start();
    assert.match(live.log, /tls|wss/);
    assert.doesNotMatch(live.log, /made a new local CA/);
    const c = await WssClient.open(live.port, { origin: ORIGIN, ca: fs.readFileSync(path.join(tlsDir, 'ca.pem')) });
    assert.equal((await c.call('system.hello')).result.endpoint, 'wss');
    await c.close();
    await live.stop();

    const remove = run(BIN.ukeyd, ['tls-remove', '--config', d.configPath], { env: d.env });
    assert.equal(remove.code, 0, remove.stderr);
    d.checkLog(remove.stderr);
    assert.equal(ourEntry(nssList(home)), undefined, 'the CA is gone from the NSS db');
    assert.equal(fs.existsSync(path.join(tlsDir, 'server.key')), false);
    assert.equal(fs.existsSync(path.join(tlsDir, 'ca.pem')), false);
    // Removing again is not an error.
    assert.equal(run(BIN.ukeyd, ['tls-remove', '--config', d.configPath], { env: d.env }).code, 0);
});

test('tls-setup without an NSS db makes the files and says so; the daemon never creates a db', async (t) => {
    const d = new Ukeyd(t);
    d.port = 1;
    d.writeConfig();
    const setup = run(BIN.ukeyd, ['tls-setup', '--config', d.configPath], { env: d.env });
    assert.equal(setup.code, 0, setup.stderr);
    assert.match(setup.stdout, /NSS database: no-db/);
    assert.equal(fs.existsSync(path.join(d.env.HOME, '.pki')), false);
    assert.equal(fs.existsSync(path.join(d.env.XDG_DATA_HOME, 'pki')), false);
    assert.equal(fs.statSync(path.join(d.stateDir, 'tls/server.key')).mode & 0o777, 0o600);
});
