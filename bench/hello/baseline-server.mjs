// baseline-server.mjs: the Node.js baseline for bench/run-hello.
//
// What an Electron/Node helper would run for the same job: an HTTPS server (node:https, the same
// certificate and key as ukeyd) with the `ws` package on it, the same Origin allowlist and Host
// check before the upgrade, the same 64 KiB message limit, and JSON-RPC 2.0 with a method table.
// system.hello answers with the same fields as ukeyd's (name, protocol, version, endpoint,
// origin, wss_port, methods, events, limits); the lists and limits are read from an answer of
// the ukeyd under test (--template), and the result object is built and serialised per call, as
// ukeyd does.
//
// usage: node baseline-server.mjs --port P --cert server.pem --key server.key
//                                 --template hello.json --origin O [--origin O2 ...]
// Prints "listening PORT" on stdout once it accepts connections; SIGTERM/SIGINT stop it.

import { readFileSync } from 'node:fs';
import https from 'node:https';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    template: { type: 'string' },
    origin: { type: 'string', multiple: true },
  },
});
if (!opt.port || !opt.cert || !opt.key || !opt.template || !opt.origin) {
  console.error('usage: baseline-server.mjs --port P --cert F --key F --template F --origin O...');
  process.exit(2);
}

const port = Number(opt.port);
const origins = new Set(opt.origin);
const hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
const MESSAGE_SIZE = 64 * 1024;

// The template is a whole JSON-RPC answer from ukeyd's system.hello.
const tpl = JSON.parse(readFileSync(opt.template, 'utf8')).result;

function rpcError(id, code, reason, message) {
  return { jsonrpc: '2.0', id, error: { code, message, data: { reason, retriable: false } } };
}

const methods = new Map([
  [
    'system.hello',
    (peer) => ({
      methods: [...tpl.methods],
      events: [...tpl.events],
      limits: {
        message_size: tpl.limits.message_size,
        json_depth: tpl.limits.json_depth,
        pending_per_connection: tpl.limits.pending_per_connection,
      },
      name: 'baseline',
      protocol: tpl.protocol,
      version: tpl.version,
      endpoint: 'wss',
      origin: peer.origin,
      wss_port: port,
    }),
  ],
]);

function handle(peer, text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return rpcError(null, -32700, 'PARSE_ERROR', 'The message is not valid JSON.');
  }
  if (
    typeof msg !== 'object' || msg === null || Array.isArray(msg) || msg.jsonrpc !== '2.0' ||
    typeof msg.method !== 'string' ||
    ('id' in msg && typeof msg.id !== 'number' && typeof msg.id !== 'string')
  ) {
    return rpcError(null, -32600, 'INVALID_REQUEST', 'Not a valid JSON-RPC 2.0 request.');
  }
  const isRequest = 'id' in msg;
  const fn = methods.get(msg.method);
  if (!fn) {
    return isRequest ? rpcError(msg.id, -32601, 'METHOD_NOT_FOUND', 'No such method.') : null;
  }
  const result = fn(peer, msg.params);
  return isRequest ? { jsonrpc: '2.0', id: msg.id, result } : null;
}

const server = https.createServer({
  cert: readFileSync(opt.cert),
  key: readFileSync(opt.key),
});
server.on('request', (req, res) => {
  res.writeHead(404).end('NOT_FOUND');
});

const wss = new WebSocketServer({
  server,
  maxPayload: MESSAGE_SIZE,
  perMessageDeflate: false,
  verifyClient: (info, done) => {
    const ok = origins.has(info.origin) && hosts.has(info.req.headers.host);
    done(ok, 403, 'Forbidden');
  },
});

wss.on('connection', (ws, req) => {
  const peer = { origin: req.headers.origin };
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.close(1003);
      return;
    }
    const reply = handle(peer, data.toString('utf8'));
    if (reply) ws.send(JSON.stringify(reply));
  });
  ws.on('error', () => ws.terminate());
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const ws of wss.clients) ws.terminate();
    wss.close();
    server.close(() => process.exit(0));
  });
}
