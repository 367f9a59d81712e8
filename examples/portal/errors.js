'use strict';
// The portal's own errors: a stable code for programs and tests, and the text users read in
// Simplified Chinese and English (the page shows the text of the chosen language, never the code).

class PortalError extends Error {
    constructor(code, zh, en, status = 400, extra = {}) {
        super(en);
        this.code = code;
        this.messages = { 'zh-CN': zh, en };
        this.status = status;
        this.extra = extra;
    }

    toJSON() {
        return { code: this.code, message: this.messages, ...this.extra };
    }
}

module.exports = { PortalError };
