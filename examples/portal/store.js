'use strict';
// The portal's records: one JSON file in the data directory (written whole to a temporary file,
// fsynced and renamed, so a crash leaves the old file or the new one). Accounts (password hashed
// with scrypt), cards by card number with the certificates issued for them, seals.
//
//   {"version": 1,
//    "accounts": {"demo": {"name", "phone", "company", "department", "salt", "hash"}},
//    "cards": {"10234567": {"account": "demo",
//        "certs": [{"slot", "serial", "der", "subject", "not_before", "not_after", "fingerprint",
//                   "state": "issued"|"active"|"pending"|"replaced", "source", "time"}]}},
//    "seals": [{"id", "type", "name", "card", "company", "department", "applicant", "status",
//               "file", "time"}], "next_seal": 1}
//
// Certificate states: `issued` by the CA, not yet known to be on the key; `active` on the key and
// in use; `pending` written to the key but not valid yet (ukeyd activates it when due; so does
// refresh() here); `replaced` by a newer one.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };

function scrypt(password, salt) {
    return new Promise((resolve, reject) =>
        crypto.scrypt(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p }, (e, k) => (e ? reject(e) : resolve(k))),
    );
}

async function hashPassword(password) {
    const salt = crypto.randomBytes(16);
    return { salt: salt.toString('hex'), hash: (await scrypt(password, salt)).toString('hex') };
}

async function checkPassword(rec, password) {
    const want = Buffer.from(rec.hash, 'hex');
    const got = await scrypt(String(password), Buffer.from(rec.salt, 'hex'));
    return got.length === want.length && crypto.timingSafeEqual(got, want);
}

// The card-side description of a certificate (DER) as the records keep it.
function certRecord(der, extra = {}) {
    const x = new crypto.X509Certificate(der);
    return {
        slot: '9a',
        serial: x.serialNumber.toLowerCase(),
        der: Buffer.from(x.raw).toString('base64'),
        subject: x.subject.split('\n').reverse().join(','),
        issuer: x.issuer.split('\n').reverse().join(','),
        not_before: new Date(x.validFrom).toISOString(),
        not_after: new Date(x.validTo).toISOString(),
        fingerprint: x.fingerprint256.replace(/:/g, '').toLowerCase(),
        ...extra,
    };
}

class Store {
    constructor(dir) {
        this.dir = dir;
        this.file = path.join(dir, 'records.json');
        fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        fs.mkdirSync(path.join(dir, 'seals'), { recursive: true, mode: 0o700 });
        this.data = fs.existsSync(this.file)
            ? JSON.parse(fs.readFileSync(this.file, 'utf8'))
            : { version: 1, accounts: {}, cards: {}, seals: [], next_seal: 1 };
    }

    save() {
        const tmp = `${this.file}.tmp-${process.pid}`;
        const fd = fs.openSync(tmp, 'w', 0o600);
        try {
            fs.writeSync(fd, JSON.stringify(this.data, null, 2));
            fs.fsyncSync(fd);
        } finally {
            fs.closeSync(fd);
        }
        fs.renameSync(tmp, this.file);
    }

    account(name) {
        return Object.prototype.hasOwnProperty.call(this.data.accounts, name) ? this.data.accounts[name] : null;
    }

    // Creates the account, or sets its password (and details) if it exists.
    async putAccount(name, password, details = {}) {
        const rec = this.account(name) || {};
        Object.assign(rec, details, await hashPassword(password));
        this.data.accounts[name] = rec;
        this.save();
        return rec;
    }

    card(number) {
        return Object.prototype.hasOwnProperty.call(this.data.cards, number) ? this.data.cards[number] : null;
    }

    cardsOf(account) {
        return Object.entries(this.data.cards)
            .filter(([, c]) => c.account === account)
            .map(([number, c]) => ({ number, ...c }));
    }

    // Records that `der` is on card `number` in `slot`, active (a certificate issued elsewhere, or
    // the first one of a demo card). Idempotent; an older active one of the slot is replaced.
    enroll(number, slot, der, account) {
        const c = this.card(number) || { account, certs: [] };
        if (account) c.account = account;
        const rec = certRecord(der, { slot, state: 'active', source: 'enrolled', time: new Date().toISOString() });
        const have = c.certs.find((x) => x.fingerprint === rec.fingerprint);
        if (have) {
            if (have.state !== 'active') {
                for (const x of c.certs) if (x.slot === slot && x.state === 'active') x.state = 'replaced';
                have.state = 'active';
            }
        } else {
            for (const x of c.certs) if (x.slot === slot && (x.state === 'active' || x.state === 'pending')) x.state = 'replaced';
            c.certs.push(rec);
        }
        this.data.cards[number] = c;
        this.save();
        return rec;
    }

    // A pending certificate whose time has come is the active one now (ukeyd activates it on the
    // key at the same moment). Returns whether anything changed.
    refresh(number, nowMs) {
        const c = this.card(number);
        if (!c) return false;
        let changed = false;
        for (const p of c.certs.filter((x) => x.state === 'pending' && Date.parse(x.not_before) <= nowMs)) {
            for (const x of c.certs) if (x.slot === p.slot && x.state === 'active') x.state = 'replaced';
            p.state = 'active';
            changed = true;
        }
        if (changed) this.save();
        return changed;
    }

    active(number, slot) {
        const c = this.card(number);
        return c ? c.certs.find((x) => x.slot === slot && x.state === 'active') || null : null;
    }

    pending(number, slot) {
        const c = this.card(number);
        return c ? c.certs.find((x) => x.slot === slot && x.state === 'pending') || null : null;
    }
}

module.exports = { Store, certRecord, hashPassword, checkPassword };
