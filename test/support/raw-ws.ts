import WebSocket from 'ws';
import { PROTOCOL_VERSION, encodeFrame, parseMessage, validateServerFrame } from '../../src/protocol/index.js';
import type { AppendFrame, ClientFrame, ErrorCode, ErrorFrame, ServerFrame, TimelineEvent, WelcomeFrame } from '../../src/protocol/index.js';
import { within } from './wait.js';

/**
 * A raw protocol client over the `ws` package, for tests that need to send exactly what they
 * like (malformed frames included) and look at exactly what the relay answers. Every frame the
 * relay sends is decoded with the protocol's own schema; one that does not decode is recorded in
 * `undecodable` (a relay bug).
 */
export interface RawOpenOptions {
  /** Token to present; absent: none. */
  token?: string;
  /** How to present it (default: Authorization header). */
  via?: 'header' | 'query';
  /** Largest message the client accepts (default: ws's 100 MiB). */
  maxPayload?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

type Waiter = { match: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void };

export class RawClient {
  readonly ws: WebSocket;
  /** Every frame received, in order. */
  readonly received: ServerFrame[] = [];
  readonly undecodable: unknown[] = [];
  readonly closed: Promise<CloseInfo>;
  #closeInfo: CloseInfo | undefined;
  /** Frames not yet taken by take(). */
  #unread: ServerFrame[] = [];
  #waiters: Waiter[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.#closeInfo = { code, reason: reason.toString() };
        resolve(this.#closeInfo);
      });
    });
    ws.on('error', () => {
      /* a 'close' always follows */
    });
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      let values: unknown[];
      try {
        values = parseMessage(isBinary ? new Uint8Array(buf) : buf.toString('utf8'));
      } catch (err) {
        this.undecodable.push(err);
        return;
      }
      // One message may carry several frames (a coalesced batch).
      for (const value of values) {
        try {
          this.#deliver(validateServerFrame(value));
        } catch (err) {
          this.undecodable.push(err);
        }
      }
    });
  }

  #deliver(frame: ServerFrame): void {
    this.received.push(frame);
    const i = this.#waiters.findIndex((w) => w.match(frame));
    if (i >= 0) {
      const [w] = this.#waiters.splice(i, 1);
      w!.resolve(frame);
    } else {
      this.#unread.push(frame);
    }
  }

  /** Opens a WebSocket to the session's endpoint; resolves once the upgrade is done. */
  static open(baseUrl: string, sessionId: string, opts: RawOpenOptions = {}): Promise<RawClient> {
    const url = new URL(`/v1/sessions/${encodeURIComponent(sessionId)}/ws`, baseUrl);
    url.protocol = 'ws:';
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) {
      if (opts.via === 'query') url.searchParams.set('token', opts.token);
      else headers['authorization'] = `Bearer ${opts.token}`;
    }
    const ws = new WebSocket(url, { headers, perMessageDeflate: false, ...(opts.maxPayload ? { maxPayload: opts.maxPayload } : {}) });
    const client = new RawClient(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  /** Opens and says hello; resolves with the client and its welcome. */
  static async connect(
    baseUrl: string,
    sessionId: string,
    token: string,
    hello: Partial<Omit<Extract<ClientFrame, { type: 'hello' }>, 'type' | 'v'>> = {},
  ): Promise<{ client: RawClient; welcome: WelcomeFrame }> {
    const client = await RawClient.open(baseUrl, sessionId, { token });
    const welcome = await client.hello(hello);
    return { client, welcome };
  }

  get closeInfo(): CloseInfo | undefined {
    return this.#closeInfo;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends raw bytes or text exactly as given. */
  send(raw: string | Uint8Array): void {
    this.ws.send(raw, { binary: typeof raw !== 'string' });
  }

  sendFrame(frame: ClientFrame): void {
    this.send(encodeFrame(frame));
  }

  async hello(fields: Partial<Omit<Extract<ClientFrame, { type: 'hello' }>, 'type' | 'v'>> = {}): Promise<WelcomeFrame> {
    this.sendFrame({ type: 'hello', v: PROTOCOL_VERSION, ...fields });
    const f = await this.take((f) => f.type === 'welcome' || (f.type === 'error' && f.fatal), 'welcome');
    if (f.type === 'error') throw new Error(`hello refused: ${f.code} ${f.message}`);
    return f as WelcomeFrame;
  }

  /**
   * The first unread frame matching `match` (waiting for it if none has arrived); it is removed
   * from the unread frames. Rejects if the connection closes first or after `timeoutMs`.
   */
  take<T extends ServerFrame = ServerFrame>(match: (f: ServerFrame) => boolean, what = 'a frame', timeoutMs = 5000): Promise<T> {
    const i = this.#unread.findIndex(match);
    if (i >= 0) return Promise.resolve(this.#unread.splice(i, 1)[0] as T);
    let waiter: Waiter | undefined;
    const arrived = new Promise<ServerFrame>((resolve) => {
      waiter = { match, resolve };
      this.#waiters.push(waiter);
    });
    const closedFirst = this.closed.then((c) => {
      // Let frames delivered in the same tick as the close be matched first.
      return new Promise<never>((_, reject) =>
        setImmediate(() => reject(new Error(`connection closed (${c.code} ${c.reason}) while waiting for ${what}`))),
      );
    });
    return within(Promise.race([arrived, closedFirst]), timeoutMs, what).finally(() => {
      const w = this.#waiters.indexOf(waiter!);
      if (w >= 0) this.#waiters.splice(w, 1);
    }) as Promise<T>;
  }

  /** The next error frame (optionally with this code). */
  error(code?: ErrorCode, timeoutMs?: number): Promise<ErrorFrame> {
    return this.take<ErrorFrame>((f) => f.type === 'error' && (code === undefined || f.code === code), `error ${code ?? ''}`, timeoutMs);
  }

  /** Appends and waits for the answer to this producer ref: `appended` or `error`. */
  async append(frame: Omit<AppendFrame, 'type'>): Promise<Extract<ServerFrame, { type: 'appended' | 'error' }>> {
    this.sendFrame({ type: 'append', ...frame });
    const p = frame.producer;
    return this.take(
      (f) =>
        (f.type === 'appended' || f.type === 'error') &&
        f.producer !== undefined &&
        f.producer.id === p.id &&
        f.producer.epoch === p.epoch &&
        f.producer.seq === p.seq,
      `answer to append ${p.id}/${p.epoch}/${p.seq}`,
    );
  }

  /** Round trip: a ping answered by its pong (the connection is alive and serving). */
  async ping(id = Math.floor(Math.random() * 1e9)): Promise<void> {
    this.sendFrame({ type: 'ping', id });
    await this.take((f) => f.type === 'pong' && f.id === id, `pong ${id}`);
  }

  /** Event frames received so far, in order. */
  get events(): TimelineEvent[] {
    return this.received.flatMap((f) => (f.type === 'event' ? [f.event] : []));
  }

  /** Closes (politely, then forcibly) and waits for the close. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(1000, 'test done');
    const timer = setTimeout(() => this.ws.terminate(), 1000);
    await this.closed;
    clearTimeout(timer);
  }
}

