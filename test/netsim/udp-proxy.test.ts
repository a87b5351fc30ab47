import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UdpProxy, isNetsimError, type UdpProxyOptions } from '../../native-free-bench/netsim/index.js';
import { HOST, handleCensus, packet, settlesTo, sleep, udpClient, udpEcho, until, type UdpClient, type UdpEcho } from './helpers.js';

let echo: UdpEcho;
let client: UdpClient;
const proxies: UdpProxy[] = [];

beforeEach(async () => {
  echo = await udpEcho();
  client = await udpClient();
});

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all([echo.close(), client.close()]);
});

async function proxy(opts: Partial<UdpProxyOptions> = {}): Promise<UdpProxy> {
  const p = await UdpProxy.start({ target: { host: HOST, port: echo.port }, ...opts });
  proxies.push(p);
  return p;
}

/**
 * Sends seqs [from, to) in windows of `window`, waiting after each window until `settled(end)`
 * holds (by default: every echo so far is back). Pacing keeps at most one window in flight, so
 * a loaded machine never overflows a socket receive buffer and turns kernel drops into flakes.
 */
async function sendPaced(
  p: UdpProxy,
  from: number,
  to: number,
  opts: { window?: number; size?: number; settled?: (end: number) => boolean } = {},
): Promise<void> {
  const { window = 50, size = 16, settled = (end: number) => client.got.length >= end } = opts;
  for (let start = from; start < to; start += window) {
    const end = Math.min(to, start + window);
    for (let seq = start; seq < end; seq++) client.send(p.port, packet(seq, size));
    await until(() => settled(end), () => `window ending at ${end}: echo saw ${echo.seen.length}, client got ${client.got.length}, stats ${JSON.stringify(p.stats())}`);
  }
}

/** One round trip of `seq` through the proxy, in ms. */
async function rtt(p: UdpProxy, seq: number): Promise<number> {
  const t0 = performance.now();
  client.send(p.port, packet(seq));
  const reply = await until(() => client.got.find((g) => g.seq === seq), `echo of ${seq}`);
  return reply.at - t0;
}

function isIncreasing(xs: number[]): boolean {
  return xs.every((x, i) => i === 0 || x > (xs[i - 1] as number));
}

describe('UdpProxy', () => {
  it('relays datagrams to the target and replies back, counting both directions', async () => {
    const p = await proxy();
    expect(p.port).toBeGreaterThan(0);
    expect(p.address).toEqual({ host: HOST, port: p.port });
    await sendPaced(p, 0, 50, { window: 10, size: 100 });
    await until(() => client.got.length === 50, 'all 50 echoes');
    expect(client.got.map((g) => g.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(client.got.every((g) => g.from === p.port)).toBe(true);
    const s = p.stats();
    for (const dir of [s.upstream, s.downstream]) {
      expect(dir.received).toEqual({ packets: 50, bytes: 5000 });
      expect(dir.forwarded).toEqual({ packets: 50, bytes: 5000 });
      expect(Object.values(dir.dropped).every((n) => n === 0)).toBe(true);
      expect(dir.queued).toEqual({ packets: 0, bytes: 0 });
    }
    expect(s.clients).toBe(1);
    p.resetStats();
    expect(p.stats().upstream.received.packets).toBe(0);
  });

  it('gives each client its own upstream source port, like a NAT', async () => {
    const p = await proxy();
    const other = await udpClient();
    try {
      client.send(p.port, packet(1));
      other.send(p.port, packet(2));
      await until(() => client.got.length === 1 && other.got.length === 1, 'both echoes');
      const ports = new Set(echo.seen.map((s) => s.from));
      expect(ports.size).toBe(2);
      expect(ports.has(p.port)).toBe(false);
      expect(new Set(p.upstreamPorts())).toEqual(ports);
      expect(client.got[0]?.seq).toBe(1);
      expect(other.got[0]?.seq).toBe(2);
    } finally {
      await other.close();
    }
  });

  it('evicts the least recently used mapping beyond maxClients', async () => {
    const p = await proxy({ maxClients: 1 });
    const other = await udpClient();
    try {
      client.send(p.port, packet(1));
      await until(() => client.got.length === 1, 'first echo');
      other.send(p.port, packet(2));
      await until(() => other.got.length === 1, 'second echo');
      expect(p.stats().clients).toBe(1);
    } finally {
      await other.close();
    }
  });

  it.each(['10.0.0.1', '192.168.1.1', '8.8.8.8', '0.0.0.0', 'localhost', '::1', '127.0.0.256', '', 'example.com'])(
    'refuses the non-loopback target %j and opens nothing',
    async (host) => {
      const before = handleCensus();
      const err = await UdpProxy.start({ target: { host, port: 9 } }).catch((e: unknown) => e);
      expect(isNetsimError(err, 'NETSIM_ERR_NOT_LOOPBACK')).toBe(true);
      expect(handleCensus()).toEqual(before);
    },
  );

  it('rejects bad options and bad runtime impairments without changing anything', async () => {
    for (const bad of [{ port: 70000 }, { seed: 1.5 }, { maxClients: 0 }, { upstream: { loss: 2 } }, { target: { host: HOST, port: 0 } }]) {
      const err = await UdpProxy.start({ target: { host: HOST, port: echo.port }, ...bad }).catch((e: unknown) => e);
      expect(isNetsimError(err, 'NETSIM_ERR_BAD_OPTION')).toBe(true);
    }
    const p = await proxy({ upstream: { delayMs: 5 } });
    expect(() => p.impair({ delayMs: 10, loss: -1 })).toThrow(/loss/);
    expect(() => p.impair({ delayMs: 1 }, 'sideways' as never)).toThrow(/direction/);
    expect(p.impairment('upstream').delayMs).toBe(5);
    expect(p.impairment('downstream').delayMs).toBe(0);
  });

  it('rejects a busy listen port and leaves nothing open', async () => {
    const before = handleCensus();
    const err = await UdpProxy.start({ target: { host: HOST, port: echo.port }, port: echo.port }).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EADDRINUSE');
    await settlesTo(before);
  });

  it('adds at least the configured delay, per direction', async () => {
    const p = await proxy({ upstream: { delayMs: 30 } });
    for (let i = 0; i < 3; i++) expect(await rtt(p, i)).toBeGreaterThanOrEqual(30);
    p.impair({ delayMs: 25 }, 'downstream');
    for (let i = 3; i < 6; i++) expect(await rtt(p, i)).toBeGreaterThanOrEqual(55);
    p.impair({ delayMs: 0 });
    expect(p.impairment('upstream').delayMs).toBe(0);
    expect(await rtt(p, 6)).toBeGreaterThanOrEqual(0);
  });

  it('keeps each direction FIFO under jitter', async () => {
    const p = await proxy({ seed: 3, upstream: { delayMs: 10, jitterMs: 9 }, downstream: { delayMs: 10, jitterMs: 9 } });
    await sendPaced(p, 0, 300);
    expect(isIncreasing(echo.seen.map((s) => s.seq))).toBe(true);
    expect(isIncreasing(client.got.map((g) => g.seq))).toBe(true);
  });

  it('reorders under jitter only when allowReorder is set', async () => {
    const p = await proxy({ seed: 3, upstream: { delayMs: 20, jitterMs: 19, allowReorder: true } });
    for (let seq = 0; seq < 100; seq++) client.send(p.port, packet(seq));
    await until(() => client.got.length === 100, 'all 100 echoes');
    const seqs = echo.seen.map((s) => s.seq);
    expect(isIncreasing(seqs)).toBe(false);
    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('loses about the configured fraction, the same packets for the same seed', async () => {
    async function lostWith(seed: number): Promise<number[]> {
      echo.seen.length = 0;
      client.got.length = 0;
      const p = await proxy({ seed, upstream: { loss: 0.1 } });
      const lost = () => p.stats().upstream.dropped.loss;
      await sendPaced(p, 0, 2000, { settled: (end) => echo.seen.length + lost() >= end && client.got.length >= echo.seen.length });
      expect(echo.seen.length).toBe(2000 - lost());
      const seen = new Set(echo.seen.map((s) => s.seq));
      await p.close();
      return Array.from({ length: 2000 }, (_, i) => i).filter((i) => !seen.has(i));
    }
    const a = await lostWith(7);
    expect(a.length).toBeGreaterThan(140);
    expect(a.length).toBeLessThan(260);
    expect(await lostWith(7)).toEqual(a);
    expect(await lostWith(8)).not.toEqual(a);
  });

  it('blackhole drops everything silently, then traffic resumes', async () => {
    const p = await proxy();
    p.blackhole();
    for (let seq = 0; seq < 20; seq++) client.send(p.port, packet(seq));
    await until(() => p.stats().upstream.dropped.blackhole === 20, '20 blackholed');
    expect(echo.seen).toEqual([]);
    p.blackhole(false);
    expect(await rtt(p, 100)).toBeGreaterThanOrEqual(0);
    expect(client.got.map((g) => g.seq)).toEqual([100]);
  });

  it('blackhole also kills packets already in flight, and can hit one direction only', async () => {
    const p = await proxy({ upstream: { delayMs: 200 } });
    for (let seq = 0; seq < 10; seq++) client.send(p.port, packet(seq));
    await until(() => p.stats().upstream.queued.packets === 10, '10 in flight');
    p.blackhole(true, 'upstream');
    await until(() => p.stats().upstream.dropped.blackhole === 10, 'in-flight packets dropped');
    expect(echo.seen).toEqual([]);

    p.impair({ blackhole: false, delayMs: 0 }, 'upstream');
    p.blackhole(true, 'downstream');
    client.send(p.port, packet(50));
    await until(() => p.stats().downstream.dropped.blackhole === 1, 'reply dropped downstream');
    expect(echo.seen.map((s) => s.seq)).toEqual([50]);
    expect(client.got).toEqual([]);
  });

  it('pathSwitch: the target sees a new source port while the client keeps working', async () => {
    const p = await proxy();
    await rtt(p, 1);
    const before = echo.seen[0]?.from as number;
    expect(p.upstreamPorts()).toEqual([before]);
    await p.pathSwitch();
    await rtt(p, 2);
    const after = echo.seen[1]?.from as number;
    expect(after).not.toBe(before);
    expect(p.upstreamPorts()).toEqual([after]);
    expect(client.got.map((g) => g.from)).toEqual([p.port, p.port]);
    expect(p.stats().pathSwitches).toBe(1);
    // The old path is gone: a reply sent to the old source port reaches no one.
    echo.socket.send(packet(3), before, HOST);
    await rtt(p, 4);
    expect(client.got.map((g) => g.seq)).toEqual([1, 2, 4]);
  });

  it('rebind: a new listen port, and the old one stops working', async () => {
    const p = await proxy();
    const old = p.port;
    await rtt(p, 1);
    const fresh = await p.rebind();
    expect(fresh).not.toBe(old);
    expect(p.port).toBe(fresh);
    await rtt(p, 2);
    expect(client.got[1]?.from).toBe(fresh);
    const received = p.stats().upstream.received.packets;
    client.send(old, packet(3));
    await sleep(100);
    expect(p.stats().upstream.received.packets).toBe(received);
    expect(client.got.map((g) => g.seq)).toEqual([1, 2]);
    expect(p.stats().rebinds).toBe(1);
  });

  it('rate limit spaces packets by their serialization time', async () => {
    const p = await proxy({ upstream: { rateBytesPerSec: 100_000, queueLimitBytes: 1_000_000 } });
    const t0 = performance.now();
    for (let seq = 0; seq < 20; seq++) client.send(p.port, packet(seq, 1000));
    await until(() => client.got.length === 20, 'all 20 echoes');
    // 20 × 1000 B at 100 kB/s: the last one finishes serializing 200 ms after the first arrived.
    expect((client.got[19]?.at as number) - t0).toBeGreaterThanOrEqual(199);
    expect(isIncreasing(client.got.map((g) => g.seq))).toBe(true);
  });

  it('tail-drops when the bottleneck queue is full', async () => {
    const p = await proxy({ upstream: { rateBytesPerSec: 100_000, queueLimitBytes: 3000 } });
    for (let seq = 0; seq < 20; seq++) client.send(p.port, packet(seq, 1000));
    await until(() => p.stats().upstream.received.packets === 20, 'all 20 offered');
    await until(() => p.stats().upstream.queued.packets === 0, 'queue drained');
    const s = p.stats().upstream;
    expect(s.dropped.queueFull).toBeGreaterThan(0);
    expect(s.forwarded.packets + s.dropped.queueFull).toBe(20);
    await until(() => echo.seen.length === s.forwarded.packets, 'forwarded packets echoed');
    expect(echo.seen[0]?.seq).toBe(0);
  });

  it('close() releases every socket and timer, even with packets in flight', async () => {
    const baseline = handleCensus();
    const p = await proxy({ upstream: { delayMs: 1000 }, downstream: { delayMs: 1000 } });
    const other = await udpClient();
    const otherBaseline = { ...baseline, UDPWrap: (baseline.UDPWrap ?? 0) + 1 };
    client.send(p.port, packet(1));
    other.send(p.port, packet(2));
    await until(() => p.stats().upstream.queued.packets === 2, 'two in flight');
    expect(p.resources().timers).toBe(1);
    expect(p.resources().sockets).toBe(3); // listen + one mapping per client
    await p.pathSwitch();
    await p.close();
    await p.close(); // idempotent
    expect(p.closed).toBe(true);
    expect(p.resources()).toEqual({ sockets: 0, timers: 0 });
    await settlesTo(otherBaseline);
    await other.close();
    await settlesTo(baseline);
    expect(() => p.impair({ delayMs: 1 })).toThrow(/closed/);
    await expect(p.rebind()).rejects.toSatisfy((e: unknown) => isNetsimError(e, 'NETSIM_ERR_CLOSED'));
    expect(echo.seen).toEqual([]);
  });
});
