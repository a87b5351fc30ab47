/**
 * The process helper itself: the listening line, restarts on the same port (including while the
 * port is briefly taken), and that no child outlives its test.
 */
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { killAllRelays, liveRelayCount, scrapeMetrics, spawnRelay, until } from '../support/relay-process.js';

const servers: Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) s.close();
  await killAllRelays();
});

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    servers.push(server);
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('spawnRelay', () => {
  it('starts lifeline serve, reports its URL, and restarts on the same port after SIGKILL', async () => {
    const first = await spawnRelay({ store: 'memory' });
    expect(first.url).toBe(`http://127.0.0.1:${first.port}`);
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    expect((await scrapeMetrics(first.url)).get('lifeline_connections')).toBe(0);

    expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    const second = await spawnRelay({ store: 'memory', port: first.port });
    expect(second.url).toBe(first.url);
    expect((await fetch(`${second.url}/healthz`)).status).toBe(200);
    expect(await second.stop()).toEqual({ code: 0, signal: null });
    expect(liveRelayCount()).toBe(0);
  }, 30_000);

  it('retries while the port is briefly taken, and gives up with a clear error if it stays taken', async () => {
    const first = await spawnRelay({ store: 'memory' });
    const port = first.port;
    await first.kill('SIGKILL');

    const blocker = await listenOn(port);
    await expect(spawnRelay({ store: 'memory', port, portRetries: 1 })).rejects.toThrow(`port ${port} in use`);
    expect(liveRelayCount()).toBe(0);

    // Free the port once the first attempt has failed: a later attempt gets it.
    let sawAttempt = false;
    const watcher = until(
      () => {
        if (liveRelayCount() > 0) sawAttempt = true;
        return sawAttempt && liveRelayCount() === 0;
      },
      'a failed attempt',
      20_000,
      2,
    ).then(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const relay = await spawnRelay({ store: 'memory', port });
    await watcher;
    expect(relay.port).toBe(port);
    expect((await fetch(`${relay.url}/healthz`)).status).toBe(200);
  }, 40_000);

  it('killAllRelays ends every child still running', async () => {
    const a = await spawnRelay({ store: 'memory' });
    const b = await spawnRelay({ store: 'memory' });
    expect(liveRelayCount()).toBe(2);
    await killAllRelays();
    expect(liveRelayCount()).toBe(0);
    expect((await a.exited).signal).toBe('SIGKILL');
    expect((await b.exited).signal).toBe('SIGKILL');
  }, 30_000);
});
