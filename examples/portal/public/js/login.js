// The login page.
import { api, frame, t, errText, $ } from './common.js';

await frame({ auth: false });
$('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const msg = $('#login-msg');
    msg.className = 'msg';
    msg.textContent = t('loggingIn');
    $('#login-btn').disabled = true;
    try {
        await api('/api/login', { account: $('#account').value, password: $('#password').value });
        location.href = '/certs.html';
    } catch (e) {
        msg.className = 'msg error';
        msg.textContent = errText(e);
    } finally {
        $('#login-btn').disabled = false;
    }
});
