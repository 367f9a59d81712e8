// 我的证书: the account's certificates by card number (from the portal's records), with 延期 for
// certificates that still work and 修复 for expired ones; and what ukeyd sees in the reader.
import { api, frame, t, el, $, fmtDate, onLang, errText, ukey } from './common.js';

await frame();
let data = null;
let keyState = { key: 'keyChecking', vars: {} };

function statusBadge(c) {
    return el('span', { class: `badge st-${c.status}`, text: t(`st_${c.status}`) });
}

function render() {
    const tbody = $('#cert-table tbody');
    tbody.replaceChildren();
    $('#key-state').textContent = `${t('keyPanel')}: ${t(keyState.key, keyState.vars)}`;
    if (!data) return;
    if (!data.cards.length) $('#certs-msg').textContent = t('noCerts');
    for (const card of data.cards) {
        for (const c of card.certificates) {
            const actions = el('td', { class: 'actions' });
            if (c.state === 'active') {
                const pending = card.certificates.some((x) => x.slot === c.slot && x.state === 'pending');
                if (pending) actions.append(el('span', { class: 'note', text: t('pendingNote') }));
                else if (c.status === 'expired')
                    actions.append(el('a', { class: 'button danger', id: `repair-${card.card}-${c.slot}`, href: `/renew.html?card=${encodeURIComponent(card.card)}&slot=${c.slot}&mode=repair`, text: t('repair') }));
                else
                    actions.append(el('a', { class: 'button', id: `extend-${card.card}-${c.slot}`, href: `/renew.html?card=${encodeURIComponent(card.card)}&slot=${c.slot}&mode=extend`, text: t('extend') }));
            }
            tbody.append(
                el(
                    'tr',
                    { class: `row-${c.state}`, 'data-card': card.card, 'data-serial': c.serial },
                    el('td', { text: card.card }),
                    el('td', { text: c.subject }),
                    el('td', { text: c.slot.toUpperCase() }),
                    el('td', { class: 'from', text: fmtDate(c.not_before) }),
                    el('td', { class: 'to', text: fmtDate(c.not_after) }),
                    el('td', {}, statusBadge(c)),
                    el('td', { text: String(c.days_left) }),
                    actions,
                ),
            );
        }
    }
}

onLang(render);
try {
    data = await api('/api/certs');
} catch (e) {
    $('#certs-msg').className = 'msg error';
    $('#certs-msg').textContent = errText(e);
}
render();

// The key in the reader, live (inserted / removed), through the SDK.
try {
    const u = await ukey();
    const show = async () => {
        const present = (await u.tokens()).filter((x) => x.present && x.id);
        keyState = present.length ? { key: 'keyFound', vars: { serial: present.map((x) => x.serial).join(', ') } } : { key: 'keyNone', vars: {} };
        render();
    };
    await u.on('inserted', show);
    await u.on('removed', show);
    await show();
} catch (e) {
    keyState = { key: 'x', vars: {} };
    $('#key-state').textContent = `${t('keyPanel')}: ${errText(e)}`;
    onLang(() => ($('#key-state').textContent = `${t('keyPanel')}: ${errText(e)}`));
}
