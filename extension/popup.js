// popup.js — the extension's popup: is ukeyd reachable, which keys, which certificates (subject,
// validity, status). Texts come from _locales (zh_CN by default, English for English browsers);
// the daemon's own error messages are shown in the same language.
// The language: Chinese unless the browser prefers English (navigator.language, which follows
// the user's language list even when Chrome's own UI catalog is another one, e.g. Debian's
// chromium without chromium-l10n). The messages come from _locales/<lang>/messages.json, the
// catalog chrome.i18n uses; chrome.i18n.getMessage is the fallback.
const nav = (navigator.language || chrome.i18n.getUILanguage() || '').toLowerCase();
const LANG = nav.startsWith('en') ? 'en' : 'zh-CN';
let catalog = null;

function t(name, subs = []) {
    const m = catalog && catalog[name];
    if (!m) return chrome.i18n.getMessage(name, subs) || name;
    return m.message.replace(/\$([A-Za-z0-9_]+)\$/g, (all, ph) => {
        const p = m.placeholders && m.placeholders[ph.toLowerCase()];
        if (!p) return all;
        return p.content.replace(/\$(\d)/g, (x, n) => (subs[Number(n) - 1] === undefined ? '' : String(subs[Number(n) - 1])));
    });
}

async function loadCatalog() {
    try {
        const r = await fetch(chrome.runtime.getURL(`_locales/${LANG === 'en' ? 'en' : 'zh_CN'}/messages.json`));
        catalog = await r.json();
    } catch {
        catalog = null;
    }
}

function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
}

const day = (iso) => (typeof iso === 'string' ? iso.slice(0, 10) : '—');

function errorText(resp) {
    const d = resp && resp.error && resp.error.data;
    if (d && d.message && d.message[LANG]) return d.message[LANG];
    return (resp && resp.error && resp.error.message) || '';
}

function statusText(c) {
    const days = String(c.days_left);
    switch (c.status) {
        case 'valid': return t('status_valid', [days]);
        case 'expiring': return t('status_expiring', [days]);
        case 'expired': return t('status_expired');
        case 'not_yet_valid': return t('status_not_yet_valid');
        default: return c.status || '';
    }
}

function certBox(c) {
    if (c.error) {
        const msg = c.error[LANG] || c.error.en || c.error.reason;
        return el('div', { class: 'cert' }, el('span', { class: 'st-error' }, `${c.key}: ${t('certUnreadable')} — ${msg}`));
    }
    const rows = [
        [t('slot'), c.key],
        [t('subject'), c.subject],
        [t('issuer'), c.issuer],
        [t('notBefore'), day(c.not_before)],
        [t('notAfter'), day(c.not_after)],
    ];
    const dl = el('dl');
    for (const [k, v] of rows) dl.append(el('dt', {}, k), el('dd', {}, v || '—'));
    dl.append(el('dt', {}, t('status')), el('dd', { class: `st-${c.status}` }, statusText(c)));
    return el('div', { class: 'cert' }, dl);
}

function render(status) {
    const box = document.getElementById('daemon');
    const text = document.getElementById('daemon-text');
    const detail = document.getElementById('daemon-detail');
    const keys = document.getElementById('keys');
    keys.replaceChildren();
    if (!status.hello || !status.hello.result) {
        box.className = 'daemon down';
        text.textContent = t('daemonDown');
        detail.hidden = false;
        detail.textContent = errorText(status.hello);
        return;
    }
    box.className = 'daemon ok';
    text.textContent = t('daemonOk', [status.hello.result.version]);
    detail.hidden = true;
    const tokens = status.tokens && status.tokens.result ? status.tokens.result.tokens : [];
    const present = tokens.filter((x) => x.present && x.id);
    if (!present.length) {
        keys.append(el('p', { class: 'empty' }, status.tokens && status.tokens.error ? errorText(status.tokens) : t('noKeys')));
        return;
    }
    for (const tok of present) {
        const meta = [`${t('reader')}: ${tok.reader}`];
        if (tok.serial) meta.push(`${t('serial')}: ${tok.serial}`);
        if (tok.pin_retries !== null && tok.pin_retries !== undefined) meta.push(`${t('pinRetries')}: ${tok.pin_retries}`);
        const sec = el('section', { class: 'key' }, el('h2', {}, tok.label || tok.id), el('div', { class: 'meta' }, meta.join(' · ')));
        const cl = status.certs[tok.id];
        if (cl && cl.error) sec.append(el('p', { class: 'st-error' }, errorText(cl)));
        else if (cl && cl.result) {
            const certs = cl.result.certificates || [];
            if (!certs.length) sec.append(el('p', { class: 'empty' }, t('noCerts')));
            for (const c of certs) sec.append(certBox(c));
        }
        keys.append(sec);
    }
}

await loadCatalog();
for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
document.documentElement.lang = LANG;
document.title = t('popupTitle');

const port = chrome.runtime.connect({ name: 'ukeyd-popup' });
port.onMessage.addListener((m) => {
    if (m && m.type === 'status') {
        render(m.status);
        document.body.dataset.state = 'done';
    }
});
port.postMessage({ type: 'status' });
