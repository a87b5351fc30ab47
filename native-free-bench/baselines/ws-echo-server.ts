/**
 * The bare-WebSocket baseline: a forwarder and nothing else. Runs as its own process (like the
 * relay) on 127.0.0.1 and a free port, and prints `listening on ws://127.0.0.1:PORT` first.
 *
 * A pair is two sockets sharing an id: `/send/<id>` and `/recv/<id>`. Every message arriving on
 * the sender is forwarded, unchanged, to the receiver. No parsing, no storage, no acknowledgement:
 * the floor any relay on the same loopback, runtime and `ws` library is measured against.
 * Each socket gets one text message "ready" once its pair is registered, before anything else.
 *
 *   node --import tsx native-free-bench/baselines/ws-echo-server.ts [--port N]
 */
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';

interface Pair {
  send?: WebSocket;
  recv?: WebSocket;
}

const portArg = process.argv.indexOf('--port');
const port = portArg >= 0 ? Number(process.argv[portArg + 1]) : 0;
const pairs = new Map<string, Pair>();
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });

wss.on('connection', (ws, req) => {
  const m = /^\/(send|recv)\/([A-Za-z0-9._-]{1,128})$/.exec(req.url ?? '');
  if (!m) {
    ws.close(4404, 'use /send/<id> or /recv/<id>');
    return;
  }
  const role = m[1] as 'send' | 'recv';
  const id = m[2]!;
  let pair = pairs.get(id);
  if (!pair) pairs.set(id, (pair = {}));
  if (pair[role]) {
    ws.close(4409, `${role} of ${id} is taken`);
    return;
  }
  pair[role] = ws;
  const p = pair;
  if (role === 'send') {
    ws.on('message', (data, isBinary) => {
      const to = p.recv;
      if (to && to.readyState === to.OPEN) to.send(data, { binary: isBinary });
    });
  }
  ws.on('close', () => {
    if (p[role] === ws) delete p[role];
    if (!p.send && !p.recv) pairs.delete(id);
  });
  ws.on('error', () => {
    /* 'close' follows */
  });
  ws.send('ready');
});

wss.on('listening', () => {
  const addr = wss.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  process.stdout.write(`listening on ws://127.0.0.1:${actual}\n`);
});

wss.on('error', (err) => {
  process.stderr.write(`ws-echo-server: ${err.message}\n`);
  process.exit(1);
});

const stop = (): void => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
// lib/orphan-guard (preloaded by the harness) turns the end of stdin into SIGTERM.
