'use strict';
// The seal image check (examples/portal/png.js): PNG signature, chunk CRCs, IHDR color type with
// alpha or tRNS, size bounds, and a transparent background (the four corner pixels, read by
// inflating and unfiltering the image data: every filter type, bit depths below 8, palettes).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const zlib = require('node:zlib');
const { PORTAL } = require('./lib');
const { checkSeal, encodeRgba, sampleSeal, crc32 } = require(path.join(PORTAL, 'png.js'));

const SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type, body) {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])));
    return Buffer.concat([head, body, crc]);
}

function ihdr(w, h, depth, colorType, interlace = 0) {
    const b = Buffer.alloc(13);
    b.writeUInt32BE(w, 0);
    b.writeUInt32BE(h, 4);
    b[8] = depth;
    b[9] = colorType;
    b[12] = interlace;
    return b;
}

// A PNG from raw unfiltered rows (Buffers of rowBytes) with filter type f per row applied here.
function png(w, h, depth, colorType, rows, { filters = [0], extra = [], interlace = 0 } = {}) {
    const bpp = Math.max(1, (depth * { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType]) >> 3);
    const out = [];
    rows.forEach((row, y) => {
        const f = filters[y % filters.length];
        const prev = y > 0 ? rows[y - 1] : Buffer.alloc(row.length);
        const enc = Buffer.alloc(row.length);
        for (let i = 0; i < row.length; i++) {
            const a = i >= bpp ? row[i - bpp] : 0;
            const b = prev[i];
            const c = i >= bpp ? prev[i - bpp] : 0;
            const p = a + b - c;
            const pr = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
            const pred = [0, a, b, (a + b) >> 1, pr][f];
            enc[i] = (row[i] - pred) & 0xff;
        }
        out.push(Buffer.from([f]), enc);
    });
    return Buffer.concat([
        SIG,
        chunk('IHDR', ihdr(w, h, depth, colorType, interlace)),
        ...extra.map(([t, b]) => chunk(t, b)),
        chunk('IDAT', zlib.deflateSync(Buffer.concat(out))),
        chunk('IEND', Buffer.alloc(0)),
    ]);
}

// RGBA rows: a disc of opaque red on transparent (or opaque white when `opaque`).
function rgbaRows(n, opaque = false) {
    const rows = [];
    for (let y = 0; y < n; y++) {
        const r = Buffer.alloc(n * 4);
        for (let x = 0; x < n; x++) {
            const inside = Math.hypot(x - n / 2, y - n / 2) < n / 3;
            const px = inside ? [200, 10, 10, 255] : opaque ? [255, 255, 255, 255] : [0, 0, 0, 0];
            px.forEach((v, i) => (r[x * 4 + i] = v));
        }
        rows.push(r);
    }
    return rows;
}

const code = (fn) => {
    try {
        fn();
        return 'ok';
    } catch (e) {
        return e.code;
    }
};

test('a good seal: RGBA with transparent corners, every filter type', () => {
    for (const f of [0, 1, 2, 3, 4]) assert.equal(code(() => checkSeal(png(100, 100, 8, 6, rgbaRows(100), { filters: [f] }))), 'ok', `filter ${f}`);
    assert.equal(code(() => checkSeal(png(100, 100, 8, 6, rgbaRows(100), { filters: [0, 1, 2, 3, 4] }))), 'ok');
    assert.deepEqual(checkSeal(sampleSeal()), { width: 200, height: 200, colorType: 6, bitDepth: 8 });
    assert.equal(code(() => checkSeal(encodeRgba(64, 64, () => [0, 0, 0, 0]))), 'ok');
});

test('16-bit RGBA and gray+alpha', () => {
    const rows16 = rgbaRows(80).map((r) => {
        const o = Buffer.alloc(r.length * 2);
        for (let i = 0; i < r.length; i++) o.writeUInt16BE(r[i] * 257, i * 2);
        return o;
    });
    assert.equal(code(() => checkSeal(png(80, 80, 16, 6, rows16, { filters: [4] }))), 'ok');
    const ga = rgbaRows(80).map((r) => {
        const o = Buffer.alloc(80 * 2);
        for (let x = 0; x < 80; x++) (o[x * 2] = r[x * 4]), (o[x * 2 + 1] = r[x * 4 + 3]);
        return o;
    });
    assert.equal(code(() => checkSeal(png(80, 80, 8, 4, ga, { filters: [1] }))), 'ok');
    ga[0][1] = 255; // top-left corner opaque
    assert.equal(code(() => checkSeal(png(80, 80, 8, 4, ga))), 'SEAL_BACKGROUND');
});

test('palette images: transparency from tRNS, also at 1 and 4 bits per pixel', () => {
    const plte = Buffer.from([255, 255, 255, 200, 0, 0]);
    for (const depth of [1, 4, 8]) {
        const rowBytes = Math.ceil((64 * depth) / 8);
        const rows = [];
        for (let y = 0; y < 64; y++) {
            const r = Buffer.alloc(rowBytes);
            // index 1 (red) in the middle columns only; index 0 elsewhere
            for (let x = 20; x < 44; x++) {
                const bit = x * depth;
                r[bit >> 3] |= 1 << (8 - depth - (bit & 7));
            }
            rows.push(r);
        }
        const withTrns = png(64, 64, depth, 3, rows, { extra: [['PLTE', plte], ['tRNS', Buffer.from([0])]] });
        assert.equal(code(() => checkSeal(withTrns)), 'ok', `depth ${depth}`);
        const noTrns = png(64, 64, depth, 3, rows, { extra: [['PLTE', plte]] });
        assert.equal(code(() => checkSeal(noTrns)), 'SEAL_NO_ALPHA', `depth ${depth}`);
        const opaqueIdx0 = png(64, 64, depth, 3, rows, { extra: [['PLTE', plte], ['tRNS', Buffer.from([255, 0])]] });
        assert.equal(code(() => checkSeal(opaqueIdx0)), 'SEAL_BACKGROUND', `depth ${depth}`);
    }
});

test('RGB with a tRNS color: transparent where the pixel is that color', () => {
    const rows = rgbaRows(70, true).map((r) => {
        const o = Buffer.alloc(70 * 3);
        for (let x = 0; x < 70; x++) for (let c = 0; c < 3; c++) o[x * 3 + c] = r[x * 4 + c];
        return o;
    });
    const white = Buffer.from([0, 255, 0, 255, 0, 255]);
    assert.equal(code(() => checkSeal(png(70, 70, 8, 2, rows, { extra: [['tRNS', white]] }))), 'ok');
    const black = Buffer.alloc(6);
    assert.equal(code(() => checkSeal(png(70, 70, 8, 2, rows, { extra: [['tRNS', black]] }))), 'SEAL_BACKGROUND');
    assert.equal(code(() => checkSeal(png(70, 70, 8, 2, rows))), 'SEAL_NO_ALPHA');
});

test('refused: not a PNG, damaged, no alpha, opaque background, too small or large, interlaced, too many bytes', () => {
    assert.equal(code(() => checkSeal(Buffer.from('GIF89a...'))), 'SEAL_NOT_PNG');
    assert.equal(code(() => checkSeal(Buffer.alloc(0))), 'SEAL_NOT_PNG');
    const good = png(100, 100, 8, 6, rgbaRows(100));
    assert.equal(code(() => checkSeal(good.subarray(0, good.length - 20))), 'SEAL_NOT_PNG', 'truncated');
    const badCrc = Buffer.from(good);
    badCrc[40] ^= 0xff;
    assert.equal(code(() => checkSeal(badCrc)), 'SEAL_DAMAGED');
    assert.equal(code(() => checkSeal(encodeRgba(100, 100, () => [255, 0, 0], { colorType: 2 }))), 'SEAL_NO_ALPHA');
    assert.equal(code(() => checkSeal(png(100, 100, 8, 6, rgbaRows(100, true)))), 'SEAL_BACKGROUND');
    assert.equal(code(() => checkSeal(encodeRgba(32, 100, () => [0, 0, 0, 0]))), 'SEAL_SIZE');
    assert.equal(code(() => checkSeal(png(3000, 64, 8, 6, []))), 'SEAL_SIZE', 'checked before decoding');
    assert.equal(code(() => checkSeal(png(100, 100, 8, 6, rgbaRows(100), { interlace: 1 }))), 'SEAL_INTERLACED');
    assert.equal(code(() => checkSeal(good, { maxBytes: 100 })), 'SEAL_TOO_LARGE');
    // IDAT that inflates to more than the image needs (a zip bomb is cut at the expected size).
    const bomb = Buffer.concat([
        SIG,
        chunk('IHDR', ihdr(64, 64, 8, 6)),
        chunk('IDAT', zlib.deflateSync(Buffer.alloc(50 * 1024 * 1024))),
        chunk('IEND', Buffer.alloc(0)),
    ]);
    assert.equal(code(() => checkSeal(bomb)), 'SEAL_DAMAGED');
    // Short data, a bad filter type.
    const short = Buffer.concat([SIG, chunk('IHDR', ihdr(64, 64, 8, 6)), chunk('IDAT', zlib.deflateSync(Buffer.alloc(10))), chunk('IEND', Buffer.alloc(0))]);
    assert.equal(code(() => checkSeal(short)), 'SEAL_DAMAGED');
    const raw = Buffer.alloc(64 * (64 * 4 + 1));
    raw[0] = 9;
    const badFilter = Buffer.concat([SIG, chunk('IHDR', ihdr(64, 64, 8, 6)), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
    assert.equal(code(() => checkSeal(badFilter)), 'SEAL_DAMAGED');
    // No IHDR first, no IEND.
    assert.equal(code(() => checkSeal(Buffer.concat([SIG, chunk('IEND', Buffer.alloc(0))]))), 'SEAL_NOT_PNG');
    assert.equal(code(() => checkSeal(good.subarray(0, good.length - 12))), 'SEAL_NOT_PNG');
    // Every message in both languages.
    try {
        checkSeal(png(100, 100, 8, 6, rgbaRows(100, true)));
    } catch (e) {
        assert.match(e.messages['zh-CN'], /透明/);
        assert.match(e.messages.en, /transparent/);
    }
});
