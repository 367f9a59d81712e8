// Type declarations for ukey.js, the page SDK of ukeyd (docs/sdk.md).

export declare const SDK_VERSION: string;
export declare const DEFAULT_PORTS: readonly number[];
export declare const EVENTS: Readonly<{ inserted: 'token.inserted'; removed: 'token.removed'; changed: 'token.changed'; renewal: 'renewal.changed' }>;

export type Lang = 'zh-CN' | 'en';
export type Path = 'extension' | 'wss' | 'custom';
export type Bytes = Uint8Array | ArrayBuffer | ArrayBufferView | string;

/** Daemon reasons (docs/protocol.md "Reasons") and the SDK's own; new ones may appear. */
export type Reason =
    | 'EXTENSION_NOT_INSTALLED' | 'DAEMON_UNAVAILABLE' | 'LOCAL_NETWORK_BLOCKED' | 'ORIGIN_NOT_ALLOWED' | 'NOT_PAIRED'
    | 'VERSION_TOO_OLD' | 'TIMEOUT' | 'CANCELLED' | 'INTERNAL'
    | 'NO_MEMORY' | 'IO' | 'NOT_FOUND' | 'NOT_SUPPORTED' | 'BUSY' | 'CONFIG_INVALID' | 'TLS_ERROR' | 'MODULE_ERROR'
    | 'PROMPT_UNAVAILABLE' | 'PARSE_ERROR' | 'INVALID_REQUEST' | 'METHOD_NOT_FOUND' | 'INVALID_PARAMS' | 'HOST_NOT_ALLOWED'
    | 'METHOD_NOT_ALLOWED' | 'CONSENT_DENIED' | 'PIN_FROM_PAGE_DISABLED' | 'PIN_LAST_RETRY' | 'LIMIT_EXCEEDED' | 'RATE_LIMITED'
    | 'NO_SERVICE' | 'NO_READER' | 'NO_TOKEN' | 'CARD_REMOVED' | 'CARD_BUSY' | 'CARD_RESET' | 'CARD_ERROR'
    | 'PIN_INCORRECT' | 'PIN_LOCKED' | 'PIN_REQUIRED' | 'PIN_INVALID' | 'SECURITY_STATUS' | 'AUTH_FAILED'
    | 'KEY_NOT_FOUND' | 'CERT_NOT_FOUND' | 'CERT_INVALID' | 'CERT_KEY_MISMATCH' | 'CERT_EXPIRED' | 'NOT_YET_VALID'
    | 'CHAIN_INVALID' | 'KEY_REJECTED' | 'ENVELOPE_INVALID' | 'DECRYPT_FAILED' | 'SIGNATURE_INVALID'
    | 'RENEWAL_IN_PROGRESS' | 'RENEWAL_NOT_FOUND' | 'RENEWAL_STATE' | 'NO_STAGING_SLOT'
    | (string & {});

export interface Messages { en: string; 'zh-CN': string }

export declare class UkeyError extends Error {
    constructor(reason: Reason, opts?: { messages?: Messages; retriable?: boolean; code?: number; data?: Record<string, unknown>; lang?: Lang });
    readonly name: 'UkeyError';
    /** Stable machine name: decide on this, never on the text. Unknown daemon reasons become 'INTERNAL' (data.reason keeps them). */
    readonly reason: Reason;
    /** Sending the same request again may succeed once something transient has cleared. */
    readonly retriable: boolean;
    /** JSON-RPC error code (group code for application reasons). */
    readonly code: number;
    /** The user message in both languages, with what the SDK knows added (retries left, dates). */
    readonly messages: Messages;
    readonly lang: Lang;
    /** error.data from the daemon (retries_left, not_before, field, detail…) or the SDK's facts (ports, permission…). */
    readonly data: Record<string, any>;
    /** With NOT_PAIRED: the open connection, to call pair() on. */
    ukey?: Ukey;
    text(lang: Lang): string;
}

export interface ConnectOptions {
    prefer?: 'extension' | 'wss';
    /** Only the extension; EXTENSION_NOT_INSTALLED when it is missing. */
    requireExtension?: boolean;
    /** How long to wait for the extension's answer to ping (ms, default 300). */
    extensionTimeoutMs?: number;
    /** WSS ports tried in order (default 28473, 28474, 28475, 38473, 38474). */
    ports?: readonly number[];
    /** How long one WSS port may take to open (ms, default 10000). */
    wssTimeoutMs?: number;
    /** Default timeout of each call (ms, default 30000; 0 for none). */
    timeoutMs?: number;
    /** Lowest acceptable system.hello protocol (default 1). */
    minProtocol?: number;
    /** Language of error messages (default: from navigator.language, zh-CN unless English). */
    lang?: Lang;
    /** WebSocket constructor (default the global one). */
    WebSocket?: { new (url: string): WebSocket } | null;
}

export interface CallOptions { timeoutMs?: number; signal?: AbortSignal }

export interface Hello {
    name: 'ukeyd';
    protocol: number;
    version: string;
    endpoint: 'wss' | 'unix' | 'native-messaging';
    origin: string | null;
    access?: 'allowed' | 'paired' | 'pairable' | 'local';
    wss_port?: number | null;
    methods?: string[];
    events?: string[];
    limits?: Record<string, number>;
    [k: string]: unknown;
}

export interface Token {
    id: string | null;
    reader: string;
    present: boolean;
    driver?: string;
    serial?: string;
    label?: string;
    model?: string;
    pin_retries?: number | null;
    [k: string]: unknown;
}

export interface Certificate {
    key: string;
    subject?: string;
    issuer?: string;
    serial?: string;
    not_before?: string;
    not_after?: string;
    status?: 'valid' | 'expiring' | 'expired' | 'not_yet_valid';
    days_left?: number;
    valid_from?: string;
    days_until_valid?: number;
    key_algorithm?: string;
    fingerprint_sha256?: string;
    der?: string;
    error?: { reason: string; en: string; 'zh-CN': string };
    [k: string]: unknown;
}

export type SignAlgorithm =
    | 'RSA-PKCS1-SHA256' | 'RSA-PKCS1-SHA384' | 'RSA-PKCS1-SHA512'
    | 'RSA-PSS-SHA256' | 'RSA-PSS-SHA384' | 'RSA-PSS-SHA512'
    | 'ECDSA-SHA256' | 'ECDSA-SHA384' | 'ECDSA-SHA512'
    | 'SM2-SM3';

export interface SignResult { signature: string; algorithm: SignAlgorithm; key: string }

export interface RenewalRecord {
    renewal_id: string;
    token: string;
    slot: string;
    state: string;
    csr_pem?: string;
    [k: string]: unknown;
}

export type EventName = 'inserted' | 'removed' | 'changed' | 'renewal' | 'token.inserted' | 'token.removed' | 'token.changed' | 'renewal.changed' | 'close';

export interface Transport {
    send(msg: object): void;
    close(): void;
    onmessage: ((msg: any) => void) | null;
    onclose: (() => void) | null;
}

export declare class Ukey {
    constructor(transport: Transport, opts?: { path?: Path; lang?: Lang; timeoutMs?: number });
    readonly path: Path;
    hello: Hello | null;
    readonly closed: boolean;
    lang: Lang;
    timeoutMs: number;
    call<T = any>(method: string, params?: object | unknown[], opts?: CallOptions): Promise<T>;
    tokens(): Promise<Token[]>;
    certs(params: { token: string; der?: boolean }): Promise<Certificate[]>;
    sign(params: { token: string; key: string; algorithm: SignAlgorithm; data?: Bytes; digest?: Bytes }, opts?: CallOptions): Promise<SignResult>;
    readonly renewal: {
        prepare(params: { token: string; slot: string; mode: 'extend' | 'repair'; algorithm?: 'rsa2048' | 'p256' | 'p384' | 'sm2' }): Promise<RenewalRecord>;
        /** encryption_certificate and enveloped_key (SKF dual certificates) come together; pin:
         *  PKCS#11 and SKF tokens (docs/protocol.md, renewal.commit). */
        commit(params: {
            renewal_id: string; certificate: string; chain?: string[]; pin?: string;
            encryption_certificate?: string; enveloped_key?: string;
        }): Promise<RenewalRecord>;
        status(id: string | { renewal_id: string }): Promise<RenewalRecord>;
        list(): Promise<RenewalRecord[]>;
        abort(id: string | { renewal_id: string }): Promise<RenewalRecord>;
    };
    /** Asks ukeyd to approve this site (ukeyd shows a dialog); resolves the new hello. */
    pair(opts?: { timeoutMs?: number }): Promise<Hello>;
    on(name: 'inserted' | 'removed' | 'changed' | 'token.inserted' | 'token.removed' | 'token.changed', fn: (params: { token: Token }, method: string) => void): Promise<void>;
    on(name: 'renewal' | 'renewal.changed', fn: (params: { renewal: RenewalRecord }, method: string) => void): Promise<void>;
    on(name: 'close', fn: (params: { reason: Reason }) => void): Promise<void>;
    off(name: EventName, fn: (...args: any[]) => void): void;
    close(): void;
}

export declare function connect(options?: ConnectOptions): Promise<Ukey>;
export declare function connectTransport(transport: Transport, options?: ConnectOptions & { path?: Path; helloTimeoutMs?: number }): Promise<Ukey>;
export declare function errorFromRpc(error: unknown, lang?: Lang): UkeyError;
export declare function knownReasons(): string[];
export declare function toBase64(input: Bytes): string;
export declare function fromBase64(b64: string): Uint8Array;
