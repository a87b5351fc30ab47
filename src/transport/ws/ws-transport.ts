import type {} from '@fastify/websocket';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { LifelineError, encodeFrame, isLifelineError } from '../../protocol/index.js';
import type { TokenClaims } from '../../protocol/index.js';
import type { Timeline } from '../../timeline/index.js';
import { SocketCork } from '../../protocol/socket-cork.js';
import type { Corkable } from '../../protocol/socket-cork.js';
import { pollDrain } from '../frame-link.js';
import type { FrameLink } from '../frame-link.js';
import { ProtocolConnection } from '../protocol-connection.js';
import type { ConnectionLimits, ConnectionObserver, ConnectionServices } from '../protocol-connection.js';

export interface WsTransportOptions {
  timeline: Timeline;
  limits: ConnectionLimits;
  /** Verifies the request's token for the session; throws LifelineError. */
  authorize: (req: FastifyRequest, sessionId: string) => Promise<TokenClaims>;
  observer?: ConnectionObserver;
  services?: ConnectionServices;
  /** Told of every connection opened and closed (the relay's registry). */
  registry: { add(c: ProtocolConnection): void; remove(c: ProtocolConnection): void };
}

class WsLink implements FrameLink {
  readonly #ws: WebSocket;
  readonly #cork: SocketCork;
  /** `socket` is the connection `ws` writes to (the upgraded request's). */
  constructor(ws: WebSocket, socket: Corkable) {
    this.#ws = ws;
    this.#cork = new SocketCork(socket, process.nextTick);
  }
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }
  send(data: string | Uint8Array): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    this.#cork.hold();
    this.#ws.send(data);
  }
  waitForDrain(lowWater: number): Promise<void> {
    return pollDrain(this.#ws, () => this.#ws.readyState === this.#ws.OPEN, lowWater);
  }
  close(code: number, reason: string): void {
    if (this.#ws.readyState !== this.#ws.OPEN && this.#ws.readyState !== this.#ws.CONNECTING) return;
    // 1005/1006/1015 report a link already gone and can never be sent in a close frame (ws throws
    // on them): drop the socket instead.
    if (code === 1005 || code === 1006 || code === 1015) {
      this.#ws.terminate();
      return;
    }
    this.#ws.close(code, reason.slice(0, 120));
    // A peer that has stopped reading never answers the closing handshake, and ws would keep its
    // socket for 30 s (its close timeout): that long a graceful shutdown would wait. The close
    // frame has had its chance after a second; then drop the socket (as the SDK's link does).
    setTimeout(() => this.#ws.terminate(), 1000).unref();
  }
}

/**
 * The WebSocket transport: `GET /v1/sessions/:id/ws` upgrades, then speaks protocol frames
 * (text for JSON frames, binary for frames with a payload). Authentication failures are answered
 * with a typed error frame and the matching close code, so clients learn why.
 */
export function registerWsTransport(app: FastifyInstance, opts: WsTransportOptions): void {
  app.get<{ Params: { id: string } }>('/v1/sessions/:id/ws', { websocket: true }, (socket, req) => {
    const link = new WsLink(socket, req.raw.socket);
    const early: (string | Uint8Array)[] = [];
    let conn: ProtocolConnection | undefined;
    let gone = false;
    let refused = false;
    const onMessage = (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void => {
      const raw = isBinary ? toBytes(data) : toBytes(data).toString('utf8');
      if (conn) conn.receive(raw);
      else if (!refused) {
        // Frames sent before authorization finishes are kept, never dropped: past a few, stop
        // reading the socket (back-pressure) until the connection exists.
        early.push(raw);
        if (early.length >= 8) socket.pause();
      }
    };
    socket.on('message', onMessage);
    socket.on('close', (code: number) => {
      gone = true;
      // 1000/1001 is a goodbye (the device left); anything else is a lost link.
      if (code === 1000 || code === 1001) conn?.ended();
      else conn?.linkLost();
    });
    socket.on('error', () => conn?.linkLost());
    const sessionId = req.params.id;
    (async () => {
      const claims = await opts.authorize(req, sessionId);
      await opts.timeline.session(sessionId);
      return claims;
    })().then(
      (claims) => {
        if (gone) return;
        conn = new ProtocolConnection(link, opts.timeline, sessionId, claims, opts.limits, {
          ...opts.observer,
          closed: (c, code, reason) => {
            opts.registry.remove(c);
            opts.observer?.closed?.(c, code, reason);
          },
        }, opts.services);
        opts.registry.add(conn);
        for (const raw of early.splice(0)) conn.receive(raw);
        socket.resume();
      },
      (err: unknown) => {
        refused = true;
        early.length = 0;
        socket.resume();
        const e = isLifelineError(err) ? err : new LifelineError('INTERNAL');
        opts.observer?.error?.(e.code);
        link.send(encodeFrame({ type: 'error', code: e.code, message: e.message, fatal: true }));
        link.close(e.closeCode, e.code);
      },
    );
  });
}

function toBytes(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
