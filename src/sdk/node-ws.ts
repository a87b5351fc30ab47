import WebSocket from 'ws';
import { SocketCork } from '../protocol/socket-cork.js';
import type { Corkable } from '../protocol/socket-cork.js';
import type { ClientLink, ClientTransport, ConnectTarget } from './client-transport.js';

/** The WebSocket URL of a session on a relay. */
export function wsUrlOf(target: ConnectTarget): string {
  const url = new URL(`/v1/sessions/${encodeURIComponent(target.sessionId)}/ws`, target.baseUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

class NodeWsLink implements ClientLink {
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  onClose: ((code: number, reason: string) => void) | undefined;
  readonly #ws: WebSocket;
  readonly #cork: SocketCork;

  /** `socket` is the connection `ws` writes to (the upgrade response's). */
  constructor(ws: WebSocket, socket: Corkable) {
    this.#ws = ws;
    this.#cork = new SocketCork(socket, process.nextTick);
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      this.onMessage?.(isBinary ? buf : buf.toString('utf8'));
    });
    ws.once('close', (code, reason) => this.onClose?.(code, reason.toString()));
    ws.on('error', () => {
      /* a 'close' always follows */
    });
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(data: string | Uint8Array): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    // The appends of one turn (a burst of tokens) leave in one write.
    this.#cork.hold();
    this.#ws.send(data);
  }

  close(code = 1000, reason = ''): void {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    if (this.#ws.readyState === WebSocket.CONNECTING) this.#ws.terminate();
    else this.#ws.close(code, reason);
    // Do not wait for the closing handshake of a link we gave up on.
    setTimeout(() => this.#ws.terminate(), 1000).unref();
  }
}

/** WebSocket transport for Node (the `ws` package). The token travels in the Authorization header. */
export function wsTransport(): ClientTransport {
  return {
    name: 'ws',
    connect(target: ConnectTarget, signal: AbortSignal): Promise<ClientLink> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(wsUrlOf(target), { headers: { authorization: `Bearer ${target.token}` }, perMessageDeflate: false });
        const onAbort = (): void => {
          ws.terminate();
          reject(new Error('aborted'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        let socket: Corkable | undefined;
        ws.once('upgrade', (res) => {
          socket = res.socket;
        });
        ws.once('open', () => {
          signal.removeEventListener('abort', onAbort);
          resolve(new NodeWsLink(ws, socket ?? { cork() {}, uncork() {} }));
        });
        ws.once('error', (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        });
      });
    },
  };
}
