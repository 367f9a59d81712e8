'use strict';
// The seal image check of 电子印章 > 采集印章: a PNG of bounded size with an alpha channel (or a
// tRNS chunk) whose background is transparent. The four corner pixels must be fully transparent:
// the image data is inflated (bounded) and unfiltered to read them. Only what a seal needs: no
// interlaced images (say so), chunk CRCs checked, IHDR first, IDAT before IEND.
//
// encodeRgba() makes small PNGs (tests and the sample seal).

const zlib = require('node:zlib');
const { PortalError } = require('./errors');

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const LIMITS = { maxBytes: 1 << 20, minSide: 64, maxSide: 2048 };

const CRC_TABLE = (() => {
    const t = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        t[n] = c;
    }
    return t;
})();

function crc32(buf) {
    let c = -1;
    for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
}

function bad(code, zh, en) {
    return new PortalError(code, zh, en, 422);
}

const notPng = () => bad('SEAL_NOT_PNG', '印章图片必须是 PNG 格式。', 'The seal image must be a PNG file.');

// Channels per pixel by color type.
const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function paeth(a, b, c) {
    const p = a + b - c;
    const pa = Math.abs(p - a);
    const pb = Math.abs(p - b);
    const pc = Math.abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// Reverses the per-row filters in place; returns the rows (without filter bytes) as one buffer.
function unfilter(data, height, rowBytes, bpp) {
    const out = Buffer.alloc(height * rowBytes);
    for (let y = 0; y < height; y++) {
        const type = data[y * (rowBytes + 1)];
        const src = y * (rowBytes + 1) + 1;
        const dst = y * rowBytes;
        for (let i = 0; i < rowBytes; i++) {
            const x = data[src + i];
            const a = i >= bpp ? out[dst + i - bpp] : 0;
            const b = y > 0 ? out[dst - rowBytes + i] : 0;
            const c = y > 0 && i >= bpp ? out[dst - rowBytes + i - bpp] : 0;
            let v;
            switch (type) {
                case 0: v = x; break;
                case 1: v = x + a; break;
                case 2: v = x + b; break;
                case 3: v = x + ((a + b) >> 1); break;
                case 4: v = x + paeth(a, b, c); break;
                default: throw bad('SEAL_DAMAGED', '印章图片已损坏。', 'The seal image is damaged.');
            }
            out[dst + i] = v & 0xff;
        }
    }
    return out;
}

// Parses and checks a seal PNG; resolves {width, height, colorType, bitDepth} or throws
// PortalError (code SEAL_*), with the limits in opts.
function checkSeal(buf, opts = {}) {
    const lim = { ...LIMITS, ...opts };
    if (!Buffer.isBuffer(buf) || buf.length < SIGNATURE.length || !buf.subarray(0, 8).equals(SIGNATURE)) throw notPng();
    if (buf.length > lim.maxBytes)
        throw bad('SEAL_TOO_LARGE', `印章图片不能超过 ${lim.maxBytes >> 10} KB。`, `The seal image must not be larger than ${lim.maxBytes >> 10} KB.`);
    let off = 8;
    let ihdr = null;
    let plte = null;
    let trns = null;
    let ended = false;
    const idat = [];
    while (off < buf.length) {
        if (off + 12 > buf.length) throw notPng();
        const len = buf.readUInt32BE(off);
        if (len > buf.length - off - 12) throw notPng();
        const type = buf.toString('latin1', off + 4, off + 8);
        const body = buf.subarray(off + 8, off + 8 + len);
        if (crc32(buf.subarray(off + 4, off + 8 + len)) !== buf.readUInt32BE(off + 8 + len))
            throw bad('SEAL_DAMAGED', '印章图片已损坏。', 'The seal image is damaged.');
        off += 12 + len;
        if (!ihdr && type !== 'IHDR') throw notPng();
        if (type === 'IHDR') {
            if (ihdr || len !== 13) throw notPng();
            ihdr = {
                width: body.readUInt32BE(0),
                height: body.readUInt32BE(4),
                bitDepth: body[8],
                colorType: body[9],
                compression: body[10],
                filter: body[11],
                interlace: body[12],
            };
        } else if (type === 'PLTE') plte = body;
        else if (type === 'tRNS') trns = body;
        else if (type === 'IDAT') idat.push(body);
        else if (type === 'IEND') {
            ended = true;
            break;
        }
    }
    if (!ihdr || !ended || idat.length === 0) throw notPng();
    const { width, height, bitDepth, colorType } = ihdr;
    const validDepths = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
    if (!validDepths[colorType] || !validDepths[colorType].includes(bitDepth) || ihdr.compression !== 0 || ihdr.filter !== 0)
        throw notPng();
    if (width < lim.minSide || height < lim.minSide || width > lim.maxSide || height > lim.maxSide)
        throw bad(
            'SEAL_SIZE',
            `印章图片的宽和高须在 ${lim.minSide} 到 ${lim.maxSide} 像素之间（当前 ${width}×${height}）。`,
            `The seal image must be between ${lim.minSide} and ${lim.maxSide} pixels wide and high (this one is ${width}×${height}).`,
        );
    const hasAlpha = colorType === 4 || colorType === 6 || trns !== null;
    if (!hasAlpha)
        throw bad('SEAL_NO_ALPHA', '印章图片必须带透明通道（背景透明的 PNG）。', 'The seal image must have an alpha channel (a PNG with a transparent background).');
    if (ihdr.interlace !== 0)
        throw bad('SEAL_INTERLACED', '请上传非隔行扫描（non-interlaced）的 PNG 图片。', 'Upload a non-interlaced PNG image.');
    if (colorType === 3 && !plte) throw notPng();

    const bitsPerPixel = CHANNELS[colorType] * bitDepth;
    const rowBytes = Math.ceil((width * bitsPerPixel) / 8);
    const expected = height * (rowBytes + 1);
    let data;
    try {
        data = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: expected });
    } catch {
        throw bad('SEAL_DAMAGED', '印章图片已损坏。', 'The seal image is damaged.');
    }
    if (data.length !== expected) throw bad('SEAL_DAMAGED', '印章图片已损坏。', 'The seal image is damaged.');
    const px = unfilter(data, height, rowBytes, Math.max(1, bitsPerPixel >> 3));

    // A sample (channel ch of pixel x in row y) as an integer of bitDepth bits.
    const sample = (x, y, ch) => {
        const bit = (x * CHANNELS[colorType] + ch) * bitDepth;
        const at = y * rowBytes + (bit >> 3);
        if (bitDepth === 16) return px.readUInt16BE(at);
        if (bitDepth === 8) return px[at];
        return (px[at] >> (8 - bitDepth - (bit & 7))) & ((1 << bitDepth) - 1);
    };
    const transparent = (x, y) => {
        if (colorType === 6) return sample(x, y, 3) === 0;
        if (colorType === 4) return sample(x, y, 1) === 0;
        if (colorType === 3) {
            const i = sample(x, y, 0);
            return i < trns.length && trns[i] === 0;
        }
        // Gray or RGB: transparent where it equals the tRNS color.
        const n = CHANNELS[colorType];
        if (trns.length < 2 * n) return false;
        for (let ch = 0; ch < n; ch++) if (sample(x, y, ch) !== trns.readUInt16BE(2 * ch)) return false;
        return true;
    };
    for (const [x, y] of [[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]])
        if (!transparent(x, y))
            throw bad('SEAL_BACKGROUND', '印章图片的背景必须透明（四个角的像素应完全透明）。', 'The background of the seal image must be transparent (the four corner pixels must be fully transparent).');
    return { width, height, colorType, bitDepth };
}

function chunk(type, body) {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(body.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])));
    return Buffer.concat([head, body, crc]);
}

// An 8-bit RGBA PNG of width x height from pixel(x, y) -> [r, g, b, a]. opts: colorType 6
// (default) or 2 (RGB, alpha dropped), extra chunks [[type, body]] before IDAT.
function encodeRgba(width, height, pixel, opts = {}) {
    const colorType = opts.colorType === undefined ? 6 : opts.colorType;
    const n = colorType === 6 ? 4 : 3;
    const raw = Buffer.alloc(height * (width * n + 1));
    for (let y = 0; y < height; y++) {
        raw[y * (width * n + 1)] = 0;
        for (let x = 0; x < width; x++) {
            const p = pixel(x, y);
            for (let c = 0; c < n; c++) raw[y * (width * n + 1) + 1 + x * n + c] = p[c];
        }
    }
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0);
    ihdr.writeUInt32BE(height, 4);
    ihdr[8] = 8;
    ihdr[9] = colorType;
    return Buffer.concat([
        SIGNATURE,
        chunk('IHDR', ihdr),
        ...(opts.chunks || []).map(([t, b]) => chunk(t, b)),
        chunk('IDAT', zlib.deflateSync(raw)),
        chunk('IEND', Buffer.alloc(0)),
    ]);
}

// A red round seal on a transparent background (the sample offered on the seal page).
function sampleSeal(size = 200) {
    const c = (size - 1) / 2;
    return encodeRgba(size, size, (x, y) => {
        const d = Math.hypot(x - c, y - c);
        const ring = d > c * 0.82 && d < c * 0.95;
        const star = Math.abs(x - c) + Math.abs(y - c) < c * 0.3;
        return ring || star ? [200, 16, 16, 255] : [0, 0, 0, 0];
    });
}

module.exports = { checkSeal, encodeRgba, sampleSeal, crc32, LIMITS };
