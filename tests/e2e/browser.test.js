'use strict';
// End to end in a real browser: Debian's headless Chromium (through playwright-core, never a
// downloaded browser) with HOME in a temporary directory whose NSS database trusts the CA that
// `ukeyd tls-setup` made. A page served from an allowed origin opens wss://127.0.0.1:PORT and gets
// system.hello; pages from other origins are refused before the upgrade, and the daemon logs it.
// Screenshots of the pages are left in the build directory (UK_ARTIFACT_DIR).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Ukeyd } = require('../daemon/lib/ukeyd');
const { browserMissing, serve, trustDaemonCa, launchPersistent, screenshot } = require('./lib/browser');

const missing = browserMissing();

// The test page: opens the WebSocket given in ?wss=, calls system.hello, shows and records what
// happened in window.ukeydResult (a promise the test awaits: no timers anywhere).
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ukeyd e2e</title>
<style>body{font:14px monospace;margin:1em}h1{font-size:16px}pre{white-space:pre-wrap}</style></head>
<body><h1>ukeyd e2e: <span id="origin"></span></h1><p id="state">connecting</p><pre id="out"></pre>
<script>
document.getElementById('origin').textContent = location.origin;
const url = new URLSearchParams(location.search).get('wss');
const show = (state, text) => {
    document.getElementById('state').textContent = state;
    if (text !== undefined) document.getElementById('out').textContent = text;
};
window.ukeydResult = new Promise((resolve) => {
    const events = [];
    let answered = false;
    const ws = new WebSocket(url);
    ws.onopen = () => {
        events.push('open');
        ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'system.hello', id: 1 }));
    };
    ws.onmessage = (m) => {
        events.push('message');
        const answer = JSON.parse(m.data);
        answered = true;
        show('answered', JSON.stringify(answer, null, 2));
        resolve({ events, answer });
        ws.close();
    };
    ws.onerror = () => events.push('error');
    ws.onclose = (e) => {
        events.push('close:' + e.code);
        if (!answered) show('refused: closed without opening (' + e.code + ')');
        resolve({ events, answer: null });
    };
});
</script></body></html>
`;

function handler(req, res) {
    if (req.url.startsWith('/page')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(PAGE);
    } else {
        res.writeHead(404);
        res.end();
    }
}

test('Chromium: a page on an allowed origin gets system.hello over WSS; pages on other origins are refused', { skip: missing }, async (t) => {
    const pagePort = await serve(t, handler);
    const otherPort = await serve(t, handler, { avoid: [pagePort] });
    const allowed = `http://127.0.0.1:${pagePort}`;

    // The daemon's HOME holds the NSS database; tls-setup puts the CA in it (trust C,,).
    // Pairing off: the allowlist alone decides (pairable origins in a browser: attacks.test.js).
    const d = new Ukeyd(t, { origins: [allowed], config: { pairing: false } });
    d.port = 1;
    d.writeConfig();
    const setup = trustDaemonCa(d);
    assert.match(setup.stdout, /NSS database: added/);
    await d.start();

    const browser = await launchPersistent(t, path.join(d.dir, 'chromium-profile'), {
        // Chromium reads the NSS db from this HOME; nothing of the real user's is touched.
        env: d.env,
        viewport: { width: 800, height: 600 },
    });
    const wss = `wss://127.0.0.1:${d.port}`;

    await t.test('allowed origin', async () => {
        const page = await browser.newPage();
        await page.goto(`${allowed}/page?wss=${encodeURIComponent(wss)}`);
        const r = await page.evaluate(() => window.ukeydResult);
        await screenshot(page, 'e2e-allowed-origin.png');
        assert.equal(r.events[0], 'open', JSON.stringify(r));
        assert.ok(r.answer && r.answer.result, JSON.stringify(r));
        assert.equal(r.answer.id, 1);
        assert.equal(r.answer.result.endpoint, 'wss');
        assert.equal(r.answer.result.origin, allowed, 'the origin the daemon saw is the page origin');
        assert.equal(r.answer.result.wss_port, d.port);
        assert.equal(r.answer.result.name, 'ukeyd');
        await page.close();
    });

    for (const [what, origin] of [
        ['another port', `http://127.0.0.1:${otherPort}`],
        ['another host name for the same server', `http://localhost:${pagePort}`],
    ]) {
        await t.test(`refused: ${what} (${origin})`, async () => {
            const before = d.count(/refused: endpoint=wss/);
            const page = await browser.newPage();
            await page.goto(`${origin}/page?wss=${encodeURIComponent(wss)}`);
            const r = await page.evaluate(() => window.ukeydResult);
            await screenshot(page, `e2e-refused-${what.replace(/\W+/g, '-')}.png`);
            assert.equal(r.answer, null, JSON.stringify(r));
            assert.ok(!r.events.includes('open'), `never opened: ${JSON.stringify(r)}`);
            assert.ok(r.events.includes('error'), JSON.stringify(r));
            assert.equal(r.events[r.events.length - 1], 'close:1006');
            const line = (await d.waitCount(/refused: endpoint=wss/, before + 1))[before];
            assert.ok(line.includes(`origin="${origin}"`), line);
            assert.match(line, /reason=ORIGIN_NOT_ALLOWED/);
            await page.close();
        });
    }

    await browser.close();
    await d.stop();
});
