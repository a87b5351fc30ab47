/**
 * A userspace TCP impairment proxy for the WebSocket path: one upstream connection to the loopback
 * target per accepted client connection, bytes piped both ways in order.
 *
 * - `impair({ delayMs }, direction)`: every chunk is held for the delay; order is preserved.
 * - `blackhole(true)`: a dead path. Forwarding pauses both ways and bytes are *held*, not dropped
 *   (TCP would retransmit them once the path is back); `blackhole(false)` releases them in order.
 *   While held beyond `maxQueuedBytes` per direction, the proxy stops reading, so the sender's
 *   own buffers fill up exactly as they would on a dead path. Connections still open meanwhile.
 * - `cut()`: every current connection is reset (RST) on both sides.
 * Half-close (FIN) is forwarded in order after the data before it.
 */
import net from 'node:net';
import { DelayQueue } from './delay-queue.js';
import { NetsimError } from './errors.js';
import type { Direction, DirectionSelector } from './impairment.js';
import { LOOPBACK, checkPort, checkTarget, type Target } from './loopback.js';

export interface TcpImpairment {
  /** One-way delay per chunk, ms. */
  delayMs: number;
}

export interface TcpProxyOptions {
  target: Target;
  /** Listen port on 127.0.0.1; 0 (default) lets the kernel choose. */
  port?: number;
  upstream?: Partial<TcpImpairment>;
  downstream?: Partial<TcpImpairment>;
  /** Bytes held per connection and direction before the proxy stops reading (default 1 MiB). */
  maxQueuedBytes?: number;
}

export interface TcpDirectionStats {
  /** Bytes and chunks written onward. */
  bytes: number;
  chunks: number;
  /** Bytes held inside the proxy right now (delay, blackhole, back-pressure). */
  queuedBytes: number;
}

export interface TcpProxyStats {
  connections: { accepted: number; active: number; cut: number; failed: number };
  upstream: TcpDirectionStats;
  downstream: TcpDirectionStats;
}

const END = Symbol('end');
type Chunk = Buffer | typeof END;

/** What a pipe asks its proxy: the current delay, whether the path is dead, where to count. */
interface PipeHooks {
  delayMs(): number;
  blackholed(): boolean;
  forwarded(bytes: number): void;
}

/** One direction of one connection: src's bytes, delayed and maybe held, written to dst. */
class Pipe {
  readonly queue: DelayQueue<Chunk>;
  queuedBytes = 0;
  #holdForDrain = false;
  #readPaused = false;

  constructor(
    readonly src: net.Socket,
    readonly dst: net.Socket,
    readonly direction: Direction,
    readonly hooks: PipeHooks,
    readonly maxQueuedBytes: number,
  ) {
    this.queue = new DelayQueue<Chunk>({ deliver: (c) => this.#deliver(c) });
    src.on('data', (chunk: Buffer) => {
      this.queuedBytes += chunk.length;
      this.#push(chunk);
      this.update();
    });
    src.on('end', () => this.#push(END));
    dst.on('drain', () => {
      this.#holdForDrain = false;
      this.update();
    });
  }

  /** Re-derives whether the queue releases and whether src is read, from the current holds. */
  update(): void {
    if (this.hooks.blackholed() || this.#holdForDrain) this.queue.pause();
    else this.queue.resume();
    const over = this.queuedBytes > this.maxQueuedBytes;
    if (over && !this.#readPaused) {
      this.#readPaused = true;
      this.src.pause();
    } else if (!over && this.#readPaused && this.queuedBytes <= this.maxQueuedBytes / 2) {
      this.#readPaused = false;
      this.src.resume();
    }
  }

  #push(chunk: Chunk): void {
    const dueAt = Math.max(this.queue.now() + this.hooks.delayMs(), this.queue.lastDueAt);
    this.queue.push(chunk, dueAt);
  }

  #deliver(chunk: Chunk): void {
    if (this.dst.destroyed) return;
    if (chunk === END) {
      this.dst.end();
      return;
    }
    this.queuedBytes -= chunk.length;
    this.hooks.forwarded(chunk.length);
    if (!this.dst.write(chunk)) this.#holdForDrain = true;
    this.update(); // may pause the queue mid-flush: the flush stops at the next item
  }
}

interface Connection {
  client: net.Socket;
  upstream: net.Socket;
  pipes: Pipe[];
  closed: Promise<void>;
}

export class TcpProxy {
  readonly target: Readonly<Target>;
  readonly #server: net.Server;
  readonly #maxQueuedBytes: number;
  readonly #impairment: Record<Direction, TcpImpairment>;
  readonly #connections = new Set<Connection>();
  readonly #counts = { accepted: 0, cut: 0, failed: 0 };
  readonly #forwarded: Record<Direction, { bytes: number; chunks: number }> = {
    upstream: { bytes: 0, chunks: 0 },
    downstream: { bytes: 0, chunks: 0 },
  };
  #blackholed = false;
  #closed = false;
  #serverClosed: Promise<void> | undefined;

  static async start(opts: TcpProxyOptions): Promise<TcpProxy> {
    const target = checkTarget(opts.target);
    const port = checkPort(opts.port ?? 0, 'listen port', true);
    const maxQueuedBytes = opts.maxQueuedBytes ?? 1024 * 1024;
    if (!Number.isInteger(maxQueuedBytes) || maxQueuedBytes < 1) {
      throw new NetsimError('NETSIM_ERR_BAD_OPTION', `maxQueuedBytes must be a positive integer, got ${maxQueuedBytes}`);
    }
    const impairment = { upstream: mergeTcp({ delayMs: 0 }, opts.upstream), downstream: mergeTcp({ delayMs: 0 }, opts.downstream) };
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: LOOPBACK, port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return new TcpProxy(server, target, impairment, maxQueuedBytes);
  }

  private constructor(server: net.Server, target: Readonly<Target>, impairment: Record<Direction, TcpImpairment>, maxQueuedBytes: number) {
    this.#server = server;
    this.target = target;
    this.#impairment = impairment;
    this.#maxQueuedBytes = maxQueuedBytes;
    server.on('connection', (client) => this.#accept(client));
    server.on('error', () => undefined); // accept errors (EMFILE…) must not crash a test run
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  get address(): Target {
    return { host: LOOPBACK, port: this.port };
  }

  get blackholed(): boolean {
    return this.#blackholed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  impairment(direction: Direction): Readonly<TcpImpairment> {
    return { ...this.#impairment[direction] };
  }

  /** Changes the delay at runtime (applies to chunks arriving from now on; order is kept). */
  impair(patch: Partial<TcpImpairment>, direction: DirectionSelector = 'both'): void {
    if (this.#closed) throw new NetsimError('NETSIM_ERR_CLOSED');
    const dirs: Direction[] = direction === 'both' ? ['upstream', 'downstream'] : [direction];
    if (!dirs.every((d) => d === 'upstream' || d === 'downstream')) {
      throw new NetsimError('NETSIM_ERR_BAD_OPTION', `direction must be upstream, downstream or both, got ${String(direction)}`);
    }
    const next = dirs.map((d) => mergeTcp(this.#impairment[d], patch));
    dirs.forEach((d, i) => (this.#impairment[d] = next[i] as TcpImpairment));
  }

  /** Pauses (true) or resumes (false) forwarding both ways; held bytes are released in order. */
  blackhole(on = true): void {
    if (this.#closed) throw new NetsimError('NETSIM_ERR_CLOSED');
    this.#blackholed = on;
    for (const c of this.#connections) for (const p of c.pipes) p.update();
  }

  /** Resets every current connection on both sides (RST); returns how many were cut. */
  cut(): number {
    const n = this.#connections.size;
    for (const c of this.#connections) {
      reset(c.client);
      reset(c.upstream);
    }
    this.#counts.cut += n;
    return n;
  }

  stats(): TcpProxyStats {
    const queued = (d: Direction) => {
      let n = 0;
      for (const c of this.#connections) for (const p of c.pipes) if (p.direction === d) n += p.queuedBytes;
      return n;
    };
    return {
      connections: { ...this.#counts, active: this.#connections.size },
      upstream: { ...this.#forwarded.upstream, queuedBytes: queued('upstream') },
      downstream: { ...this.#forwarded.downstream, queuedBytes: queued('downstream') },
    };
  }

  /** What this proxy holds open right now: for leak checks. */
  resources(): { sockets: number; timers: number } {
    let timers = 0;
    for (const c of this.#connections) for (const p of c.pipes) timers += Number(p.queue.timerArmed);
    return { sockets: this.#connections.size * 2 + (this.#server.listening ? 1 : 0), timers };
  }

  /** Stops listening and resets every connection; resolves when every socket is closed. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      for (const c of this.#connections) {
        reset(c.client);
        reset(c.upstream);
      }
    }
    await Promise.all([this.#serverClosed, ...[...this.#connections].map((c) => c.closed)]);
  }

  #accept(client: net.Socket): void {
    if (this.#closed) return void client.destroy();
    this.#counts.accepted++;
    const upstream = net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    const closedOne = (s: net.Socket) => new Promise<void>((resolve) => s.once('close', () => resolve()));
    const conn: Connection = {
      client,
      upstream,
      pipes: [],
      closed: Promise.all([closedOne(client), closedOne(upstream)]).then(() => {
        for (const p of conn.pipes) p.queue.close();
        this.#connections.delete(conn);
      }),
    };
    this.#connections.add(conn);
    let connected = false;
    upstream.once('connect', () => (connected = true));
    // An error or reset on one side resets the other; a graceful close travels as END instead.
    const onError = (side: net.Socket, other: net.Socket) => () => {
      if (side === upstream && !connected) this.#counts.failed++;
      reset(other);
      side.destroy();
    };
    client.on('error', onError(client, upstream));
    upstream.on('error', onError(upstream, client));
    const hooks = (d: Direction): PipeHooks => ({
      delayMs: () => this.#impairment[d].delayMs,
      blackholed: () => this.#blackholed,
      forwarded: (bytes) => {
        this.#forwarded[d].bytes += bytes;
        this.#forwarded[d].chunks++;
      },
    });
    conn.pipes.push(
      new Pipe(client, upstream, 'upstream', hooks('upstream'), this.#maxQueuedBytes),
      new Pipe(upstream, client, 'downstream', hooks('downstream'), this.#maxQueuedBytes),
    );
    client.resume();
  }
}

function mergeTcp(base: TcpImpairment, patch: Partial<TcpImpairment> = {}): TcpImpairment {
  for (const key of Object.keys(patch)) {
    if (key !== 'delayMs') throw new NetsimError('NETSIM_ERR_BAD_OPTION', `unknown TCP impairment option: ${key}`);
  }
  const delayMs = patch.delayMs ?? base.delayMs;
  if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
    throw new NetsimError('NETSIM_ERR_BAD_OPTION', `delayMs must be a finite number >= 0, got ${String(delayMs)}`);
  }
  return { delayMs };
}

/** RST when the socket is connected; a plain destroy while it is still connecting. */
function reset(socket: net.Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}
