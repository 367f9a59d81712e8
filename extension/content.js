// content.js — injected (after bridge.js) at document_start into the top frame of the origins the
// extension is configured for. Relays between the page (window.postMessage on the page's own
// origin) and the service worker (one runtime port per page). It adds nothing and decides
// nothing: the service worker tags requests with the origin Chrome reports for this frame.
(() => {
    'use strict';
    if (globalThis.__ukeydContentLoaded) return;
    globalThis.__ukeydContentLoaded = true;
    const B = globalThis.ukeydBridge;
    const VERSION = chrome.runtime.getManifest().version;
    const ORIGIN = location.origin;
    let port = null;
    const inFlight = new Map(); // idKey → the page's id

    const post = (msg) => window.postMessage(msg, ORIGIN);

    function onPortMessage(m) {
        const a = B.parsePortAnswer(m);
        if (!a) return;
        if (a.type === 'response') {
            inFlight.delete(B.idKey(a.rpc.id));
            post({ ukeyd: 'response', rpc: a.rpc });
        } else {
            post({ ukeyd: 'event', rpc: a.rpc });
        }
    }

    // The service worker went away (extension reloaded or updated): answer what is in flight; the
    // next request opens a new port.
    function onDisconnect() {
        port = null;
        for (const id of inFlight.values())
            post({ ukeyd: 'response', rpc: B.errorResponse(id, 'DAEMON_UNAVAILABLE', 'the ukeyd extension stopped') });
        inFlight.clear();
    }

    function getPort() {
        if (!port) {
            port = chrome.runtime.connect({ name: 'ukeyd-page' });
            port.onMessage.addListener(onPortMessage);
            port.onDisconnect.addListener(onDisconnect);
        }
        return port;
    }

    window.addEventListener('message', (ev) => {
        if (!B.fromSamePage(ev, window, ORIGIN)) return;
        const m = B.parsePageMessage(ev.data);
        if (!m) return;
        if (m.kind === 'ping') {
            post({ ukeyd: 'pong', version: VERSION });
            return;
        }
        inFlight.set(B.idKey(m.rpc.id), m.rpc.id);
        try {
            getPort().postMessage({ type: 'request', rpc: m.rpc });
        } catch (e) {
            onDisconnect();
        }
    });

    post({ ukeyd: 'ready', version: VERSION });
})();
