import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type {} from '@fastify/websocket';
import { ANY_SESSION, LifelineError, encodeFrame, isLifelineError, parseMessage, validateClientFrame } from '../protocol/index.js';
import type { Json, ServerFrame, TokenClaims } from '../protocol/index.js';
import type { LeaseRecord } from '../store/index.js';

type Reason = 'created' | 'expired' | 'released' | 'handoff';

interface Assignment {
  sessionId: string;
  role: string;
  reason: Reason;
  to?: string | undefined;
  from?: string | undefined;
  context?: Json | undefined;
}

interface Queued extends Assignment {
  /** Ends the wait for the named worker `to` (after handoffWaitMs): any worker may take it then. */
  waitTimer?: NodeJS.Timeout | undefined;
}

interface Worker {
  id: string;
  roles: Set<string>;
  capacity: number;
  socket: WebSocket;
  /** Sessions/roles assigned to it and not yet released or expired. */
  assigned: Set<string>;
}

export interface WorkerPoolOptions {
  authorize: (req: FastifyRequest) => Promise<TokenClaims>;
  /**
   * How long a handoff waits for the worker it names to register or have room (ms). After that
   * the session goes to any worker with the role, so a handoff to a worker that never comes does
   * not leave the session without an agent. Default 10 s.
   */
  handoffWaitMs?: number;
  onAssign?: (a: Assignment, worker: string) => void;
  /** A handoff's named worker did not come in time; the session is offered to every worker. */
  onHandoffTimeout?: (a: Assignment) => void;
}

/**
 * Agent workers register here (`GET /v1/workers/ws` with an agent token for every session) and
 * are handed sessions: when a session is created with an agent role, when a lease expires (its
 * holder died), and on handoff. The least loaded worker with room takes each; assignments wait
 * in a queue until one has room. A handoff to a named worker waits for that worker at most
 * `handoffWaitMs`, then goes to any worker with the role.
 */
export class WorkerPool {
  readonly #opts: WorkerPoolOptions;
  readonly #workers = new Map<string, Worker>();
  readonly #queue: Queued[] = [];

  constructor(opts: WorkerPoolOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#workers.size;
  }

  get queued(): number {
    return this.#queue.length;
  }

  register(app: FastifyInstance): void {
    app.get('/v1/workers/ws', { websocket: true }, (socket, req) => {
      let worker: Worker | undefined;
      let claims: TokenClaims | undefined;
      const pending: (string | Uint8Array)[] = [];
      const send = (frame: ServerFrame): void => {
        if (socket.readyState === socket.OPEN) socket.send(encodeFrame(frame));
      };
      const fail = (err: LifelineError): void => {
        send({ type: 'error', code: err.code, message: err.message, fatal: true });
        socket.close(err.closeCode, err.code);
      };
      const handle = (raw: string | Uint8Array): void => {
        try {
          for (const value of parseMessage(raw)) {
            const frame = validateClientFrame(value);
            if (frame.type === 'ping') send({ type: 'pong', id: frame.id, ...(frame.t !== undefined ? { t: frame.t } : {}) });
            else if (frame.type === 'register') {
              if (claims?.role === 'agent' && claims.participant !== frame.worker) {
                throw new LifelineError('FORBIDDEN', `this token is for worker ${claims.participant}`);
              }
              if (this.#workers.has(frame.worker)) throw new LifelineError('BAD_FRAME', `worker ${frame.worker} is already registered`);
              worker = { id: frame.worker, roles: new Set(frame.roles), capacity: frame.capacity, socket, assigned: new Set() };
              this.#workers.set(worker.id, worker);
              this.#drain();
            } else throw new LifelineError('BAD_FRAME', `${frame.type} does not belong on the worker channel`);
          }
        } catch (err) {
          fail(isLifelineError(err) ? err : new LifelineError('BAD_FRAME'));
        }
      };
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        const raw = isBinary ? data : data.toString('utf8');
        if (claims) handle(raw);
        else pending.push(raw);
      });
      socket.on('close', () => {
        if (worker && this.#workers.get(worker.id) === worker) this.#workers.delete(worker.id);
      });
      this.#opts.authorize(req).then(
        (c) => {
          if (c.session !== ANY_SESSION || (c.role !== 'agent' && c.role !== 'admin')) {
            fail(new LifelineError('FORBIDDEN', 'workers need an agent token for every session ("*")'));
            return;
          }
          claims = c;
          for (const raw of pending.splice(0)) handle(raw);
        },
        (err: unknown) => fail(isLifelineError(err) ? err : new LifelineError('UNAUTHORIZED')),
      );
    });
  }

  /** Hands `role` of a session to a worker (`to` if it is registered), or queues it. */
  assign(a: Assignment): void {
    const q: Queued = { ...a };
    this.#queue.push(q);
    this.#drain();
    if (q.to !== undefined && this.#queue.includes(q)) {
      q.waitTimer = setTimeout(() => {
        q.waitTimer = undefined;
        if (!this.#queue.includes(q)) return;
        this.#opts.onHandoffTimeout?.(q);
        q.to = undefined;
        this.#drain();
      }, this.#opts.handoffWaitMs ?? 10_000);
      q.waitTimer.unref();
    }
  }

  /** A lease ended (released or expired): the worker has room again. */
  ended(lease: LeaseRecord): void {
    if (lease.holder) this.#workers.get(lease.holder)?.assigned.delete(`${lease.sessionId}\u0000${lease.role}`);
    this.#drain();
  }

  /** A session ended: drop its queued assignments and free the slots it held. */
  forgetSession(sessionId: string): void {
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const q = this.#queue[i]!;
      if (q.sessionId !== sessionId) continue;
      clearTimeout(q.waitTimer);
      this.#queue.splice(i, 1);
    }
    for (const w of this.#workers.values()) {
      for (const key of [...w.assigned]) if (key.startsWith(`${sessionId}\u0000`)) w.assigned.delete(key);
    }
    this.#drain();
  }

  #drain(): void {
    for (let i = 0; i < this.#queue.length; ) {
      const a = this.#queue[i]!;
      const worker = this.#pick(a);
      if (!worker) {
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      clearTimeout(a.waitTimer);
      worker.assigned.add(`${a.sessionId}\u0000${a.role}`);
      worker.socket.send(
        encodeFrame({
          type: 'assign',
          session: a.sessionId,
          role: a.role,
          reason: a.reason,
          ...(a.from ? { from: a.from } : {}),
          ...(a.context !== undefined ? { context: a.context } : {}),
        }),
      );
      this.#opts.onAssign?.(a, worker.id);
    }
  }

  #pick(a: Assignment): Worker | undefined {
    const fits = (w: Worker): boolean => w.roles.has(a.role) && w.assigned.size < w.capacity && w.socket.readyState === w.socket.OPEN;
    if (a.to) {
      const target = this.#workers.get(a.to);
      if (target && fits(target)) return target;
      // The named worker is not here (yet): wait for it rather than giving the session away.
      return undefined;
    }
    let best: Worker | undefined;
    for (const w of this.#workers.values()) {
      if (!fits(w) || w.id === a.from) continue;
      if (!best || w.assigned.size < best.assigned.size) best = w;
    }
    // If the only worker with room is the one the session came from, it may take it back.
    if (!best && a.from) {
      const back = this.#workers.get(a.from);
      if (back && fits(back)) best = back;
    }
    return best;
  }

  closeAll(): void {
    for (const w of this.#workers.values()) w.socket.close(1001, 'relay shutting down');
    this.#workers.clear();
    for (const q of this.#queue) clearTimeout(q.waitTimer);
    this.#queue.length = 0;
  }
}
