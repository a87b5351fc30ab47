import WebSocket from 'ws';
import { LifelineError, encodeFrame, parseMessage, validateServerFrame } from '../protocol/index.js';
import type { Json } from '../protocol/index.js';
import type { ClientTransport } from './client-transport.js';
import { wsTransport } from './node-ws.js';
import { LifelineSession } from './session.js';
import type { LeaseGrant } from './session.js';

/** One session handed to this worker: its lease is claimed and the session reads from the cursor. */
export interface AgentJob {
  sessionId: string;
  role: string;
  /** Why the relay handed it over: a new session, the previous holder died, or a handoff. */
  reason: 'created' | 'expired' | 'released' | 'handoff';
  /** The previous holder (expired or handoff). */
  from?: string | undefined;
  /** What the previous holder passed on a handoff. */
  context?: Json | undefined;
  /** Connected, lease claimed, stream positioned after `lease.cursor`. */
  session: LifelineSession;
  lease: LeaseGrant;
  /** Aborted when the worker closes or loses the lease. */
  signal: AbortSignal;
  /** Everything up to `offset` is handled: a replacement starts after it. */
  commit(offset: string): void;
  /** Moves the session to another worker, without a gap; ends this job. */
  handoff(to: string, context?: Json): Promise<void>;
}

export interface WorkerOptions {
  /** Relay base URL. */
  url: string;
  /** An agent token for every session (`lifeline token --session '*' --role agent --participant <id>`). */
  token: string;
  /** This worker's id: the token's participant. */
  id: string;
  roles: string[];
  /** Sessions at once (default 16). */
  capacity?: number;
  /** Transport for the session connections (default WebSocket). */
  transport?: () => ClientTransport;
  /** Runs each job; when it resolves, the lease is released and the session closed. */
  handle: (job: AgentJob) => Promise<void>;
  onError?: (err: unknown, sessionId?: string) => void;
}

function workersUrl(base: string): string {
  const url = new URL('/v1/workers/ws', base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

/**
 * An agent worker process: registers with the relay, is handed sessions, and runs `handle` for
 * each with the role's lease held — starting from what earlier holders committed. If the worker
 * dies, its leases expire (sub-second by default) and the relay hands the sessions to another
 * worker at epoch + 1; this one, if it ever comes back, is fenced.
 */
export class AgentWorker {
  readonly #opts: WorkerOptions;
  readonly #jobs = new Map<string, { session: LifelineSession; abort: AbortController }>();
  #ws: WebSocket | undefined;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;

  private constructor(opts: WorkerOptions) {
    this.#opts = opts;
  }

  static async start(opts: WorkerOptions): Promise<AgentWorker> {
    const w = new AgentWorker(opts);
    await w.#connect();
    return w;
  }

  /** Sessions being handled now. */
  get jobs(): string[] {
    return [...this.#jobs.keys()];
  }

  #connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(workersUrl(this.#opts.url), { headers: { authorization: `Bearer ${this.#opts.token}` } });
      this.#ws = ws;
      let registered = false;
      ws.on('open', () => {
        ws.send(encodeFrame({ type: 'register', worker: this.#opts.id, roles: this.#opts.roles, capacity: this.#opts.capacity ?? 16 }));
        this.#ping = setInterval(() => ws.readyState === ws.OPEN && ws.send(encodeFrame({ type: 'ping', id: 0 })), 1000);
        registered = true;
        resolve();
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        try {
          for (const value of parseMessage(isBinary ? data : data.toString('utf8'))) {
            const frame = validateServerFrame(value);
            if (frame.type === 'assign') void this.#run(frame);
            else if (frame.type === 'error') this.#opts.onError?.(new LifelineError(frame.code, frame.message));
          }
        } catch (err) {
          this.#opts.onError?.(err);
        }
      });
      ws.on('error', (err) => {
        if (!registered) reject(err);
      });
      ws.on('close', () => {
        clearInterval(this.#ping);
        if (this.#closed) return;
        // Keep the jobs; register again so new sessions keep coming.
        this.#retry = setTimeout(() => void this.#connect().catch((err: unknown) => this.#opts.onError?.(err)), 200);
      });
    });
  }

  async #run(a: { session: string; role: string; reason: AgentJob['reason']; from?: string | undefined; context?: Json | undefined }): Promise<void> {
    const key = `${a.session}\u0000${a.role}`;
    if (this.#jobs.has(key) || this.#closed) return;
    const abort = new AbortController();
    let session: LifelineSession | undefined;
    try {
      session = await LifelineSession.connect({
        url: this.#opts.url,
        token: this.#opts.token,
        session: a.session,
        device: this.#opts.id,
        transport: this.#opts.transport?.() ?? wsTransport(),
      });
      this.#jobs.set(key, { session, abort });
      const lease = await session.claim(a.role);
      session.stream.resume(lease.cursor);
      session.on('state', (c) => {
        if (c.state === 'closed') abort.abort();
      });
      const s = session;
      await this.#opts.handle({
        sessionId: a.session,
        role: a.role,
        reason: a.reason,
        from: a.from,
        context: a.context,
        session: s,
        lease,
        signal: abort.signal,
        commit: (offset) => s.commit(a.role, offset),
        handoff: async (to, context) => {
          await s.release(a.role, { to, ...(context !== undefined ? { context } : {}) });
          abort.abort();
        },
      });
      if (!abort.signal.aborted) await session.release(a.role);
    } catch (err) {
      if (!abort.signal.aborted) this.#opts.onError?.(err, a.session);
    } finally {
      abort.abort();
      await session?.flush().catch(() => undefined);
      session?.close();
      this.#jobs.delete(key);
    }
  }

  /** Stops taking sessions and closes every job's session (their leases then expire). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearInterval(this.#ping);
    this.#ws?.close(1000);
    for (const { session, abort } of this.#jobs.values()) {
      abort.abort();
      session.close();
    }
    this.#jobs.clear();
  }
}
