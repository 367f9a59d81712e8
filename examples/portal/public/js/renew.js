// 延期 / 修复: the manual's four steps, in order —
//   1 读取CA证书信息  the certificate on the key (SDK cert.list) must be the one on record
//   2 获取短信验证码  simulated SMS; the code is checked by the server
//   3 初始化证书      SDK renewal.prepare (new key on the card, PIN in ukeyd's dialog) → CSR to the server
//   4 执行延期/修复   the server's CA issues → SDK renewal.commit → the server records the result
// Every step shows its progress and, on failure, the SDK's or the server's message in the chosen
// language; a failed step can be clicked again, and nothing on the key is lost (docs/renewal.md).
import { api, frame, t, $, el, fmtDate, onLang, errText, ukey, tokenFor, notYetValidMessages } from './common.js';

document.body.dataset.page = new URLSearchParams(location.search).get('mode') === 'repair' ? 'renewTitleRepair' : 'renewTitleExtend';
await frame();

const q = new URLSearchParams(location.search);
const card = q.get('card') || '';
const slot = q.get('slot') === '9c' ? '9c' : '9a';
const mode = q.get('mode') === 'repair' ? 'repair' : 'extend';
const s = { token: null, flow: null, cert: null, keyEntry: null, renewalId: null, certificate: null, result: null };

// What each step last said, re-rendered on a language switch: {kind, key, vars} or {kind, err}.
const said = {};

function show(n, kind, what) {
    said[n] = { kind, ...what };
    paint(n);
}

function paint(n) {
    const m = $(`#step${n} .msg`);
    const w = said[n];
    if (!w) return;
    m.className = `msg ${w.kind}`;
    if (w.err) m.textContent = errText(w.err);
    else if (w.messages) m.textContent = w.messages[document.documentElement.lang === 'en' ? 'en' : 'zh-CN'] + (w.key ? ` ${t(w.key, w.vars)}` : '');
    else m.textContent = t(w.key, w.vars);
}

function state(n, st) {
    $(`#step${n}`).dataset.state = st;
    $(`#step${n} .state`).textContent = t(st);
}

function render() {
    $('#renew-title').textContent = t(mode === 'repair' ? 'renewTitleRepair' : 'renewTitleExtend');
    $('#step4-title').textContent = t(mode === 'repair' ? 'step4Repair' : 'step4Extend');
    $('#btn-exec').textContent = t(mode === 'repair' ? 'step4Repair' : 'step4Extend');
    $('#card-no').textContent = card;
    for (const n of [1, 2, 3, 4]) {
        state(n, $(`#step${n}`).dataset.state);
        paint(n);
    }
    if (s.cert) renderCert();
    if (keyEvent) $('#key-event').textContent = t(keyEvent.key, keyEvent.vars);
}

function renderCert() {
    const dl = $('#cert-info');
    dl.replaceChildren();
    const k = s.keyEntry;
    for (const [label, value] of [
        ['certSubject', k.subject],
        ['certIssuer', k.issuer],
        ['certSerial', k.serial],
        ['certFrom', fmtDate(k.not_before)],
        ['certTo', fmtDate(k.not_after)],
        ['certStatus', t(`st_${k.status}`)],
    ])
        dl.append(el('dt', { text: t(label) }), el('dd', { text: value }));
    dl.hidden = false;
}

// Runs one step: button disabled meanwhile, state and message shown, errors shown as words.
async function step(n, btn, fn) {
    btn.disabled = true;
    state(n, 'running');
    try {
        await fn();
    } catch (e) {
        state(n, 'failed');
        show(n, 'error', { err: e });
        btn.disabled = false;
        if (!(e && e.messages)) console.error(e);
    }
}

onLang(render);
let keyEvent = null;
render();
if (!card) {
    show(1, 'error', { key: 'missingParams' });
    $('#btn-read').disabled = true;
}

// Key removed / inserted while on this page: say so at once.
ukey()
    .then(async (u) => {
        const note = (key) => (p) => {
            keyEvent = { key, vars: { serial: p && p.token ? p.token.serial : '' } };
            $('#key-event').hidden = false;
            $('#key-event').textContent = t(keyEvent.key, keyEvent.vars);
            $('#key-event').className = `keystate ${key === 'keyRemoved' ? 'warn' : ''}`;
        };
        await u.on('removed', note('keyRemoved'));
        await u.on('inserted', note('keyInserted'));
    })
    .catch(() => {});

$('#btn-read').addEventListener('click', () =>
    step(1, $('#btn-read'), async () => {
        show(1, 'progress', { key: 'reading' });
        const u = await ukey();
        const tok = await tokenFor(u, card);
        const certs = await u.certs({ token: tok.id });
        const entry = certs.find((c) => c.key === slot && !c.error);
        if (!entry) throw { messages: { 'zh-CN': t('noCertOnKey'), en: t('noCertOnKey') } };
        const r = await api('/api/renewal/start', { card, slot, mode, fingerprint: entry.fingerprint_sha256 });
        Object.assign(s, { token: tok.id, flow: r.flow, cert: r.certificate, keyEntry: entry, renewalId: null, certificate: null });
        renderCert();
        state(1, 'done');
        show(1, 'ok', { key: 'readDone' });
        $('#btn-read').disabled = false;
        for (const n of [2, 3, 4]) {
            state(n, 'pending');
            delete said[n];
            $(`#step${n} .msg`).textContent = '';
        }
        $('#btn-sms').disabled = false;
        $('#btn-init').disabled = true;
        $('#btn-exec').disabled = true;
    }),
);

$('#btn-sms').addEventListener('click', () =>
    step(2, $('#btn-sms'), async () => {
        show(2, 'progress', { key: 'smsSending' });
        const r = await api('/api/renewal/sms', { flow: s.flow });
        show(2, 'progress', { key: 'smsSent', vars: { phone: r.phone } });
        $('#btn-sms').disabled = false;
        $('#btn-sms').textContent = t('resendSms');
        $('#sms-code').disabled = false;
        $('#btn-sms-submit').disabled = false;
        $('#sms-code').focus();
    }),
);

async function submitSms() {
    await step(2, $('#btn-sms-submit'), async () => {
        const code = $('#sms-code').value.trim();
        if (!/^\d{6}$/.test(code)) throw { messages: { 'zh-CN': t('smsEmpty'), en: t('smsEmpty') } };
        show(2, 'progress', { key: 'smsChecking' });
        await api('/api/renewal/verify-sms', { flow: s.flow, code });
        state(2, 'done');
        show(2, 'ok', { key: 'smsOk' });
        $('#sms-code').disabled = true;
        $('#btn-sms').disabled = true;
        $('#btn-init').disabled = false;
    });
}
$('#btn-sms-submit').addEventListener('click', submitSms);
$('#sms-code').addEventListener('keydown', (e) => e.key === 'Enter' && submitSms());

$('#btn-init').addEventListener('click', () =>
    step(3, $('#btn-init'), async () => {
        show(3, 'progress', { key: 'initRunning' });
        const u = await ukey();
        // A request prepared earlier for this slot and never finished (a page closed after step
        // 3) would block a new one: drop it (only a `prepared` one can be dropped; nothing on the
        // working key changes).
        for (const r of await u.renewal.list())
            if (r.token === s.token && r.slot === slot && r.state === 'prepared' && r.renewal_id !== s.renewalId) await u.renewal.abort(r.renewal_id);
        let p = null;
        if (s.renewalId) {
            const st = await u.renewal.status(s.renewalId).catch(() => null);
            if (st && st.state === 'prepared' && st.csr_pem) p = st;
        }
        if (!p) p = await u.renewal.prepare({ token: s.token, slot, mode });
        s.renewalId = p.renewal_id;
        show(3, 'progress', { key: 'initSubmitting' });
        await api('/api/renewal/csr', { flow: s.flow, renewal_id: p.renewal_id, csr_pem: p.csr_pem });
        state(3, 'done');
        show(3, 'ok', { key: 'initDone' });
        $('#btn-exec').disabled = false;
    }),
);

$('#btn-exec').addEventListener('click', () =>
    step(4, $('#btn-exec'), async () => {
        show(4, 'progress', { key: 'issuing' });
        const issued = await api('/api/renewal/issue', { flow: s.flow });
        const u = await ukey();
        // After a pulled key the journal decides: recovery may already have finished the write.
        let r = await u.renewal.status(s.renewalId);
        if (r.state === 'prepared') {
            show(4, 'progress', { key: 'writing' });
            r = await u.renewal.commit({ renewal_id: s.renewalId, certificate: issued.certificate });
        }
        if (r.state === 'committing') throw { messages: { 'zh-CN': t('renewalBusy'), en: t('renewalBusy') } };
        if (r.state === 'aborted' || r.state === 'rolled_back') {
            $('#btn-init').disabled = false;
            state(3, 'pending');
            throw { messages: { 'zh-CN': t('renewalGone'), en: t('renewalGone') } };
        }
        const waiting = r.state === 'written';
        const done = await api('/api/renewal/complete', { flow: s.flow, state: waiting ? 'written' : 'done' });
        s.result = done.certificate;
        state(4, 'done');
        const vars = { from: fmtDate(done.certificate.not_before), to: fmtDate(done.certificate.not_after) };
        if (waiting) show(4, 'warn', { messages: await notYetValidMessages(r.valid_from || done.certificate.not_before), key: 'notYetValidNote' });
        else show(4, 'ok', { key: mode === 'repair' ? 'repairDone' : 'extendDone', vars });
        $('#btn-read').disabled = true;
        $('#after').hidden = false;
        $('#go-verify').href = `/verify.html?card=${encodeURIComponent(card)}`;
    }),
);
