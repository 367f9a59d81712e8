'use strict';
// 验证签章 "verify signing": the page signs SHA-256(origin) ‖ SHA-256(nonce) with the key; the
// server verifies it against the certificates on record for that card. The origin is the portal's
// own (from its configuration, never from the request), so a signature a page on another site
// obtained cannot be replayed here, and the nonce is single-use and short-lived, so one obtained
// here cannot be replayed later.

const crypto = require('node:crypto');

// The bytes the key signs (64 bytes).
function challengeMessage(origin, nonce) {
    const h = (b) => crypto.createHash('sha256').update(b).digest();
    return Buffer.concat([h(Buffer.from(origin, 'utf8')), h(Buffer.from(nonce))]);
}

// The node:crypto verify parameters of a `sign` algorithm name (docs/protocol.md), or null.
function algParams(alg) {
    const m = /^(RSA-PKCS1|RSA-PSS|ECDSA)-SHA(256|384|512)$/.exec(alg || '');
    if (!m) return null;
    const hash = `sha${m[2]}`;
    if (m[1] === 'RSA-PKCS1') return { hash, opts: { padding: crypto.constants.RSA_PKCS1_PADDING } };
    if (m[1] === 'RSA-PSS')
        return { hash, opts: { padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(m[2]) / 8 } };
    return { hash, opts: { dsaEncoding: 'der' } };
}

// Whether signature (Buffer) by certificate (PEM or DER) over challengeMessage(origin, nonce)
// verifies with algorithm.
function verifyChallenge({ certificate, origin, nonce, algorithm, signature }) {
    const p = algParams(algorithm);
    if (!p) return false;
    try {
        const key = new crypto.X509Certificate(certificate).publicKey;
        return crypto.verify(p.hash, challengeMessage(origin, nonce), { key, ...p.opts }, signature);
    } catch {
        return false;
    }
}

module.exports = { challengeMessage, verifyChallenge, algParams };
