/**
 * SIGTERM is the orderly way down: the relay tells every client why (SHUTTING_DOWN), closes their
 * links, commits what it has accepted, closes the SQLite file and exits 0. Clients treat it as a
 * blip: they go to `reconnecting` and, once a relay is back on the same file and port, resume with
 * nothing lost and nothing doubled.
 */
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, encodeFrame } from '../../src/protocol/index.js';
import { ExponentialBackoff, connect, formatOffset } from '../../src/sdk/index.js';
import type { LifelineSession, StateChange, TimelineEvent } from '../../src/sdk/index.js';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../support/relay.js';
import { createSession, killAllRelays, sessionToken, spawnRelay, until } from '../support/relay-process.js';
import type { ExitInfo } from '../support/relay-process.js';

const sessions: LifelineSession[] = [];
const sockets: WebSocket[] = [];
const dirs: (() => void)[] = [];
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const s of sessions.splice(0)) s.close();
  await killAllRelays();
  for (const remove of dirs.splice(0)) remove();
});

function backoff(): ExponentialBackoff {
  return new ExponentialBackoff({ initialMs: 20, maxMs: 200 });
}

function record(session: LifelineSession): StateChange[] {
  const changes: StateChange[] = [];
  session.on('state', (c) => changes.push(c));
  return changes;
}

/** Resolves with the exit, or rejects if the process has not exited within `ms` (a bound, not a timing assertion). */
function exitWithin(exited: Promise<ExitInfo>, ms: number): Promise<ExitInfo> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    exited.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`relay still running ${ms} ms after SIGTERM`)), ms);
    }),
  ]);
}

describe('SIGTERM', () => {
  it('exits 0, sends clients to reconnecting, and keeps everything acknowledged before the signal', async () => {
    const tmp = tempDir('lifeline-term-');
    dirs.push(tmp.remove);
    const store = `sqlite:${join(tmp.dir, 'relay.db')}`;
    let relay = await spawnRelay({ store });
    const url = relay.url;
    const sessionId = await createSession(url);

    const agent = await connect({ url, token: await sessionToken(sessionId, 'agent-1', 'agent'), reconnect: backoff(), resume: 'now', maxOutbox: 128 });
    sessions.push(agent);
    const user = await connect({ url, token: await sessionToken(sessionId, 'user-1', 'user'), reconnect: backoff() });
    sessions.push(user);
    const agentChanges = record(agent);
    const userChanges = record(user);
    const TOKENS = 3000;
    const events: TimelineEvent[] = [];
    const reading = (async () => {
      for await (const e of user.stream) {
        events.push(e);
        if (events.length >= TOKENS) return;
      }
    })();

    // Appends keep flowing while the signal arrives: 3,000 fired at once, 128 in flight at a time.
    const acked = new Map<number, string>();
    const appends: Promise<string>[] = [];
    for (let i = 0; i < TOKENS; i++) {
      appends.push(
        agent.sendText(String(i)).then((offset) => {
          acked.set(i, offset);
          return offset;
        }),
      );
    }
    const allAppends = Promise.all(appends);
    allAppends.catch(() => {}); // awaited below

    const signalAt = 800 + Math.floor(Math.random() * 800);
    await until(() => acked.size >= signalAt, `${signalAt} acknowledged appends`);
    relay.child.kill('SIGTERM');
    const ackedBeforeSignal = new Map(acked);
    const exit = await exitWithin(relay.exited, 15_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(relay.stderr()).not.toMatch(/"level":(50|60)/); // no error or fatal log lines
    expect(ackedBeforeSignal.size).toBeLessThan(TOKENS);

    // Both clients saw their link close, were told why, and are trying to come back.
    for (const [who, changes] of [['agent', agentChanges], ['user', userChanges]] as const) {
      await until(() => changes.some((c) => c.state === 'reconnecting'), `${who} to be reconnecting`);
      const first = changes.find((c) => c.state === 'reconnecting')!;
      expect(first.error, who).toBe('SHUTTING_DOWN');
      expect(changes.map((c) => c.state), who).not.toContain('closed');
    }
    expect(agent.state).not.toBe('closed');
    expect(user.state).not.toBe('closed');

    // On disk, while no relay runs: every append acknowledged before the signal, at its offset.
    const db = await openStore(store);
    try {
      const head = (await db.head(sessionId))!;
      expect(head).toBeGreaterThanOrEqual(ackedBeforeSignal.size);
      const stored = await db.read(sessionId, 0, head);
      expect(stored.length).toBe(head);
      const missing: string[] = [];
      for (const [i, offset] of ackedBeforeSignal) {
        const e = stored[Number(offset) - 1];
        if (!e || (e.data as { text?: string }).text !== String(i)) missing.push(`${i}@${offset}`);
      }
      expect(missing.slice(0, 5)).toEqual([]);
    } finally {
      await db.close();
    }

    // Back on the same file and port: the clients resume on their own and the stream completes.
    relay = await spawnRelay({ store, port: relay.port });
    expect(relay.url).toBe(url);
    const offsets = await allAppends;
    await reading;
    expect(agentChanges.map((c) => c.state)).toContain('resumed');
    expect(userChanges.map((c) => c.state)).toContain('resumed');
    for (let i = 0; i < TOKENS; i++) {
      expect(offsets[i]).toBe(formatOffset(i + 1));
      if (ackedBeforeSignal.has(i)) expect(ackedBeforeSignal.get(i)).toBe(offsets[i]);
    }
    const wrong = events
      .map((e, i) => [i, e.offset, (e.data as { text?: string }).text] as const)
      .filter(([i, offset, text]) => offset !== formatOffset(i + 1) || text !== String(i));
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(events.length).toBe(TOKENS);

    for (const s of sessions.splice(0)) s.close();
    expect(await exitWithin(relay.stop(), 15_000)).toEqual({ code: 0, signal: null });
    const after = await openStore(store);
    try {
      expect(await after.head(sessionId)).toBe(TOKENS);
    } finally {
      await after.close();
    }
  }, 60_000);

  it('does not wait for a client that has stopped reading', async () => {
    const relay = await spawnRelay({ store: 'memory' });
    const sessionId = await createSession(relay.url);

    // A raw reader that takes the whole timeline with a huge window, then stops reading (it keeps
    // pinging, so the relay has no reason to drop it): the relay's sends back up into the kernel
    // buffers and then its own, and a close frame can no longer get through.
    const ws = new WebSocket(`${relay.url.replace(/^http/, 'ws')}/v1/sessions/${sessionId}/ws`, {
      headers: { authorization: `Bearer ${await sessionToken(sessionId, 'stalled', 'user')}` },
      perMessageDeflate: false,
    });
    sockets.push(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const welcomed = new Promise<void>((resolve) => ws.once('message', () => resolve()));
    ws.send(encodeFrame({ type: 'hello', v: PROTOCOL_VERSION, resume: '-1', window: 65_536 }));
    await welcomed;
    ws.pause();
    const pinger = setInterval(() => ws.send(encodeFrame({ type: 'ping', id: 1 })), 500);
    cleanups.push(() => clearInterval(pinger));

    const agent = await connect({ url: relay.url, token: await sessionToken(sessionId, 'agent-1', 'agent'), resume: 'now', reconnect: backoff() });
    sessions.push(agent);
    const pad = 'x'.repeat(4096);
    const appends: Promise<string>[] = [];
    for (let i = 0; i < 6000; i++) appends.push(agent.sendText(pad)); // 24 MiB, far beyond the socket buffers
    await Promise.all(appends);

    relay.child.kill('SIGTERM');
    // ws gives an unanswered closing handshake 30 s; the relay must not wait that long. The bound
    // is a third of that, generous for a loaded machine, and still fails a relay that waits.
    expect(await exitWithin(relay.exited, 10_000)).toEqual({ code: 0, signal: null });
  }, 40_000);
});

