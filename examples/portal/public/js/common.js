// Shared by every page of the demo portal: the two languages, the portal's JSON API (session
// cookie + CSRF header), the header bar, and the one connection to ukeyd through the page SDK
// (the pages never open a WebSocket themselves).

const DICT = {
    'zh-CN': {
        title: '证书在线服务平台',
        subtitle: '演示门户（ukeyd）',
        navCerts: '我的证书',
        navVerify: '验证签章',
        navSeals: '电子印章',
        logout: '退出',
        langToggle: 'English',
        loginTitle: '用户登录',
        account: '账号',
        password: '密码',
        login: '登录',
        loggingIn: '正在登录…',
        loginHint: '使用 Chrome 或 Chromium 浏览器即可，无需安装任何浏览器控件。',
        certsTitle: '我的证书',
        certsIntro: '按卡号列出您名下的证书。证书即将过期时点击“延期”；已过期的证书点击“修复”。',
        colCard: '卡号',
        colSubject: '证书主题',
        colSlot: '位置',
        colFrom: '起始时间',
        colTo: '结束时间',
        colStatus: '状态',
        colDays: '剩余天数',
        colAction: '操作',
        extend: '延期',
        repair: '修复',
        st_valid: '有效',
        st_expiring: '即将过期',
        st_expired: '已过期',
        st_not_yet_valid: '未生效',
        pendingNote: '新证书待生效',
        noCerts: '您的账号下没有证书记录。',
        keyPanel: 'USB Key',
        keyChecking: '正在检测 USB Key…',
        keyFound: '已检测到 USB Key，卡号 {serial}',
        keyNone: '未检测到 USB Key，请插入。',
        keyRemoved: 'USB Key 已拔出。',
        keyInserted: 'USB Key 已插入（卡号 {serial}）。',
        renewTitleExtend: '证书延期',
        renewTitleRepair: '证书修复',
        renewIntro: '请按顺序完成以下四个步骤。整个过程中请不要拔出 USB Key。',
        cardLabel: '卡号',
        step1: '读取CA证书信息',
        step2: '获取短信验证码',
        step3: '初始化证书',
        step4Extend: '执行延期',
        step4Repair: '执行修复',
        step1Help: '从 USB Key 读取证书，并与平台记录核对。',
        step2Help: '验证码将发送到您登记的手机。',
        step3Help: '在 USB Key 内生成新密钥并提交证书申请，需要输入 USB Key 的 PIN 码（在 ukeyd 弹出的窗口中输入）。',
        step4Help: 'CA 签发新证书并写入 USB Key。原证书会先备份，写入失败也不会丢失。',
        read: '读取证书',
        getSms: '获取短信验证码',
        resendSms: '重新获取',
        smsPlaceholder: '6 位验证码',
        submitSms: '提交验证码',
        init: '初始化证书',
        pending: '待完成',
        running: '进行中',
        done: '已完成',
        failed: '失败',
        reading: '正在读取 USB Key 中的证书…',
        readDone: '已读取证书，与平台记录一致。',
        insertKey: '请插入卡号为 {card} 的 USB Key。',
        wrongKey: '插入的 USB Key 卡号为 {have}，与所选证书的卡号 {card} 不一致，请换用正确的 USB Key。',
        noCertOnKey: 'USB Key 上没有找到该证书。',
        certSubject: '证书主题',
        certIssuer: '颁发者',
        certSerial: '序列号',
        certFrom: '起始时间',
        certTo: '结束时间',
        certStatus: '状态',
        smsSending: '正在发送验证码…',
        smsSent: '验证码已发送至 {phone}，5 分钟内有效。（演示环境：验证码写在门户服务器的日志中。）',
        smsChecking: '正在核对验证码…',
        smsOk: '短信验证通过。',
        smsEmpty: '请输入 6 位短信验证码。',
        initRunning: '正在 USB Key 内生成新密钥，请在 ukeyd 弹出的窗口中输入 PIN 码…',
        initSubmitting: '正在提交证书申请…',
        initDone: '初始化成功：新密钥已在 USB Key 中生成，证书申请已提交。',
        issuing: '正在向 CA 申请签发新证书…',
        writing: '正在将新证书写入 USB Key，请勿拔出…',
        extendDone: '延期成功！新证书有效期：{from} 至 {to}。',
        repairDone: '修复成功！新证书有效期：{from} 至 {to}。',
        notYetValidNote: '新证书已写入 USB Key，到期后由 ukeyd 自动启用；在此之前原证书继续有效，签章不受影响。',
        renewalGone: '本次证书更新已取消，请重新点击“初始化证书”。',
        renewalBusy: '上一次写入尚未结束，请稍候几秒后再点击。',
        nextVerify: '去验证签章',
        backCerts: '返回我的证书',
        missingParams: '缺少卡号，请从“我的证书”进入。',
        verifyTitle: '验证签章',
        verifyIntro: '用 USB Key 中的证书对本网站给出的随机数签名，由服务器用平台记录的证书验证。签名只对本网站有效，不能被其他网站重放。',
        verifyCard: '选择卡号',
        verifyBtn: '验证签章',
        verifying: '正在签名，请在 ukeyd 弹出的窗口中输入 PIN 码…',
        verifyChecking: '正在验证签名…',
        verifyOk: '签章验证成功。使用的证书：序列号 {serial}，有效期 {from} 至 {to}。',
        sealsTitle: '电子印章',
        sealsCollect: '采集印章',
        sealRegister: '注册电子印章',
        sealType: '印模类型',
        sealName: '印模名称',
        sealCard: '卡号',
        sealImage: '印章图片',
        sealRules: '要求：PNG 格式，背景透明（带透明通道），宽高 64–2048 像素，不超过 1 MB。',
        sealSample: '示例印章图片',
        sealUploading: '正在上传…',
        sealOk: '印章已注册。',
        sealNoFile: '请选择印章图片。',
        sealDelete: '删除',
        colId: 'ID',
        colCompany: '公司名称',
        colDept: '所属部门',
        colApplicant: '申请人',
        sealStatus_registered: '已注册',
        noSeals: '暂无印章，请先采集印章。',
        unexpected: '发生意外错误，请刷新页面后重试。',
        sdkMissing: '无法加载 ukeyd 页面组件，请联系网站管理员。',
        network: '无法连接门户服务器，请检查网络后重试。',
    },
    en: {
        title: 'Certificate Online Service Platform',
        subtitle: 'demo portal (ukeyd)',
        navCerts: 'My certificates',
        navVerify: 'Verify signing',
        navSeals: 'Electronic seals',
        logout: 'Log out',
        langToggle: '中文',
        loginTitle: 'Log in',
        account: 'Account',
        password: 'Password',
        login: 'Log in',
        loggingIn: 'Logging in…',
        loginHint: 'Chrome or Chromium is all you need: no browser controls to install.',
        certsTitle: 'My certificates',
        certsIntro: 'Your certificates by card number. Click "Extend" before a certificate expires; click "Repair" for an expired one.',
        colCard: 'Card number',
        colSubject: 'Subject',
        colSlot: 'Slot',
        colFrom: 'Valid from',
        colTo: 'Valid until',
        colStatus: 'Status',
        colDays: 'Days left',
        colAction: 'Action',
        extend: 'Extend',
        repair: 'Repair',
        st_valid: 'Valid',
        st_expiring: 'Expiring soon',
        st_expired: 'Expired',
        st_not_yet_valid: 'Not yet valid',
        pendingNote: 'new certificate pending',
        noCerts: 'There are no certificates on record for your account.',
        keyPanel: 'USB key',
        keyChecking: 'Looking for your USB key…',
        keyFound: 'USB key found, card number {serial}',
        keyNone: 'No USB key found. Insert it.',
        keyRemoved: 'The USB key was removed.',
        keyInserted: 'USB key inserted (card number {serial}).',
        renewTitleExtend: 'Extend the certificate',
        renewTitleRepair: 'Repair the certificate',
        renewIntro: 'Complete the four steps below in order. Keep the USB key inserted throughout.',
        cardLabel: 'Card number',
        step1: 'Read the CA certificate',
        step2: 'Get the SMS code',
        step3: 'Initialize the certificate',
        step4Extend: 'Execute the extension',
        step4Repair: 'Execute the repair',
        step1Help: 'Reads the certificate from the USB key and checks it against the platform\'s record.',
        step2Help: 'A code is sent to your registered mobile phone.',
        step3Help: 'Makes a new key inside the USB key and submits the certificate request. You type the USB key\'s PIN in the window ukeyd shows.',
        step4Help: 'The CA issues the new certificate and it is written to the USB key. The old certificate is backed up first: nothing is lost if writing fails.',
        read: 'Read certificate',
        getSms: 'Get SMS code',
        resendSms: 'Send again',
        smsPlaceholder: '6-digit code',
        submitSms: 'Submit code',
        init: 'Initialize',
        pending: 'To do',
        running: 'In progress',
        done: 'Done',
        failed: 'Failed',
        reading: 'Reading the certificate on your USB key…',
        readDone: 'Certificate read; it matches the platform\'s record.',
        insertKey: 'Insert the USB key with card number {card}.',
        wrongKey: 'The inserted USB key has card number {have}, not {card}. Insert the right key.',
        noCertOnKey: 'The certificate was not found on the USB key.',
        certSubject: 'Subject',
        certIssuer: 'Issuer',
        certSerial: 'Serial number',
        certFrom: 'Valid from',
        certTo: 'Valid until',
        certStatus: 'Status',
        smsSending: 'Sending the code…',
        smsSent: 'Code sent to {phone}; valid for 5 minutes. (Demo: the code is in the portal server\'s log.)',
        smsChecking: 'Checking the code…',
        smsOk: 'SMS code verified.',
        smsEmpty: 'Enter the 6-digit SMS code.',
        initRunning: 'Making a new key inside your USB key; type the PIN in the window ukeyd shows…',
        initSubmitting: 'Submitting the certificate request…',
        initDone: 'Initialized: a new key was made inside your USB key and the request was submitted.',
        issuing: 'Asking the CA to issue the new certificate…',
        writing: 'Writing the new certificate to your USB key; do not remove it…',
        extendDone: 'Extended! The new certificate is valid from {from} to {to}.',
        repairDone: 'Repaired! The new certificate is valid from {from} to {to}.',
        notYetValidNote: 'The new certificate is on your USB key and ukeyd switches to it by itself when it becomes valid; until then the old certificate keeps working for signing.',
        renewalGone: 'This renewal was cancelled. Click "Initialize" again.',
        renewalBusy: 'The last write has not finished yet; wait a few seconds and click again.',
        nextVerify: 'Verify signing',
        backCerts: 'Back to My certificates',
        missingParams: 'No card number given; open this page from "My certificates".',
        verifyTitle: 'Verify signing',
        verifyIntro: 'Your USB key signs a random challenge from this website, and the server checks the signature with the certificate on record. The signature is bound to this website and cannot be replayed to another.',
        verifyCard: 'Card number',
        verifyBtn: 'Verify signing',
        verifying: 'Signing; type the PIN in the window ukeyd shows…',
        verifyChecking: 'Checking the signature…',
        verifyOk: 'Signing verified. Certificate used: serial {serial}, valid from {from} to {to}.',
        sealsTitle: 'Electronic seals',
        sealsCollect: 'Collect a seal',
        sealRegister: 'Register the seal',
        sealType: 'Seal type',
        sealName: 'Seal name',
        sealCard: 'Card number',
        sealImage: 'Seal image',
        sealRules: 'Requirements: PNG with a transparent background (alpha channel), 64–2048 pixels wide and high, at most 1 MB.',
        sealSample: 'Sample seal image',
        sealUploading: 'Uploading…',
        sealOk: 'Seal registered.',
        sealNoFile: 'Choose a seal image.',
        sealDelete: 'Delete',
        colId: 'ID',
        colCompany: 'Company',
        colDept: 'Department',
        colApplicant: 'Applicant',
        sealStatus_registered: 'Registered',
        noSeals: 'No seals yet; collect one first.',
        unexpected: 'Something unexpected happened. Reload the page and try again.',
        sdkMissing: 'The ukeyd page component could not be loaded. Contact the site administrator.',
        network: 'The portal server cannot be reached. Check the network and try again.',
    },
};

const listeners = [];

export function lang() {
    const l = localStorage.getItem('portal-lang');
    return l === 'en' ? 'en' : 'zh-CN';
}

export function t(key, vars = {}) {
    const s = DICT[lang()][key] ?? DICT['zh-CN'][key] ?? key;
    return s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] === undefined ? '' : String(vars[k])));
}

export function onLang(fn) {
    listeners.push(fn);
}

export function $(sel, root = document) {
    return root.querySelector(sel);
}

// Element helper: el('td', {class: 'x', text: '…'}, children...).
export function el(tag, attrs = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null) continue;
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v);
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
}

function applyStatic() {
    document.documentElement.lang = lang();
    for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
    for (const e of document.querySelectorAll('[data-i18n-placeholder]')) e.placeholder = t(e.dataset.i18nPlaceholder);
    document.title = `${t(document.body.dataset.page || 'title')} - ${t('title')}`;
}

export function setLang(l) {
    localStorage.setItem('portal-lang', l);
    applyStatic();
    for (const fn of listeners) fn();
}

// "2026-11-24 10:30" in the browser's time zone.
export function fmtDate(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/* ---------- errors: always words, never codes ---------- */

export class PortalApiError extends Error {
    constructor(code, messages, status, extra = {}) {
        super(messages.en);
        this.code = code;
        this.messages = messages;
        this.status = status;
        this.extra = extra;
    }
}

// The text to show for any error: the SDK's or the portal's message in the chosen language.
export function errText(e) {
    if (e && e.messages && (e.messages[lang()] || e.messages.en)) return e.messages[lang()] || e.messages.en;
    return t('unexpected');
}

/* ---------- the portal's API ---------- */

let csrf = null;

export async function api(path, body) {
    const init = { method: body === undefined ? 'GET' : 'POST', headers: {}, credentials: 'same-origin' };
    if (body !== undefined) {
        init.headers['content-type'] = 'application/json';
        if (csrf) init.headers['x-csrf-token'] = csrf;
        init.body = JSON.stringify(body);
    }
    let res;
    try {
        res = await fetch(path, init);
    } catch {
        throw new PortalApiError('NETWORK', { 'zh-CN': DICT['zh-CN'].network, en: DICT.en.network }, 0);
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
        const err = data.error || {};
        if (res.status === 401 && !path.endsWith('/login')) location.href = '/login.html';
        const messages = err.message && err.message.en ? err.message : { 'zh-CN': DICT['zh-CN'].unexpected, en: DICT.en.unexpected };
        const { code, message, ...extra } = err;
        throw new PortalApiError(code || 'HTTP_' + res.status, messages, res.status, extra);
    }
    if (data.csrf) csrf = data.csrf;
    return data;
}

/* ---------- page frame ---------- */

// The header bar; on pages behind the login, loads the session (and its CSRF token) first.
export async function frame({ auth = true } = {}) {
    const header = el(
        'header',
        { class: 'top' },
        el('div', { class: 'brand' }, el('span', { class: 'logo', text: '证' }), el('span', { 'data-i18n': 'title' }), el('small', { 'data-i18n': 'subtitle' })),
    );
    const nav = el('nav', { class: 'nav' });
    if (auth) {
        for (const [href, key, id] of [
            ['/certs.html', 'navCerts', 'nav-certs'],
            ['/verify.html', 'navVerify', 'nav-verify'],
            ['/seals.html', 'navSeals', 'nav-seals'],
        ])
            nav.append(el('a', { href, id, 'data-i18n': key, class: location.pathname === href ? 'active' : '' }));
    }
    const langBtn = el('button', { type: 'button', id: 'lang-toggle', class: 'link', 'data-i18n': 'langToggle', onclick: () => setLang(lang() === 'en' ? 'zh-CN' : 'en') });
    nav.append(langBtn);
    let session = null;
    if (auth) {
        session = await api('/api/session');
        nav.append(el('span', { class: 'who', text: session.name }));
        nav.append(
            el('button', {
                type: 'button',
                id: 'logout',
                class: 'link',
                'data-i18n': 'logout',
                onclick: async () => {
                    await api('/api/logout', {}).catch(() => {});
                    location.href = '/login.html';
                },
            }),
        );
    }
    header.append(nav);
    document.body.prepend(header);
    applyStatic();
    return session;
}

/* ---------- ukeyd, through the page SDK only ---------- */

let ukeyPromise = null;
let sdk = null;

export async function loadSdk() {
    if (!sdk) {
        try {
            sdk = await import('/sdk/ukey.js');
        } catch {
            throw new PortalApiError('SDK_MISSING', { 'zh-CN': DICT['zh-CN'].sdkMissing, en: DICT.en.sdkMissing }, 0);
        }
    }
    return sdk;
}

// The one connection of this page (reconnects if it dropped).
export async function ukey() {
    if (ukeyPromise) {
        const u = await ukeyPromise.catch(() => null);
        if (u && !u.closed) return u;
    }
    ukeyPromise = loadSdk().then((m) => m.connect({ lang: lang() }));
    return ukeyPromise;
}

// The present token with this card number (the token's serial), or an error the page can show.
export async function tokenFor(u, card) {
    const tokens = await u.tokens();
    const present = tokens.filter((x) => x.present && x.id);
    const tok = present.find((x) => String(x.serial) === String(card));
    if (tok) return tok;
    const other = present[0];
    throw new PortalApiError(
        other ? 'WRONG_KEY' : 'NO_KEY',
        other
            ? { 'zh-CN': DICT['zh-CN'].wrongKey.replace('{have}', other.serial).replace('{card}', card), en: DICT.en.wrongKey.replace('{have}', other.serial).replace('{card}', card) }
            : { 'zh-CN': DICT['zh-CN'].insertKey.replace('{card}', card), en: DICT.en.insertKey.replace('{card}', card) },
        0,
    );
}

// The SDK's message for a certificate that is not valid yet ("证书未生效，将于 … 生效。").
export async function notYetValidMessages(validFrom) {
    const m = await loadSdk();
    return m.errorFromRpc({ code: -32030, data: { reason: 'NOT_YET_VALID', valid_from: validFrom } }, lang()).messages;
}

// The algorithm name `sign` wants for a cert.list entry.
export function signAlgorithm(entry) {
    return entry.key_algorithm === 'RSA' ? 'RSA-PKCS1-SHA256' : 'ECDSA-SHA256';
}
