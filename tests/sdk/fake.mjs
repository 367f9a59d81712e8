// A fake transport for the SDK: records what the SDK sends, lets the test answer.
export class FakeTransport {
    constructor() {
        this.sent = [];
        this.waiters = [];
        this.onmessage = null;
        this.onclose = null;
        this.closed = false;
    }

    send(obj) {
        if (this.closed) throw new Error('closed');
        // What goes on the wire is JSON: a round trip catches anything that would not survive it.
        const m = JSON.parse(JSON.stringify(obj));
        this.sent.push(m);
        const w = this.waiters.shift();
        if (w) w(m);
    }

    // Resolves the next request the SDK sends (or one already sent and not yet taken).
    next() {
        return new Promise((resolve) => {
            if (this.taken === undefined) this.taken = 0;
            if (this.sent.length > this.taken) resolve(this.sent[this.taken++]);
            else this.waiters.push((m) => { this.taken++; resolve(m); });
        });
    }

    answer(msg) {
        this.onmessage(JSON.parse(JSON.stringify(msg)));
    }

    drop() {
        this.closed = true;
        if (this.onclose) this.onclose();
    }

    close() {
        this.closed = true;
    }
}

// A transport whose system.hello is answered with `hello`.
export function helloTransport(hello) {
    const t = new FakeTransport();
    t.next().then((m) => t.answer({ jsonrpc: '2.0', id: m.id, result: hello }));
    return t;
}
