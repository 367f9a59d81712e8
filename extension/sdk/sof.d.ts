// Type declarations for sof.js, the GM/T 0020-2012 (certificate application integrated service
// interface, "SOF") module of the page SDK (docs/sof-migration.md).
//
// References are to GM/T 0020-2012: clause 5 (identifiers, via GM/T 0006), clause 7 (the client
// functions; its JavaScript form is GB/T 43694-2024 clause 7.2), Annex A (error codes).

import { Ukey, UkeyError, ConnectOptions, Lang } from './ukey';

/** Certificate information types of SOF_GetCertInfo (clause 5 / GM/T 0006). */
export declare const SGD_CERT: Readonly<{
    VERSION: 0x01; SERIAL: 0x02; ISSUER: 0x05; VALID_TIME: 0x06; SUBJECT: 0x07; DER_PUBLIC_KEY: 0x08; DER_EXTENSIONS: 0x09;
    EXT_AUTHORITYKEYIDENTIFIER: 0x11; EXT_SUBJECTKEYIDENTIFIER: 0x12; EXT_KEYUSAGE: 0x13; EXT_PRIVATEKEYUSAGEPERIOD: 0x14;
    EXT_CERTIFICATEPOLICIES: 0x15; EXT_POLICYMAPPINGS: 0x16; EXT_BASICCONSTRAINTS: 0x17; EXT_POLICYCONSTRAINTS: 0x18;
    EXT_EXTKEYUSAGE: 0x19; EXT_CRLDISTRIBUTIONPOINTS: 0x1a; EXT_NETSCAPE_CERT_TYPE: 0x1b; EXT_SELFDEFINED_EXTENSION: 0x1c;
    ISSUER_CN: 0x21; ISSUER_O: 0x22; ISSUER_OU: 0x23; SUBJECT_CN: 0x31; SUBJECT_O: 0x32; SUBJECT_OU: 0x33; SUBJECT_EMAIL: 0x34;
    NOTBEFORE_TIME: 0x35; NOTAFTER_TIME: 0x36;
    /** Vendor codes outside GM/T 0006's table, kept because portals call them. */
    SIGNATURE_ALG: 0x100; PUBKEY_ALG: 0x101;
}>;

/** Device information types of SOF_GetDeviceInfo (GM/T 0006). */
export declare const SGD_DEVICE: Readonly<{
    SORT: 0x201; TYPE: 0x202; NAME: 0x203; MANUFACTURER: 0x204; HARDWARE_VERSION: 0x205; SOFTWARE_VERSION: 0x206;
    STANDARD_VERSION: 0x207; SERIAL_NUMBER: 0x208;
}>;

/** Signature methods of SOF_SetSignMethod (GM/T 0006). ukeyd supports SHA256_RSA (RSA and ECDSA keys) and SM3_SM2 (SM2 keys). */
export declare const SGD_SIGN: Readonly<{ SM3_RSA: 0x00010001; SHA1_RSA: 0x00010002; SHA256_RSA: 0x00010004; SM3_SM2: 0x00020201 }>;

/** The standard's error codes (Annex A) that this module reports. */
export declare const SOR: Readonly<Record<
    'OK' | 'UNKNOWNERR' | 'NOTSUPPORTYETERR' | 'FILEERR' | 'LOADPROVIDERERR' | 'LOADDEVMNGAPIERR' | 'ALGTYPEERR' | 'KEYUSAGEERR'
    | 'MEMORYERR' | 'TIMEOUTERR' | 'INDATALENERR' | 'INDATAERR' | 'KEYNOTFOUNDERR' | 'CERTNOTFOUNTERR' | 'VERIFYPOLICYERR'
    | 'APPNOTFOUNDERR' | 'CERTENCODEERR' | 'CERTINVALIDERR' | 'CERTHASHEXPIREDERR' | 'VERIFYSIGNDATAERR'
    | 'DECYPTDATAERR' | 'PKCS7ENCODEERR' | 'PARAMETERNOTSUPPORTEERR' | 'CTLNOTFOUND', number>>;

/** ukeyd's reasons → SOR codes (a reason not listed: SOR_UNKNOWNERR). */
export declare const SOR_REASONS: Readonly<Record<string, number>>;
export declare function sorOf(reason: string): number;
export declare function sorName(code: number): string | null;

/** Every rejection of a SOF function: a UkeyError (reason, messages, data) with the standard's code. */
export declare class SofError extends UkeyError {
    readonly name: 'SofError';
    /** The SOR_* code (Annex A). */
    readonly sor: number;
    /** 'SOR_CERTNOTFOUNTERR' etc. */
    readonly sorName: string | null;
}

/** A certificate as a base64 DER string (what SOF_ExportUserCert returns), a PEM text, or DER bytes. */
export type CertInput = string | Uint8Array | ArrayBuffer;
/** Data: a string (UTF-8 text, or base64 with dataEncoding 'base64') or bytes. */
export type Data = string | Uint8Array | ArrayBuffer;
/** "piv:78003773/9a": the token id and the key, as SOF_GetUserList lists them. */
export type CertID = string;

export interface SofOptions extends ConnectOptions {
    /** A connected Ukey; without it the first call connects with the other options. */
    ukey?: Ukey;
    /** How string data is read and decrypted data returned: 'utf8' (default) or 'base64'. */
    dataEncoding?: 'utf8' | 'base64';
    /** CA certificates SOF_ValidateCert accepts as issuers (none: SOF_ValidateCert fails with SOR_CTLNOTFOUND). */
    trustedCAs?: CertInput[];
    /** A page PIN refused by ukeyd's policy (PIN_FROM_PAGE_DISABLED) is dropped and ukeyd's dialog asks (default true). */
    dialogFallback?: boolean;
    lang?: Lang;
}

export interface Sof {
    /** Clause 7, SOF_GetVersion: this module's version ("0.1.0"); the daemon's is in `ukey.hello.version`. */
    SOF_GetVersion(): Promise<string>;
    /** Clause 7, SOF_SetSignMethod: SGD_SHA256_RSA (the hash of SOF_SignData/SignMessage for RSA and ECDSA keys) or SGD_SM3_SM2 (SM2 keys: SM2 with SM3 and the GM/T 0009 ID 1234567812345678). Until it is called, SM2 certificates sign with SGD_SM3_SM2 and the others with SGD_SHA256_RSA; once set, a method that does not fit the certificate's key is SOR_ALGTYPEERR before any dialog. Unsupported: SOR_NOTSUPPORTYETERR; unknown: SOR_ALGTYPEERR. */
    SOF_SetSignMethod(method: number): Promise<true>;
    /** Clause 7, SOF_GetSignMethod. */
    SOF_GetSignMethod(): Promise<number>;
    /** The SOR code of the last call (SOR_OK after a success), as vendor scripts offer. */
    SOF_GetLastError(): number;
    /** Clause 7, SOF_GetUserList: "name||certID&&&name||certID" — one entry per signing certificate of every key present; name is the subject CN. */
    SOF_GetUserList(): Promise<string>;
    /** Clause 7, SOF_ExportUserCert: the signing certificate, base64 DER. */
    SOF_ExportUserCert(certId: CertID): Promise<string>;
    /** Clause 7, SOF_ExportExChangeUserCert: the encryption (exchange) certificate on the same key, base64 DER. */
    SOF_ExportExChangeUserCert(certId: CertID): Promise<string>;
    /** Clause 7, SOF_Login: ukeyd's `pin.verify` checks the PIN and has the key forget it at once, signing nothing (ukeyd's PIN dialog; `pin` only where policy allows, else the dialog asks). Resolves true. */
    SOF_Login(certId: CertID, pin?: string): Promise<true>;
    /** Clause 7, SOF_GetPinRetryCount: PIN tries left (pin.status). */
    SOF_GetPinRetryCount(certId: CertID): Promise<number>;
    /** Clause 7, SOF_ChangePassWd: pin.change; PINs from the page only where policy allows, else ukeyd's dialogs ask. */
    SOF_ChangePassWd(certId: CertID, oldPin?: string, newPin?: string): Promise<true>;
    /** Clause 7, SOF_GetCertInfo: one item by its SGD_CERT type ('' when the certificate has none); unknown type: SOR_PARAMETERNOTSUPPORTEERR. */
    SOF_GetCertInfo(cert: CertInput, type: number): Promise<string>;
    /** Clause 7, SOF_GetCertInfoByOid: an extension's value (text when it is a DER string, else base64 DER), else subject attributes of that OID, else ''. */
    SOF_GetCertInfoByOid(cert: CertInput, oid: string): Promise<string>;
    /** Clause 7, SOF_ValidateCert: 0 when well-formed, within its dates and signed by one of `trustedCAs` (RSA/ECDSA); no revocation check. */
    SOF_ValidateCert(cert: CertInput): Promise<0>;
    /** Clause 7, SOF_SignData: PKCS#1 v1.5 (RSA), DER ECDSA or DER SM2 (SM2-SM3, SEQUENCE { r, s }) signature, base64 (ukeyd `sign`). */
    SOF_SignData(certId: CertID, data: Data): Promise<string>;
    /** Clause 7, SOF_VerifySignedData: RSA and ECDSA checked in the page with WebCrypto; SM2 (which WebCrypto lacks) by ukeyd `verify.cms`, sent as a SignedData without signed attributes; resolves true, else SOR_VERIFYSIGNDATAERR. */
    SOF_VerifySignedData(cert: CertInput, data: Data, signature: string): Promise<true>;
    /** Clause 7, SOF_SignMessage: CMS SignedData, base64 DER (ukeyd `sign.cms`); flag 0 attached, 1 detached. SM2: GM/T 0010 (SM3, SM2-with-SM3, PKCS#7 content-type OIDs). */
    SOF_SignMessage(flag: 0 | 1, certId: CertID, data: Data): Promise<string>;
    /** Clause 7, SOF_VerifySignedMessage: ukeyd `verify.cms`; `data` for a detached SignedData, '' for an attached one. No trust check. */
    SOF_VerifySignedMessage(message: string, data?: Data): Promise<true>;
    /** Clause 7, SOF_EncryptData: CMS EnvelopedData made in the page, base64 DER. RSA or EC P-256/P-384 certificate: AES-256-CBC content. SM2 certificate: the GM/T 0010 envelope ukeyd's `decrypt.cms` reads (PKCS#7 content-type OIDs; SM2 encryption, GM/T 0009 SM2Cipher, of an SM4-CBC content key; extension/sdk/gm.js). Other keys: SOR_NOTSUPPORTYETERR. */
    SOF_EncryptData(cert: CertInput, data: Data): Promise<string>;
    /** Clause 7, SOF_DecryptData: ukeyd `decrypt.cms` with a key of the certID's token; the content as text (or base64). SM2 (GM/T 0010) envelopes: SOR_NOTSUPPORTYETERR until the SKF driver decrypts. */
    SOF_DecryptData(certId: CertID, envelope: string): Promise<string>;
    /** Clause 7, SOF_GenRandom: `len` bytes from crypto.getRandomValues, base64 (ukeyd has no random method). */
    SOF_GenRandom(len: number): Promise<string>;
    /** Clause 7, SOF_GetDeviceInfo: SGD_DEVICE SORT (driver), TYPE (model), NAME (label), SERIAL_NUMBER; others SOR_NOTSUPPORTYETERR. */
    SOF_GetDeviceInfo(certId: CertID, type: number): Promise<string>;
    /** The connection (null before the first call). */
    readonly ukey: Ukey | null;
    close(): void;
}

export declare function createSof(options?: SofOptions): Sof;

/** The parsed certificate SOF_GetCertInfo works on. Throws SofError CERT_INVALID (SOR_CERTENCODEERR). */
export interface ParsedCertificate {
    der: Uint8Array;
    version: number;
    serial: string;
    issuer: { oid: string; type: string; value: string }[];
    subject: { oid: string; type: string; value: string }[];
    issuerText: string;
    subjectText: string;
    notBefore: string;
    notAfter: string;
    spki: Uint8Array;
    keyAlgorithm: 'RSA' | 'EC' | 'SM2' | string;
    curve: string | null;
    signatureAlgorithm: string;
    extensions: { oid: string; critical: boolean; value: Uint8Array }[];
    [k: string]: unknown;
}
export declare function parseCertificate(cert: CertInput): ParsedCertificate;
export declare function certInfo(cert: ParsedCertificate, type: number): string;
export declare function certInfoByOid(cert: ParsedCertificate, oid: string): string;
/** The DER of a CMS EnvelopedData of data for the certificate (as SOF_EncryptData; RSA, EC P-256/P-384, SM2). */
export declare function envelope(cert: ParsedCertificate, data: Uint8Array): Promise<Uint8Array>;
export declare function certId(token: string, key: string): CertID;
export declare function splitCertId(id: string): { token: string; key: string } | null;
export declare function formatUserList(users: { name: string; id: CertID }[]): string;
export declare function parseUserList(text: string): { name: string; id: CertID }[];
