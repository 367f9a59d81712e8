'use strict';
// The WSS gate also checks who is connecting: Origin and Host can be forged by any local
// program, the owner of the client socket cannot. A client running as another user is refused
// with 403 before the upgrade, even with an allowed Origin and the right Host; the same client
// as our own user is upgraded (so the headers were not what refused it).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const { Ukeyd } = require('./lib/ukeyd');

const PORTAL = 'https://portal.example.cn';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
const isRoot = process.getuid && process.getuid() === 0;

// A raw upgrade with an allowed Origin; prints the HTTP status line's code.
const CLIENT = `
const tls = require('node:tls');
const port = Number(process.argv[1]);
const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
    s.write('GET / HTTP/1.1\\r\\nHost: 127.0.0.1:' + port + '\\r\\nOrigin: ${PORTAL}\\r\\n' +
        'Upgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Version: 13\\r\\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n');
});
let got = '';
s.on('data', (d) => { got += d; const m = got.match(/^HTTP\\/1\\.[01] (\\d{3})/); if (m) { console.log(m[1]); s.destroy(); } });
s.on('error', (e) => { console.log('error ' + e.code); });
`;

function upgradeStatus(port, asNobody) {
    const argv = ['-e', CLIENT, String(port)];
    const [file, args] = asNobody
        ? [SETPRIV, ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, ...argv]]
        : [process.execPath, argv];
    return new Promise((resolve, reject) => {
        const p = spawn(file, args, { env: { PATH: process.env.PATH, HOME: '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`client exit ${code}: ${err}`))));
    });
}

test('a WSS client running as another user is refused before the upgrade, with an allowed Origin and Host',
    { skip: !isRoot || !SETPRIV ? 'needs root and setpriv to run a client as nobody' : false }, async (t) => {
        const d = await new Ukeyd(t, { origins: [PORTAL] }).start();
        assert.equal(await upgradeStatus(d.port, true), '403');
        await d.waitLog(/refused: endpoint=wss .*the client runs as another user/);
        assert.equal(await upgradeStatus(d.port, false), '101');
        await d.stop();
    });
