/**
 * The bare-werift baseline: a forwarder and nothing else, in its own process (like the relay), on
 * 127.0.0.1 and a free port; prints `listening on http://127.0.0.1:PORT` first.
 *
 * A pair is one receiver and one sender sharing an id. The receiver is always a werift peer
 * connection (the harness offers, this process answers); the sender is either another werift
 * peer connection (bare werift → werift → werift) or a WebSocket (ws → werift, the relay's own
 * topology: agents on WebSocket, users on WebRTC). Every message arriving from the sender is
 * forwarded unchanged — text as text, binary as binary — on the receiver's data channel. No
 * parsing, no storage, no acknowledgement, no coalescing: the floor any WebRTC relay built on
 * werift, on the same loopback and runtime, is measured against.
 *
 *   POST   /pairs/<id>/recv     body: SDP offer  →  201, SDP answer     (the receiving peer)
 *   POST   /pairs/<id>/send     body: SDP offer  →  201, SDP answer     (a sending peer)
 *   GET    /pairs/<id>/send-ws  WebSocket upgrade                       (a sending socket)
 *   DELETE /pairs/<id>                           →  204                 (closes the pair)
 *
 * Signaling is not trickle: offers and answers carry every (loopback) candidate. Every channel
 * (and the socket) gets one text message "ready" from this side once it is open here, before
 * anything else, so the harness knows when it may send. ICE is restricted to 127.0.0.1.
 *
 *   node --import tsx native-free-bench/baselines/werift-echo-server.ts [--port N]
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RTCDataChannel, RTCPeerConnection } from 'werift';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { benchChannel, closePeer, localAnswer, loopbackPeer } from './werift-peer.js';

interface Pair {
  recv?: { pc: RTCPeerConnection; dc: RTCDataChannel };
  send?: { pc: RTCPeerConnection; dc: RTCDataChannel };
  sendWs?: WebSocket;
}

const portArg = process.argv.indexOf('--port');
const port = portArg >= 0 ? Number(process.argv[portArg + 1]) : 0;
const MAX_PAIRS = 4096;
const MAX_SDP_BYTES = 64 * 1024;
const pairs = new Map<string, Pair>();
const ROUTE = /^\/pairs\/([A-Za-z0-9._-]{1,128})(?:\/(recv|send|send-ws))?$/;

function forward(pair: Pair, data: string | Buffer): void {
  const to = pair.recv?.dc;
  if (to && to.readyState === 'open') to.send(data);
}

function whenOpen(dc: RTCDataChannel, then: () => void): void {
  if (dc.readyState === 'open') return then();
  const sub = dc.stateChanged.subscribe((state) => {
    if (state === 'open') {
      sub.unSubscribe();
      then();
    }
  });
}

function closePair(id: string): void {
  const pair = pairs.get(id);
  if (!pair) return;
  pairs.delete(id);
  if (pair.recv) void closePeer(pair.recv.pc);
  if (pair.send) void closePeer(pair.send.pc);
  pair.sendWs?.terminate();
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (s: string) => {
      body += s;
      if (body.length > MAX_SDP_BYTES) {
        reject(new Error('offer too large'));
        req.destroy();
      }
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

async function answer(id: string, role: 'recv' | 'send', offer: string): Promise<string> {
  let pair = pairs.get(id);
  if (!pair) {
    if (pairs.size >= MAX_PAIRS) throw new Error('too many pairs');
    pairs.set(id, (pair = {}));
  }
  if (pair[role]) throw new Error(`${role} of ${id} is taken`);
  const pc = loopbackPeer();
  const dc = benchChannel(pc);
  pair[role] = { pc, dc };
  const p = pair;
  if (role === 'send') dc.onMessage.subscribe((data) => forward(p, data));
  pc.connectionStateChange.subscribe((state) => {
    if (state === 'closed' || state === 'failed') closePair(id);
  });
  whenOpen(dc, () => dc.send('ready'));
  try {
    return await localAnswer(pc, offer);
  } catch (err) {
    closePair(id);
    throw err;
  }
}

const http = createServer((req: IncomingMessage, res: ServerResponse) => {
  const m = ROUTE.exec(req.url ?? '');
  const reply = (status: number, body = '', type = 'text/plain'): void => {
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  };
  if (!m) return reply(404, 'use /pairs/<id>/{recv,send,send-ws}');
  const id = m[1]!;
  const role = m[2];
  if (req.method === 'DELETE' && role === undefined) {
    closePair(id);
    return reply(204);
  }
  if (req.method !== 'POST' || (role !== 'recv' && role !== 'send')) return reply(405);
  readBody(req)
    .then((offer) => answer(id, role, offer))
    .then(
      (sdp) => reply(201, sdp, 'application/sdp'),
      (err: unknown) => reply(400, err instanceof Error ? err.message : String(err)),
    );
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
http.on('upgrade', (req, socket, head) => {
  const m = ROUTE.exec(req.url ?? '');
  const pair = m && m[2] === 'send-ws' ? pairs.get(m[1]!) : undefined;
  if (!m || !pair || !pair.recv || pair.sendWs) {
    socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    pair.sendWs = ws;
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      forward(pair, isBinary ? buf : buf.toString('utf8'));
    });
    ws.on('close', () => {
      if (pair.sendWs === ws) delete pair.sendWs;
    });
    ws.on('error', () => {
      /* 'close' follows */
    });
    ws.send('ready');
  });
});

http.listen(port, '127.0.0.1', () => {
  const addr = http.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  process.stdout.write(`listening on http://127.0.0.1:${actual}\n`);
});

http.on('error', (err) => {
  process.stderr.write(`werift-echo-server: ${err.message}\n`);
  process.exit(1);
});

const stop = (): void => {
  for (const id of [...pairs.keys()]) closePair(id);
  for (const c of wss.clients) c.terminate();
  http.close(() => process.exit(0));
  http.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
// lib/orphan-guard (preloaded by the harness) turns the end of stdin into SIGTERM.
