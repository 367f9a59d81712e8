// 电子印章 > 采集印章: upload a seal image (checked by the server: PNG, alpha, transparent
// background, size) and the table of the manual (ID, 印模类型, 印模名称, 卡号, 公司名称, 所属部门,
// 申请人, 状态, 操作). Portal-side only: ukeyd is not involved.
import { api, frame, t, $, el, onLang, errText } from './common.js';

await frame();
let list = null;
let said = null;

function paint() {
    const m = $('#seal-msg');
    if (said) {
        m.className = `msg ${said.kind}`;
        m.textContent = said.err ? errText(said.err) : t(said.key);
    }
    const tbody = $('#seal-table tbody');
    tbody.replaceChildren();
    if (!list) return;
    if (!list.seals.length) tbody.append(el('tr', {}, el('td', { colspan: '9', class: 'empty', text: t('noSeals') })));
    for (const s of list.seals)
        tbody.append(
            el(
                'tr',
                {},
                el('td', { text: String(s.id) }),
                el('td', { text: s.type }),
                el('td', {}, el('img', { src: `/api/seals/${s.id}.png`, alt: '', class: 'thumb' }), ' ', s.name),
                el('td', { text: s.card }),
                el('td', { text: s.company }),
                el('td', { text: s.department }),
                el('td', { text: s.applicant }),
                el('td', {}, el('span', { class: 'badge st-valid', text: t(`sealStatus_${s.status}`) })),
                el(
                    'td',
                    {},
                    el('button', {
                        type: 'button',
                        class: 'link',
                        text: t('sealDelete'),
                        onclick: async () => {
                            await api('/api/seals/delete', { id: s.id });
                            await load();
                        },
                    }),
                ),
            ),
        );
}

async function load() {
    list = await api('/api/seals');
    const sel = $('#seal-card');
    if (!sel.options.length) for (const c of list.cards) sel.append(el('option', { value: c, text: c }));
    paint();
}
onLang(paint);
await load();

function base64(buf) {
    const b = new Uint8Array(buf);
    let s = '';
    for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode.apply(null, b.subarray(i, i + 0x8000));
    return btoa(s);
}

$('#seal-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const btn = $('#btn-seal');
    btn.disabled = true;
    try {
        const f = $('#seal-file').files[0];
        if (!f) throw { messages: { 'zh-CN': t('sealNoFile'), en: t('sealNoFile') } };
        said = { kind: 'progress', key: 'sealUploading' };
        paint();
        await api('/api/seals', { type: $('#seal-type').value, name: $('#seal-name').value, card: $('#seal-card').value, image: base64(await f.arrayBuffer()) });
        said = { kind: 'ok', key: 'sealOk' };
        $('#seal-form').reset();
        await load();
    } catch (e) {
        said = { kind: 'error', err: e };
    }
    paint();
    btn.disabled = false;
});
