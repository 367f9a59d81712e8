// Type declarations for gm.js: SM3, SM4-CBC encryption and SM2 encryption in the page (what
// sof.js's SOF_EncryptData needs for SM2 certificates; WebCrypto has none of them).

/** SM3 (GM/T 0004-2012): 32 bytes. */
export declare function sm3(data: Uint8Array): Uint8Array;
/** SM4-CBC (GM/T 0002-2012) with PKCS#7 padding; key and iv 16 bytes. */
export declare function sm4CbcEncrypt(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array;
/** SM2 encryption (GM/T 0003.4-2012) to a point (04 || x || y, or compressed); RangeError for a point not on the curve. */
export declare function sm2Encrypt(point: Uint8Array, data: Uint8Array): { c1: Uint8Array; c3: Uint8Array; c2: Uint8Array };
/** The GM/T 0009 SM2Cipher DER { x, y, hash (C3), cipherText (C2) } of an sm2Encrypt result. */
export declare function sm2CipherDer(cipher: { c1: Uint8Array; c3: Uint8Array; c2: Uint8Array }): Uint8Array;
/** The sm2p256v1 parameters. */
export declare const SM2_CURVE: Readonly<{ p: bigint; a: bigint; b: bigint; n: bigint; gx: bigint; gy: bigint }>;
