import { LifelineError } from '../protocol/index.js';
import type { ClientLink, ClientTransport, ConnectTarget } from '../sdk/client-transport.js';

/** The WebSocket URL of a session, with the token in the query (browsers cannot set headers). */
export function browserWsUrl(target: ConnectTarget): string {
  const url = new URL(`/v1/sessions/${encodeURIComponent(target.sessionId)}/ws`, target.baseUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('token', target.token);
  return url.toString();
}

class BrowserWsLink implements ClientLink {
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  onClose: ((code: number, reason: string) => void) | undefined;
  readonly #ws: WebSocket;

  constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e: MessageEvent<string | ArrayBuffer>) => {
      this.onMessage?.(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
    };
    ws.onclose = (e) => {
      const cb = this.onClose;
      this.onClose = undefined;
      cb?.(e.code, e.reason);
    };
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(data: string | Uint8Array): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(typeof data === 'string' ? data : new Uint8Array(data));
  }

  close(code = 1000, reason = ''): void {
    if (this.#ws.readyState === WebSocket.CLOSED || this.#ws.readyState === WebSocket.CLOSING) return;
    // Browsers only let pages send 1000 and 3000–4999.
    this.#ws.close(code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000, reason.slice(0, 100));
    // The browser fires `close` only after the closing handshake: report it now, the link is over.
    const cb = this.onClose;
    this.onClose = undefined;
    cb?.(code, reason);
  }
}

/** WebSocket transport for browsers: the fallback when UDP (WebRTC) is blocked. */
export function browserWsTransport(): ClientTransport {
  return {
    name: 'ws',
    connect(target: ConnectTarget, signal: AbortSignal): Promise<ClientLink> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(browserWsUrl(target));
        ws.binaryType = 'arraybuffer';
        const onAbort = (): void => {
          ws.close();
          reject(new LifelineError('CONNECTION_CLOSED', 'aborted'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        ws.onopen = () => {
          signal.removeEventListener('abort', onAbort);
          resolve(new BrowserWsLink(ws));
        };
        ws.onerror = () => {
          signal.removeEventListener('abort', onAbort);
          reject(new LifelineError('CONNECTION_CLOSED', 'WebSocket failed'));
        };
      });
    },
  };
}
