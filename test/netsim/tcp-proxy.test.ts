import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TcpProxy, isNetsimError, type TcpProxyOptions } from '../../native-free-bench/netsim/index.js';
import { HOST, handleCensus, settlesTo, sleep, tcpClient, tcpEcho, until, type TcpEcho } from './helpers.js';

let echo: TcpEcho;
const proxies: TcpProxy[] = [];
const sockets: net.Socket[] = [];

beforeEach(async () => {
  echo = await tcpEcho();
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await echo.close();
});

async function proxy(opts: Partial<TcpProxyOptions> = {}): Promise<TcpProxy> {
  const p = await TcpProxy.start({ target: { host: HOST, port: echo.port }, ...opts });
  proxies.push(p);
  return p;
}

async function connect(p: TcpProxy): ReturnType<typeof tcpClient> {
  const c = await tcpClient(p.port);
  sockets.push(c.socket);
  return c;
}

/** Writes `data` in `chunk`-sized pieces (so order across many writes is exercised). */
function writeChunked(socket: net.Socket, data: Buffer, chunk = 16 * 1024): void {
  for (let i = 0; i < data.length; i += chunk) socket.write(data.subarray(i, i + chunk));
}

describe('TcpProxy', () => {
  it('pipes bytes both ways, intact and in order, and counts them', async () => {
    const p = await proxy();
    const c = await connect(p);
    const data = randomBytes(1024 * 1024);
    writeChunked(c.socket, data);
    await until(() => c.data().length === data.length, 'all bytes echoed');
    expect(c.data().equals(data)).toBe(true);
    const s = p.stats();
    expect(s.upstream.bytes).toBe(data.length);
    expect(s.downstream.bytes).toBe(data.length);
    expect(s.connections).toMatchObject({ accepted: 1, active: 1, cut: 0, failed: 0 });
  });

  it('forwards a half-close (FIN) after the data before it', async () => {
    const p = await proxy({ upstream: { delayMs: 20 } });
    const c = await connect(p);
    c.socket.end(Buffer.from('last words'));
    await c.ended;
    expect(c.data().toString()).toBe('last words');
    expect(await c.closed).toBe(false);
    await until(() => p.stats().connections.active === 0, 'connection gone');
  });

  it('adds at least the configured delay, per direction, keeping order', async () => {
    const p = await proxy({ upstream: { delayMs: 40 }, downstream: { delayMs: 20 } });
    const c = await connect(p);
    const t0 = performance.now();
    c.socket.write('a');
    await until(() => c.data().length === 1, 'first echo');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(60);

    p.impair({ delayMs: 0 }, 'downstream');
    expect(p.impairment('downstream').delayMs).toBe(0);
    const t1 = performance.now();
    for (let i = 0; i < 100; i++) c.socket.write(`${i},`);
    const expected = 'a' + Array.from({ length: 100 }, (_, i) => `${i},`).join('');
    await until(() => c.data().length === expected.length, 'all echoed');
    expect(performance.now() - t1).toBeGreaterThanOrEqual(40);
    expect(c.data().toString()).toBe(expected);
  });

  it('blackhole pauses both ways, holding the bytes; lifting it delivers all of them in order', async () => {
    const p = await proxy();
    const c = await connect(p);
    c.socket.write('hello');
    await until(() => c.data().length === 5, 'echo before the blackhole');

    p.blackhole(true);
    expect(p.blackholed).toBe(true);
    const data = randomBytes(256 * 1024);
    writeChunked(c.socket, data);
    await until(() => p.stats().upstream.queuedBytes === data.length, 'proxy holds every byte');
    await sleep(50);
    expect(echo.received()).toBe(5);
    expect(c.data().length).toBe(5);
    expect(c.socket.destroyed).toBe(false);

    p.blackhole(false);
    await until(() => c.data().length === 5 + data.length, 'all bytes after the blackhole');
    expect(c.data().subarray(5).equals(data)).toBe(true);
    expect(p.stats().upstream.queuedBytes).toBe(0);
  });

  it('blackhole stops reading beyond maxQueuedBytes, so memory stays bounded', async () => {
    const max = 64 * 1024;
    const p = await proxy({ maxQueuedBytes: max });
    const c = await connect(p);
    p.blackhole();
    const data = randomBytes(4 * 1024 * 1024);
    writeChunked(c.socket, data);
    await until(() => p.stats().upstream.queuedBytes > max, 'proxy reads up to its limit');
    await sleep(50);
    const held = p.stats().upstream.queuedBytes;
    expect(held).toBeLessThan(max + 1024 * 1024); // the limit plus at most one socket read burst
    p.blackhole(false);
    await until(() => c.data().length === data.length, 'all 4 MiB through', 30_000);
    expect(c.data().equals(data)).toBe(true);
  });

  it('cut() resets every current connection; new ones still work', async () => {
    const p = await proxy();
    const a = await connect(p);
    const b = await connect(p);
    a.socket.write('x');
    b.socket.write('y');
    await until(() => echo.open.size === 2 && a.data().length === 1 && b.data().length === 1, 'both connected');
    expect(p.cut()).toBe(2);
    expect(await a.closed).toBe(true);
    expect(await b.closed).toBe(true);
    await until(() => echo.open.size === 0, 'server side closed');
    await until(() => p.stats().connections.active === 0, 'no active connections');
    expect(p.stats().connections.cut).toBe(2);
    const c = await connect(p);
    c.socket.write('z');
    await until(() => c.data().toString() === 'z', 'fresh connection works');
  });

  it('closes the client when the target refuses, counting a failure', async () => {
    const dead = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, HOST, () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const p = await TcpProxy.start({ target: { host: HOST, port: dead } });
    proxies.push(p);
    const c = await connect(p);
    await c.closed;
    expect(p.stats().connections.failed).toBe(1);
  });

  it.each(['10.1.2.3', '0.0.0.0', 'localhost', '::1'])('refuses the non-loopback target %j', async (host) => {
    const err = await TcpProxy.start({ target: { host, port: 80 } }).catch((e: unknown) => e);
    expect(isNetsimError(err, 'NETSIM_ERR_NOT_LOOPBACK')).toBe(true);
  });

  it('rejects a busy listen port and leaves nothing open', async () => {
    const before = handleCensus();
    const err = await TcpProxy.start({ target: { host: HOST, port: echo.port }, port: echo.port }).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    await settlesTo(before);
  });

  it('rejects bad options', async () => {
    for (const bad of [{ upstream: { delayMs: -5 } }, { maxQueuedBytes: 0 }, { port: -1 }]) {
      const err = await TcpProxy.start({ target: { host: HOST, port: echo.port }, ...bad }).catch((e: unknown) => e);
      expect(isNetsimError(err, 'NETSIM_ERR_BAD_OPTION')).toBe(true);
    }
    const p = await proxy({ downstream: { delayMs: 3 } });
    expect(() => p.impair({ delayMs: Number.NaN })).toThrow(/delayMs/);
    expect(p.impairment('downstream').delayMs).toBe(3);
  });

  it('close() releases every socket and timer, with bytes in flight and a blackhole on', async () => {
    const baseline = handleCensus();
    const p = await proxy({ upstream: { delayMs: 1000 } });
    const a = await connect(p);
    const b = await connect(p);
    a.socket.write('held by the delay');
    await until(() => p.stats().upstream.queuedBytes > 0, 'bytes in flight');
    p.blackhole(true);
    b.socket.write('held by the blackhole');
    await until(() => p.stats().upstream.queuedBytes > 17, 'more bytes held');
    expect(p.resources().sockets).toBe(5);
    await p.close();
    await p.close();
    expect(p.resources()).toEqual({ sockets: 0, timers: 0 });
    expect(await a.closed).toBe(true);
    expect(await b.closed).toBe(true);
    await settlesTo(baseline);
    expect(echo.received()).toBe(0);
    expect(() => p.blackhole(false)).toThrow(/closed/);
  });
});
