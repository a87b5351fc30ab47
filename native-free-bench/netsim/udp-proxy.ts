/**
 * A userspace UDP impairment proxy (our netem): clients send to `proxy.port` on 127.0.0.1, the
 * proxy forwards to one loopback target and relays the target's replies back. Like a NAT it keeps
 * one upstream socket per client source address, so the target sees a distinct source port per
 * client. Protocol-agnostic: ICE/STUN, DTLS, SCTP and RTP on one 5-tuple all pass through alike.
 *
 *   client ──► listen socket ──[upstream link]──► mapping socket ──► target
 *   client ◄── listen socket ◄─[downstream link]── mapping socket ◄── target
 *
 * `pathSwitch()` replaces every mapping socket (Wi-Fi → cellular: the target sees new source
 * ports); `rebind()` replaces the listen socket (the client-facing port changes).
 */
import dgram from 'node:dgram';
import { NetsimError } from './errors.js';
import {
  ImpairedLink,
  NO_IMPAIRMENT,
  mergeImpairment,
  type Direction,
  type DirectionSelector,
  type DirectionStats,
  type Impairment,
} from './impairment.js';
import { LOOPBACK, checkPort, checkTarget, type Target } from './loopback.js';
import { bindUdp4, closeUdp4, createUdp4 } from './udp-socket.js';

export interface UdpProxyOptions {
  target: Target;
  /** Listen port on 127.0.0.1; 0 (default) lets the kernel choose. */
  port?: number;
  /** Seed of the loss and jitter streams (default 1): same seed, same pattern. */
  seed?: number;
  upstream?: Partial<Impairment>;
  downstream?: Partial<Impairment>;
  /** Client mappings kept; the least recently used is evicted beyond this (default 1024). */
  maxClients?: number;
  /**
   * SO_RCVBUF / SO_SNDBUF of every proxy socket (default 1 MiB, capped by the kernel's
   * net.core.rmem_max): a burst released after a delay should not be dropped by the proxy's own
   * sockets, only where an impairment says so.
   */
  socketBufferBytes?: number;
}

export interface UdpProxyStats {
  upstream: DirectionStats;
  downstream: DirectionStats;
  clients: number;
  pathSwitches: number;
  rebinds: number;
  /** 'error' events seen on any socket (they never crash the proxy). */
  socketErrors: number;
}

interface Mapping {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  socket: dgram.Socket;
  /** The source port the target sees; 0 until bound. */
  upstreamPort: number;
}

interface UpPacket {
  key: string;
  data: Buffer;
}

interface DownPacket {
  address: string;
  port: number;
  data: Buffer;
}

export class UdpProxy {
  readonly target: Readonly<Target>;
  readonly #maxClients: number;
  readonly #bufferBytes: number;
  readonly #up: ImpairedLink<UpPacket>;
  readonly #down: ImpairedLink<DownPacket>;
  readonly #clients = new Map<string, Mapping>();
  readonly #sockets = new Set<dgram.Socket>();
  readonly #closing = new Set<Promise<void>>();
  #listen: dgram.Socket;
  #port: number;
  #ops: Promise<unknown> = Promise.resolve();
  #closed = false;
  #pathSwitches = 0;
  #rebinds = 0;
  #socketErrors = 0;

  /** Validates the options, binds the listen socket and resolves once it is ready. */
  static async start(opts: UdpProxyOptions): Promise<UdpProxy> {
    const target = checkTarget(opts.target);
    const port = checkPort(opts.port ?? 0, 'listen port', true);
    const seed = opts.seed ?? 1;
    if (!Number.isInteger(seed)) throw new NetsimError('NETSIM_ERR_BAD_OPTION', `seed must be an integer, got ${seed}`);
    const maxClients = opts.maxClients ?? 1024;
    if (!Number.isInteger(maxClients) || maxClients < 1) {
      throw new NetsimError('NETSIM_ERR_BAD_OPTION', `maxClients must be a positive integer, got ${maxClients}`);
    }
    const bufferBytes = opts.socketBufferBytes ?? 1024 * 1024;
    if (!Number.isInteger(bufferBytes) || bufferBytes < 1024) {
      throw new NetsimError('NETSIM_ERR_BAD_OPTION', `socketBufferBytes must be an integer >= 1024, got ${bufferBytes}`);
    }
    const upstream = mergeImpairment(NO_IMPAIRMENT, opts.upstream);
    const downstream = mergeImpairment(NO_IMPAIRMENT, opts.downstream);
    const listen = await bindUdp4(port, bufferBytes);
    return new UdpProxy(listen, target, seed, { maxClients, bufferBytes }, upstream, downstream);
  }

  private constructor(
    listen: dgram.Socket,
    target: Readonly<Target>,
    seed: number,
    limits: { maxClients: number; bufferBytes: number },
    up: Impairment,
    down: Impairment,
  ) {
    this.target = target;
    this.#maxClients = limits.maxClients;
    this.#bufferBytes = limits.bufferBytes;
    this.#up = new ImpairedLink({ seed, stream: 0, impairment: up, send: (p) => this.#sendUp(p) });
    this.#down = new ImpairedLink({ seed, stream: 1, impairment: down, send: (p) => this.#sendDown(p) });
    this.#listen = listen;
    this.#port = listen.address().port;
    this.#adoptListen(listen);
  }

  /** The client-facing port on 127.0.0.1 (changes with `rebind()`). */
  get port(): number {
    return this.#port;
  }

  get address(): Target {
    return { host: LOOPBACK, port: this.#port };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Changes impairments at runtime; validates first and changes nothing on a bad value. */
  impair(patch: Partial<Impairment>, direction: DirectionSelector = 'both'): void {
    this.#assertOpen();
    const links = this.#links(direction);
    const next = links.map((l) => mergeImpairment(l.impairment, patch));
    links.forEach((l, i) => (l.impairment = next[i] as Impairment));
  }

  impairment(direction: Direction): Readonly<Impairment> {
    return this.#links(direction)[0]!.impairment;
  }

  /** Drops everything (including packets already in flight) until turned off. */
  blackhole(on = true, direction: DirectionSelector = 'both'): void {
    this.impair({ blackhole: on }, direction);
  }

  /** Source ports the target currently sees, one per client mapping (bound ones only). */
  upstreamPorts(): number[] {
    return [...this.#clients.values()].map((m) => m.upstreamPort).filter((p) => p !== 0);
  }

  /**
   * Wi-Fi → cellular: every mapping gets a fresh upstream socket (bound before the old one is
   * closed, so its port is guaranteed new); the client keeps talking to the same listen port.
   */
  pathSwitch(): Promise<void> {
    return this.#serially(async () => {
      await Promise.all(
        [...this.#clients.values()].map(async (m) => {
          const fresh = await this.#openMapping(m);
          if (this.#closed || this.#clients.get(m.key) !== m) return void this.#close(fresh);
          const old = m.socket;
          m.socket = fresh;
          m.upstreamPort = fresh.address().port;
          void this.#close(old);
        }),
      );
      this.#pathSwitches++;
    });
  }

  /** Moves the client-facing side to a new port (the old one is closed) and returns it. */
  rebind(): Promise<number> {
    return this.#serially(async () => {
      const fresh = await bindUdp4(0, this.#bufferBytes);
      if (this.#closed) {
        fresh.close();
        throw new NetsimError('NETSIM_ERR_CLOSED');
      }
      const old = this.#listen;
      this.#listen = fresh;
      this.#port = fresh.address().port;
      this.#adoptListen(fresh);
      await this.#close(old);
      this.#rebinds++;
      return this.#port;
    });
  }

  stats(): UdpProxyStats {
    return {
      upstream: this.#up.stats(),
      downstream: this.#down.stats(),
      clients: this.#clients.size,
      pathSwitches: this.#pathSwitches,
      rebinds: this.#rebinds,
      socketErrors: this.#socketErrors,
    };
  }

  resetStats(): void {
    this.#up.resetStats();
    this.#down.resetStats();
  }

  /** What this proxy holds open right now: for leak checks. */
  resources(): { sockets: number; timers: number } {
    return { sockets: this.#sockets.size + this.#closing.size, timers: Number(this.#up.timerArmed) + Number(this.#down.timerArmed) };
  }

  /** Releases every socket and timer; queued packets are discarded. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#up.close();
      this.#down.close();
      this.#clients.clear();
      for (const s of [...this.#sockets]) void this.#close(s);
    }
    await Promise.all([...this.#closing]);
  }

  #links(direction: DirectionSelector): (ImpairedLink<UpPacket> | ImpairedLink<DownPacket>)[] {
    if (direction === 'upstream') return [this.#up];
    if (direction === 'downstream') return [this.#down];
    if (direction === 'both') return [this.#up, this.#down];
    throw new NetsimError('NETSIM_ERR_BAD_OPTION', `direction must be upstream, downstream or both, got ${String(direction)}`);
  }

  #assertOpen(): void {
    if (this.#closed) throw new NetsimError('NETSIM_ERR_CLOSED');
  }

  #serially<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#ops.then(() => {
      this.#assertOpen();
      return op();
    });
    this.#ops = run.catch(() => undefined);
    return run;
  }

  #track(socket: dgram.Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => this.#socketErrors++);
  }

  #adoptListen(socket: dgram.Socket): void {
    this.#track(socket);
    socket.on('message', (data, rinfo) => {
      if (this.#closed) return;
      const key = `${rinfo.address}:${rinfo.port}`;
      let m = this.#clients.get(key);
      if (m) {
        this.#clients.delete(key); // re-insert: Map order is our LRU order
      } else {
        m = { key, address: rinfo.address, port: rinfo.port, socket: undefined as unknown as dgram.Socket, upstreamPort: 0 };
        m.socket = this.#mappingSocket(m);
        this.#evictBeyond(this.#maxClients - 1);
      }
      this.#clients.set(key, m);
      this.#up.offer({ key, data }, data.length);
    });
  }

  #evictBeyond(limit: number): void {
    for (const [key, m] of this.#clients) {
      if (this.#clients.size <= limit) break;
      this.#clients.delete(key);
      void this.#close(m.socket);
    }
  }

  /** A socket for mapping `m`, binding (sends before it is bound are queued by node:dgram). */
  #mappingSocket(m: Mapping): dgram.Socket {
    const socket = createUdp4(this.#bufferBytes);
    this.#track(socket);
    socket.on('message', (data, rinfo) => {
      if (this.#closed) return;
      if (rinfo.address !== this.target.host || rinfo.port !== this.target.port) return this.#down.noteFiltered(data.length);
      this.#down.offer({ address: m.address, port: m.port, data }, data.length);
    });
    socket.once('listening', () => {
      if (m.socket === socket) m.upstreamPort = socket.address().port;
    });
    socket.bind({ address: LOOPBACK, port: 0, exclusive: true });
    return socket;
  }

  #openMapping(m: Mapping): Promise<dgram.Socket> {
    const socket = this.#mappingSocket(m);
    return new Promise((resolve) => socket.once('listening', () => resolve(socket)));
  }

  #sendUp(p: UpPacket): void {
    const m = this.#clients.get(p.key);
    if (!m) return this.#up.noteSendError(p.data.length);
    this.#send(m.socket, p.data, this.target.port, this.target.host, this.#up);
  }

  #sendDown(p: DownPacket): void {
    this.#send(this.#listen, p.data, p.port, p.address, this.#down);
  }

  #send(socket: dgram.Socket, data: Buffer, port: number, host: string, link: { noteSendError(bytes: number): void }): void {
    try {
      socket.send(data, port, host, (err) => {
        if (err) link.noteSendError(data.length);
      });
    } catch {
      link.noteSendError(data.length);
    }
  }

  #close(socket: dgram.Socket): Promise<void> {
    if (!this.#sockets.delete(socket)) return Promise.resolve();
    const done = closeUdp4(socket);
    this.#closing.add(done);
    void done.then(() => this.#closing.delete(done));
    return done;
  }
}
