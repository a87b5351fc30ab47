/**
 * Fixtures for the netsim tests: loopback echo servers, a UDP client that records what comes
 * back, condition polling, and a handle census for leak checks. Everything binds 127.0.0.1 on a
 * port of the kernel's choosing and is closed by the test that opened it.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export const HOST = '127.0.0.1';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` until truthy; fails after `timeoutMs` (a safety net only) with `message`, which
 * may be a function so the failure can report the state at that moment.
 */
export async function until<T>(probe: () => T, message: string | (() => string), timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms: ${typeof message === 'function' ? message() : message}`);
    await sleep(2);
  }
}

/** A datagram carrying a sequence number in its first 4 bytes, padded to `size`. */
export function packet(seq: number, size = 16): Buffer {
  const b = Buffer.alloc(Math.max(4, size), 0xab);
  b.writeUInt32BE(seq, 0);
  return b;
}

export const seqOf = (b: Buffer): number => b.readUInt32BE(0);

function bindUdp(): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 1 << 20 });
    s.once('error', reject);
    s.bind(0, HOST, () => resolve(s));
  });
}

const closeUdp = (s: dgram.Socket) => new Promise<void>((resolve) => s.close(() => resolve()));

export interface UdpEcho {
  socket: dgram.Socket;
  port: number;
  /** Every datagram received: sequence number and the source port it came from. */
  seen: { seq: number; from: number }[];
  close(): Promise<void>;
}

/** Echoes every datagram back to its sender. */
export async function udpEcho(): Promise<UdpEcho> {
  const socket = await bindUdp();
  const seen: UdpEcho['seen'] = [];
  socket.on('message', (msg, rinfo) => {
    seen.push({ seq: seqOf(msg), from: rinfo.port });
    socket.send(msg, rinfo.port, rinfo.address);
  });
  return { socket, port: socket.address().port, seen, close: () => closeUdp(socket) };
}

export interface UdpClient {
  socket: dgram.Socket;
  /** Replies received: sequence number, arrival time (performance.now) and the port they came from. */
  got: { seq: number; at: number; from: number }[];
  send(port: number, data: Buffer): void;
  close(): Promise<void>;
}

export async function udpClient(): Promise<UdpClient> {
  const socket = await bindUdp();
  const got: UdpClient['got'] = [];
  socket.on('message', (msg, rinfo) => got.push({ seq: seqOf(msg), at: performance.now(), from: rinfo.port }));
  return { socket, got, send: (port, data) => socket.send(data, port, HOST), close: () => closeUdp(socket) };
}

export interface TcpEcho {
  port: number;
  /** Bytes the server has received so far, over all connections. */
  received(): number;
  /** Sockets the server currently has open. */
  open: Set<net.Socket>;
  close(): Promise<void>;
}

/** Echoes every byte back; a FIN from the client ends the reply stream after the echo. */
export async function tcpEcho(): Promise<TcpEcho> {
  let received = 0;
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', () => undefined);
    s.on('close', () => open.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => received,
    open,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Connects and collects everything that arrives. */
export async function tcpClient(port: number): Promise<{ socket: net.Socket; data: () => Buffer; ended: Promise<void>; closed: Promise<boolean> }> {
  const socket = net.connect({ host: HOST, port, allowHalfOpen: true });
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  const closed = new Promise<boolean>((resolve) => socket.once('close', (hadError) => resolve(hadError)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, data: () => Buffer.concat(chunks), ended, closed };
}

const WATCHED = ['UDPWrap', 'TCPWrap', 'TCPSocketWrap', 'TCPServerWrap', 'Timeout'];

/** Counts of the resource types a proxy could leak, from process.getActiveResourcesInfo(). */
export function handleCensus(): Record<string, number> {
  const census: Record<string, number> = Object.fromEntries(WATCHED.map((t) => [t, 0]));
  for (const r of process.getActiveResourcesInfo()) if (r in census) census[r] = (census[r] ?? 0) + 1;
  return census;
}

/**
 * Resolves once no watched type has more live resources than in `baseline`. Handles close in the
 * event loop's close phase, so this polls with setImmediate (which is not a watched type) for a
 * bounded time and then reports what is still open.
 */
export async function settlesTo(baseline: Record<string, number>): Promise<Record<string, number>> {
  let now = handleCensus();
  const excess = () => WATCHED.filter((t) => (now[t] ?? 0) > (baseline[t] ?? 0));
  const deadline = Date.now() + 2_000;
  for (let i = 0; i < 1_000_000 && excess().length > 0 && Date.now() < deadline; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    now = handleCensus();
  }
  if (excess().length > 0) throw new Error(`handles left open: ${JSON.stringify(now)} vs baseline ${JSON.stringify(baseline)}`);
  return now;
}
