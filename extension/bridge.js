// bridge.js — the pure checks shared by the content script (a classic script: injected before
// content.js, it leaves `ukeydBridge` on the isolated world's global), the service worker
// (`import './bridge.js'` in the module worker, same global) and the Node tests
// (`require('extension/bridge.js')`). No chrome.* and no DOM here.
(function (root) {
    'use strict';

    const METHOD_MAX = 64;
    const ID_MAX = 128;

    function isPlainObject(v) {
        return v !== null && typeof v === 'object' && !Array.isArray(v);
    }

    function hasExactlyKeys(o, keys) {
        const k = Object.keys(o);
        return k.length === keys.length && keys.every((x) => Object.prototype.hasOwnProperty.call(o, x));
    }

    // A JSON-RPC id the daemon accepts: a string of at most 128 bytes or a safe integer.
    function validId(id) {
        if (typeof id === 'string') return utf8Length(id) <= ID_MAX;
        return Number.isSafeInteger(id);
    }

    function utf8Length(s) {
        let n = 0;
        for (const ch of s) {
            const c = ch.codePointAt(0);
            n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        }
        return n;
    }

    // A request as a page may send it: exactly jsonrpc "2.0", id, method, optional params (object
    // or array). Nothing else: in particular no "origin" (the service worker adds the one Chrome
    // reports) and no notifications (every page message gets an answer).
    function validRpcRequest(rpc) {
        if (!isPlainObject(rpc)) return false;
        const keys = Object.keys(rpc);
        for (const k of keys) if (k !== 'jsonrpc' && k !== 'id' && k !== 'method' && k !== 'params') return false;
        if (rpc.jsonrpc !== '2.0') return false;
        if (!('id' in rpc) || !validId(rpc.id)) return false;
        if (typeof rpc.method !== 'string' || rpc.method.length === 0 || utf8Length(rpc.method) > METHOD_MAX) return false;
        if ('params' in rpc && !(rpc.params !== null && typeof rpc.params === 'object')) return false;
        return true;
    }

    // True when a window 'message' event comes from this very window and origin (not a frame,
    // not another tab, not an opener).
    function fromSamePage(ev, win, origin) {
        return !!ev && ev.source === win && ev.origin === origin && typeof origin === 'string' && origin !== 'null';
    }

    // What a page message asks for: {kind: 'ping'} | {kind: 'request', rpc} | null (ignored).
    function parsePageMessage(data) {
        if (!isPlainObject(data)) return null;
        if (data.ukeyd === 'ping' && hasExactlyKeys(data, ['ukeyd'])) return { kind: 'ping' };
        if (data.ukeyd === 'request' && hasExactlyKeys(data, ['ukeyd', 'rpc']) && validRpcRequest(data.rpc))
            return { kind: 'request', rpc: data.rpc };
        return null;
    }

    // Messages on the content script ⇄ service worker port.
    function parsePortRequest(m) {
        if (!isPlainObject(m) || m.type !== 'request' || !hasExactlyKeys(m, ['type', 'rpc']) || !validRpcRequest(m.rpc))
            return null;
        return m.rpc;
    }

    function parsePortAnswer(m) {
        if (!isPlainObject(m) || !hasExactlyKeys(m, ['type', 'rpc']) || !isPlainObject(m.rpc) || m.rpc.jsonrpc !== '2.0')
            return null;
        if (m.type === 'response' && 'id' in m.rpc && ('result' in m.rpc || isPlainObject(m.rpc.error))) return m;
        if (m.type === 'event' && !('id' in m.rpc) && typeof m.rpc.method === 'string') return m;
        return null;
    }

    // An origin as browsers serialize it, http(s) only: scheme://host[:port], lower case, no path.
    function validWebOrigin(o) {
        if (typeof o !== 'string' || o.length > 255) return false;
        const m = /^(https?):\/\/([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/.exec(o);
        if (!m) return false;
        if (m[3] !== undefined) {
            const p = Number(m[3]);
            if (p < 1 || p > 65535 || String(p) !== m[3]) return false;
            if ((m[1] === 'https' && p === 443) || (m[1] === 'http' && p === 80)) return false;
        }
        return !m[2].startsWith('.') && !m[2].endsWith('.');
    }

    // The content-script match pattern for an origin ("https://a.example" → "https://a.example/*").
    function matchPattern(origin) {
        return `${origin}/*`;
    }

    const MESSAGES = {
        DAEMON_UNAVAILABLE: [-32000, true,
            'The ukeyd service is not running and could not be started. Restart the computer or reinstall ukeyd.',
            'ukeyd 服务未运行，且无法自动启动。请重启电脑或重新安装 ukeyd。'],
        INVALID_REQUEST: [-32600, false,
            'The request is not a valid JSON-RPC 2.0 request.',
            '请求不是有效的 JSON-RPC 2.0 请求。'],
        ORIGIN_NOT_ALLOWED: [-32001, false,
            'This website is not allowed to use your USB key.',
            '此网站无权使用您的 USB Key。'],
        INVALID_PARAMS: [-32602, false,
            'The request has missing or invalid parameters.',
            '请求参数缺失或无效。'],
    };

    // A JSON-RPC error response in the daemon's shape, for answers the extension gives itself.
    function errorResponse(id, reason, detail, extra) {
        const m = MESSAGES[reason] || MESSAGES.DAEMON_UNAVAILABLE;
        const data = { reason, retriable: m[1], message: { en: m[2], 'zh-CN': m[3] } };
        if (detail) data.detail = detail;
        if (extra) Object.assign(data, extra);
        return { jsonrpc: '2.0', id: id === undefined ? null : id, error: { code: m[0], message: m[2], data } };
    }

    // A key for a JSON-RPC id in a Map (1 and "1" are different ids).
    function idKey(id) {
        return `${typeof id}:${id}`;
    }

    const api = {
        validId,
        validRpcRequest,
        fromSamePage,
        parsePageMessage,
        parsePortRequest,
        parsePortAnswer,
        validWebOrigin,
        matchPattern,
        errorResponse,
        idKey,
    };
    if (typeof module === 'object' && module && module.exports) module.exports = api;
    else root.ukeydBridge = api;
})(typeof globalThis !== 'undefined' ? globalThis : this);
