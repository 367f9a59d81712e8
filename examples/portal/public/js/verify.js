// 验证签章: the key signs SHA-256(origin) ‖ SHA-256(nonce) (SDK sign); the server checks it with
// the certificate on record for the card. The origin in the signed bytes binds the signature to
// this site; the nonce is single-use.
import { api, frame, t, $, el, fmtDate, onLang, errText, ukey, tokenFor, signAlgorithm } from './common.js';

await frame();
let said = null;

function paint() {
    const m = $('#verify-msg');
    if (!said) return;
    m.className = `msg ${said.kind}`;
    m.textContent = said.err ? errText(said.err) : t(said.key, said.vars);
}
onLang(paint);

const { cards } = await api('/api/certs');
const want = new URLSearchParams(location.search).get('card');
for (const c of cards) $('#verify-card').append(el('option', { value: c.card, text: c.card, selected: c.card === want ? '' : null }));

async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

$('#btn-verify').addEventListener('click', async () => {
    const btn = $('#btn-verify');
    btn.disabled = true;
    try {
        const card = $('#verify-card').value;
        said = { kind: 'progress', key: 'verifying' };
        paint();
        const u = await ukey();
        const tok = await tokenFor(u, card);
        const entry = (await u.certs({ token: tok.id })).find((c) => c.key === '9a' && !c.error);
        if (!entry) throw { messages: { 'zh-CN': t('noCertOnKey'), en: t('noCertOnKey') } };
        const n = await api('/api/verify/nonce');
        const nonce = Uint8Array.from(atob(n.nonce), (ch) => ch.charCodeAt(0));
        const data = new Uint8Array(64);
        data.set(await sha256(new TextEncoder().encode(location.origin)), 0);
        data.set(await sha256(nonce), 32);
        const algorithm = signAlgorithm(entry);
        const sig = await u.sign({ token: tok.id, key: '9a', algorithm, data });
        said = { kind: 'progress', key: 'verifyChecking' };
        paint();
        const r = await api('/api/verify', { card, key: '9a', nonce_id: n.nonce_id, algorithm, signature: sig.signature });
        said = { kind: 'ok', key: 'verifyOk', vars: { serial: r.certificate.serial, from: fmtDate(r.certificate.not_before), to: fmtDate(r.certificate.not_after) } };
        $('#verify-msg').dataset.serial = r.certificate.serial;
    } catch (e) {
        said = { kind: 'error', err: e };
        if (!(e && e.messages)) console.error(e);
    }
    paint();
    btn.disabled = false;
});
