// sw.js — the extension's service worker (an ES module).
//
// One native-messaging port (chrome.runtime.connectNative('io.ukeyd.host') → ukeyd-nm → ukeyd)
// carries every page's requests. Each page request is forwarded with an id of ours and a
// top-level "origin": the page origin as Chrome reports it for the sender, never anything the
// page says. Requests without "origin" are the extension's own (popup, start-up). Answers go back
// to the page with its own id; notifications go to the pages that subscribed.
//
// Content scripts are registered for the origins of the managed policy (chrome.storage.managed
// "origins") and the daemon's allowed and paired origins (origins.list): at start-up, when the
// policy changes, and when the popup opens.
import './bridge.js';

const B = globalThis.ukeydBridge;
const HOST = 'io.ukeyd.host';
const SCRIPT_ID = 'ukeyd-bridge';
const PAGE_PORT = 'ukeyd-page';
const POPUP_PORT = 'ukeyd-popup';

let native = null; // the native port, opened on the first request
let nativeError = null; // an error the host sent without an id before it exited
let subscribed = null; // promise: this native session is subscribed to every event
let nextId = 1;
const pending = new Map(); // our id → {port, pageId, page, subscribe, resolve}
const pages = new Map(); // content-script port → {origin, events: Set|null}

/* ---------- the native port ---------- */

function openNative() {
    if (native) return native;
    nativeError = null;
    const p = chrome.runtime.connectNative(HOST);
    native = p;
    p.onMessage.addListener(onNativeMessage);
    p.onDisconnect.addListener(() => {
        const why = chrome.runtime.lastError && chrome.runtime.lastError.message;
        if (native === p) {
            native = null;
            subscribed = null;
        }
        // Every request in flight on this session fails; the next one reconnects.
        const err = nativeError;
        for (const [id, e] of [...pending]) {
            pending.delete(id);
            const reason = err && err.data && typeof err.data.reason === 'string' ? err.data.reason : 'DAEMON_UNAVAILABLE';
            const resp = err && reason !== 'DAEMON_UNAVAILABLE'
                ? { jsonrpc: '2.0', id: e.pageId, error: err }
                : B.errorResponse(e.pageId, 'DAEMON_UNAVAILABLE', (err && err.data && err.data.detail) || why || 'the native host exited');
            deliver(e, resp);
        }
    });
    return p;
}

function onNativeMessage(msg) {
    if (msg === null || typeof msg !== 'object') return;
    if ('id' in msg) {
        const e = pending.get(msg.id);
        if (!e) {
            // The host's own error before it exits (extension not allowed, ukeyd not startable).
            if (msg.id === null && msg.error) nativeError = msg.error;
            return;
        }
        pending.delete(msg.id);
        deliver(e, Object.assign({}, msg, { id: e.pageId }));
        return;
    }
    if (typeof msg.method !== 'string') return;
    if (msg.method === 'origins.changed') refreshContentScripts();
    const event = { jsonrpc: '2.0', method: msg.method };
    if ('params' in msg) event.params = msg.params;
    // A renewal belongs to the origin that prepared it (docs/protocol.md): its events go to that
    // origin's pages only, never to another site's.
    const owner = msg.method === 'renewal.changed' && msg.params && msg.params.renewal ? msg.params.renewal.origin : undefined;
    for (const [port, page] of pages) {
        if (owner !== undefined && owner !== page.origin) continue;
        if (page.events && page.events.has(msg.method)) safePost(port, { type: 'event', rpc: event });
    }
}

function deliver(e, resp) {
    if (e.resolve) return e.resolve(resp);
    if (e.subscribe && resp.result && e.page) {
        const requested = e.subscribe.events;
        const all = Array.isArray(resp.result.events) ? resp.result.events : [];
        e.page.events = new Set(Array.isArray(requested) ? requested.filter((n) => typeof n === 'string') : all);
        if (Array.isArray(requested)) resp = Object.assign({}, resp, { result: { events: [...e.page.events] } });
    }
    if (e.port && pages.has(e.port)) safePost(e.port, { type: 'response', rpc: resp });
}

function safePost(port, msg) {
    try {
        port.postMessage(msg);
    } catch {
        pages.delete(port);
    }
}

// Sends a request on the native port; entry says where the answer goes.
function send(method, params, origin, entry) {
    const id = nextId++;
    const req = { jsonrpc: '2.0', id, method };
    if (params !== undefined) req.params = params;
    if (origin !== undefined) req.origin = origin;
    pending.set(id, entry);
    try {
        openNative().postMessage(req);
    } catch (err) {
        pending.delete(id);
        deliver(entry, B.errorResponse(entry.pageId, 'DAEMON_UNAVAILABLE', String(err && err.message)));
    }
}

/** The extension's own call (no origin): resolves the whole response message. */
export function ownCall(method, params) {
    return new Promise((resolve) => send(method, params, undefined, { resolve, pageId: null }));
}

// The native session subscribed to every event (untagged, once per session).
function ensureSubscribed() {
    if (!subscribed)
        subscribed = ownCall('system.subscribe').then((r) => {
            if (!r.result) subscribed = null;
            return r;
        });
    return subscribed;
}

/* ---------- pages ---------- */

// The page origin as Chrome reports it for this port's sender, or null.
function senderOrigin(sender) {
    if (!sender || sender.id !== chrome.runtime.id) return null;
    let o = typeof sender.origin === 'string' ? sender.origin : null;
    if (!o && typeof sender.url === 'string') {
        try {
            o = new URL(sender.url).origin;
        } catch {
            o = null;
        }
    }
    return B.validWebOrigin(o) ? o : null;
}

function onPageConnect(port) {
    const origin = senderOrigin(port.sender);
    if (!origin || (port.sender.frameId !== undefined && port.sender.frameId !== 0)) {
        port.disconnect();
        return;
    }
    const page = { origin, events: null };
    pages.set(port, page);
    port.onDisconnect.addListener(() => {
        pages.delete(port);
        for (const e of pending.values()) if (e.port === port) e.port = null;
    });
    port.onMessage.addListener((m) => {
        const rpc = B.parsePortRequest(m);
        if (!rpc) return;
        const entry = { port, pageId: rpc.id, page };
        if (rpc.method === 'system.unsubscribe') {
            // Local: the native session stays subscribed for the other pages.
            const names = rpc.params && Array.isArray(rpc.params.events) ? rpc.params.events : null;
            if (page.events) for (const n of names || [...page.events]) page.events.delete(n);
            deliver(entry, { jsonrpc: '2.0', id: rpc.id, result: { events: page.events ? [...page.events] : [] } });
            return;
        }
        if (rpc.method === 'system.subscribe') {
            entry.subscribe = { events: rpc.params && rpc.params.events };
            ensureSubscribed().then(() => send(rpc.method, rpc.params, origin, entry));
            return;
        }
        send(rpc.method, rpc.params, origin, entry);
    });
}

/* ---------- the popup ---------- */

// The popup asks through a port of its own: {type: 'status'} → the daemon's view, untagged.
function onPopupConnect(port) {
    const own = chrome.runtime.getURL('');
    if (!port.sender || port.sender.id !== chrome.runtime.id || typeof port.sender.url !== 'string' || !port.sender.url.startsWith(own)) {
        port.disconnect();
        return;
    }
    port.onMessage.addListener(async (m) => {
        if (!m || m.type !== 'status') return;
        refreshContentScripts();
        const hello = await ownCall('system.hello');
        const status = { hello, tokens: null, certs: {} };
        if (hello.result) {
            status.tokens = await ownCall('token.list');
            const list = status.tokens.result ? status.tokens.result.tokens : [];
            for (const t of list) if (t.present && t.id) status.certs[t.id] = await ownCall('cert.list', { token: t.id });
        }
        try {
            port.postMessage({ type: 'status', status });
        } catch {
            /* popup closed */
        }
    });
}

chrome.runtime.onConnect.addListener((port) => {
    if (port.name === PAGE_PORT) onPageConnect(port);
    else if (port.name === POPUP_PORT) onPopupConnect(port);
    else port.disconnect();
});

/* ---------- content-script registration ---------- */

async function managedOrigins() {
    try {
        const v = await chrome.storage.managed.get('origins');
        return Array.isArray(v.origins) ? v.origins : [];
    } catch {
        return []; // no policy on this machine
    }
}

async function daemonOrigins() {
    const r = await ownCall('origins.list');
    if (!r.result || !Array.isArray(r.result.origins)) return [];
    return r.result.origins
        .filter((o) => o && (o.access === 'allowed' || o.access === 'paired'))
        .map((o) => o.origin);
}

let refreshing = null;
let again = false;
// Registers the content script for the configured origins (serialized: one at a time, the last
// request wins). Resolves the origins registered.
function refreshContentScripts() {
    if (refreshing) {
        again = true;
        return refreshing;
    }
    refreshing = (async () => {
        let origins;
        do {
            again = false;
            const list = [...(await managedOrigins()), ...(await daemonOrigins())];
            origins = [...new Set(list.filter(B.validWebOrigin))].sort();
            const existing = await chrome.scripting.getRegisteredContentScripts({ ids: [SCRIPT_ID] });
            const matches = origins.map(B.matchPattern);
            const same = existing.length === 1 && JSON.stringify(existing[0].matches) === JSON.stringify(matches);
            if (!same) {
                if (existing.length) await chrome.scripting.unregisterContentScripts({ ids: [SCRIPT_ID] });
                if (matches.length)
                    await chrome.scripting.registerContentScripts([
                        { id: SCRIPT_ID, js: ['bridge.js', 'content.js'], matches, runAt: 'document_start', allFrames: false, persistAcrossSessions: true },
                    ]);
            }
        } while (again);
        return origins;
    })().finally(() => {
        refreshing = null;
    });
    return refreshing;
}

chrome.storage.onChanged.addListener((changes, area) => {
    if (area === 'managed') refreshContentScripts();
});

// Start-up. `ready` resolves with the registered origins (tests await it through the worker).
globalThis.ukeydReady = refreshContentScripts().catch((e) => ({ error: String(e && e.message) }));
globalThis.ukeydRefresh = refreshContentScripts;
