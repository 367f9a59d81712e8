'use strict';
// What every browser test (tests/e2e/*.test.js) sets up the same way: Debian's Chromium and
// certutil, a static page server on 127.0.0.1, an NSS database in a Ukeyd's HOME that trusts the
// CA `ukeyd tls-setup` makes, Chromium's launch options, the native host manifest and the
// extension's service worker, and where screenshots go. The pages themselves and every check stay
// in the test files.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const { BIN, ROOT, run, freePort } = require('../../daemon/lib/ukeyd');

const CHROMIUM = process.env.UK_CHROMIUM || '/usr/bin/chromium';
const CERTUTIL = ['/usr/bin/certutil', '/bin/certutil'].find((p) => fs.existsSync(p));
// The build directory when run by ctest (screenshots are kept next to the test results).
const ARTIFACTS = process.env.UK_ARTIFACT_DIR || os.tmpdir();
const EXT_DIR = path.join(ROOT, 'extension');
const EXT_ID = 'babjdnpjleochckddofofbcihacigmfc'; // extension/manifest.json's key
// The switches of every launch: headless in a container (no sandbox, no GPU) and no traffic or
// first-run work of its own that could slow a test or reach the network.
const BASE_ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Why the browser tests cannot run here (a skip reason), or false.
function browserMissing() {
    return !fs.existsSync(CHROMIUM) ? `${CHROMIUM} missing` : !CERTUTIL ? 'certutil missing' : false;
}

// Serves handler(req, res) over http (or https with tlsOpts {key, cert}) on a free port of
// 127.0.0.1 other than those in avoid, closed when t ends; resolves the port. Retries on
// EADDRINUSE: freePort only says the port was free a moment ago.
async function serve(t, handler, { tls: tlsOpts, avoid = [] } = {}) {
    for (;;) {
        const port = await freePort(avoid);
        const server = tlsOpts ? https.createServer(tlsOpts, handler) : http.createServer(handler);
        try {
            await new Promise((resolve, reject) => {
                server.once('error', reject);
                server.listen({ host: '127.0.0.1', port }, resolve);
            });
            t.after(() => server.close());
            return port;
        } catch (e) {
            if (e.code !== 'EADDRINUSE') throw e;
        }
    }
}

// Makes the NSS database Chromium reads in d's HOME, adds each of cas ({name, pem}: trusted as
// TLS CAs, C,,) and runs `ukeyd tls-setup` for d's config, which adds the daemon's CA to it. d's
// config must be written first. Returns the tls-setup run ({code, stdout, stderr}).
function trustDaemonCa(d, { cas = [] } = {}) {
    const nssdb = path.join(d.env.HOME, '.pki/nssdb');
    fs.mkdirSync(nssdb, { recursive: true });
    assert.equal(run(CERTUTIL, ['-N', '-d', `sql:${nssdb}`, '--empty-password']).code, 0);
    for (const ca of cas) assert.equal(run(CERTUTIL, ['-A', '-d', `sql:${nssdb}`, '-n', ca.name, '-t', 'C,,', '-i', ca.pem]).code, 0);
    const setup = run(BIN.ukeyd, ['tls-setup', '--config', d.configPath], { env: d.env });
    assert.equal(setup.code, 0, setup.stderr);
    return setup;
}

// Options for chromium.launch / launchPersistentContext: BASE_ARGS then args, env with DISPLAY empty
// (headless must never reach the developer's X server), and any other playwright option as given.
function launchOptions({ args = [], env, ...rest } = {}) {
    return { executablePath: CHROMIUM, headless: true, args: [...BASE_ARGS, ...args], env: { ...env, DISPLAY: '' }, ...rest };
}

// chromium.launchPersistentContext(userDir, launchOptions(opts)), closed when t ends.
async function launchPersistent(t, userDir, opts) {
    const { chromium } = require('playwright-core');
    const ctx = await chromium.launchPersistentContext(userDir, launchOptions(opts));
    t.after(() => ctx.close().catch(() => {}));
    return ctx;
}

// chromium.launch(launchOptions(opts)), closed when t ends.
async function launchBrowser(t, opts) {
    const { chromium } = require('playwright-core');
    const browser = await chromium.launch(launchOptions(opts));
    t.after(() => browser.close().catch(() => {}));
    return browser;
}

// Writes io.ukeyd.host.json into the profile userDir (where Chromium looks for a user's native
// hosts), pointing at the executable wrapper.
function installHost(userDir, wrapper) {
    const dir = path.join(userDir, 'NativeMessagingHosts');
    fs.mkdirSync(dir, { recursive: true });
    const template = fs.readFileSync(path.join(EXT_DIR, 'native-hosts/io.ukeyd.host.json.in'), 'utf8');
    fs.writeFileSync(path.join(dir, 'io.ukeyd.host.json'), template.replace('@UKEYD_NM@', wrapper));
}

// The service worker of extension id in ctx: the running one, or the next to start (15 s).
async function serviceWorker(ctx, id) {
    const mine = (w) => w.url().startsWith(`chrome-extension://${id}/`);
    return ctx.serviceWorkers().find(mine) || ctx.waitForEvent('serviceworker', { predicate: mine, timeout: 15000 });
}

// A screenshot of page as dir/name (dir: ARTIFACTS); opts go to page.screenshot. Resolves the path.
async function screenshot(page, name, { dir = ARTIFACTS, ...opts } = {}) {
    const file = path.join(dir, name);
    await page.screenshot({ path: file, ...opts });
    return file;
}

// An HTTP handler for serve(): the test page html at /page..., the page SDK's ukey.js, sof.js and
// gm.js under /sdk/, 404 otherwise.
function sdkPageHandler(html) {
    return (req, res) => {
        if (req.url.startsWith('/page')) {
            res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
            res.end(html);
        } else if (['/sdk/ukey.js', '/sdk/sof.js', '/sdk/gm.js'].includes(req.url)) {
            res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
            res.end(fs.readFileSync(path.join(EXT_DIR, 'sdk', path.basename(req.url))));
        } else {
            res.writeHead(404);
            res.end();
        }
    };
}

module.exports = {
    sdkPageHandler,
    CHROMIUM,
    CERTUTIL,
    ARTIFACTS,
    EXT_DIR,
    EXT_ID,
    BASE_ARGS,
    browserMissing,
    serve,
    trustDaemonCa,
    launchOptions,
    launchPersistent,
    launchBrowser,
    installHost,
    serviceWorker,
    screenshot,
};
