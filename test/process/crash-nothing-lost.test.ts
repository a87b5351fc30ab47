/**
 * The promise that matters most, tested with real processes: a relay on a SQLite file is killed
 * with SIGKILL (twice) in the middle of a 10,000-token stream and restarted on the same file and
 * port. The SDK clients heal by themselves; nothing acknowledged is lost, nothing is delivered or
 * stored twice, and the order is the order of the agent's appends.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExponentialBackoff, connect, formatOffset, parseOffset, wsTransport } from '../../src/sdk/index.js';
import type { ClientLink, ClientTransport, ConnectionState, LifelineSession, TimelineEvent } from '../../src/sdk/index.js';
import { openStore } from '../../src/store/index.js';
import type { StoredEvent } from '../../src/store/index.js';
import { tempDir } from '../support/relay.js';
import { createSession, killAllRelays, sessionToken, spawnRelay, until } from '../support/relay-process.js';
import type { RelayProcess } from '../support/relay-process.js';

const TOKENS = 10_000;

const sessions: LifelineSession[] = [];
const dirs: (() => void)[] = [];

afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  await killAllRelays();
  for (const remove of dirs.splice(0)) remove();
});

/**
 * The SDK's own WebSocket transport, observed: counts `appended` frames that answer a retried
 * append with its original offset (duplicate: true), i.e. appends that were committed before a
 * crash but whose acknowledgement the crash swallowed.
 */
function observedWs(counter: { duplicates: number }): ClientTransport {
  const inner = wsTransport();
  return {
    name: inner.name,
    async connect(target, signal) {
      const link = await inner.connect(target, signal);
      const outer: ClientLink = {
        onMessage: undefined,
        onClose: undefined,
        get bufferedAmount() {
          return link.bufferedAmount;
        },
        send: (data) => link.send(data),
        close: (code, reason) => link.close(code, reason),
      };
      link.onMessage = (data) => {
        if (typeof data === 'string') counter.duplicates += data.split('"duplicate":true').length - 1;
        outer.onMessage?.(data);
      };
      link.onClose = (code, reason) => outer.onClose?.(code, reason);
      return outer;
    },
  };
}

function backoff(): ExponentialBackoff {
  return new ExponentialBackoff({ initialMs: 20, maxMs: 200 });
}

/** Collects the session's events from its stream until `count` have arrived. */
function collect(session: LifelineSession, count: number): { events: TimelineEvent[]; done: Promise<void> } {
  const events: TimelineEvent[] = [];
  const done = (async () => {
    for await (const e of session.stream) {
      events.push(e);
      if (events.length >= count) return;
    }
  })();
  return { events, done };
}

function states(session: LifelineSession): ConnectionState[] {
  const seen: ConnectionState[] = [];
  session.on('state', (c) => seen.push(c.state));
  return seen;
}

/** Every token once, in order: token i at offset i + 1 with text String(i). */
function expectTokensInOrder(events: readonly { offset: string; kind: string; data: unknown }[], who: string): void {
  const problems: string[] = [];
  if (events.length !== TOKENS) problems.push(`${who}: ${events.length} events, expected ${TOKENS}`);
  for (let i = 0; i < events.length && problems.length < 5; i++) {
    const e = events[i]!;
    const text = (e.data as { text?: unknown }).text;
    if (e.kind !== 'text.delta' || text !== String(i) || e.offset !== formatOffset(i + 1)) {
      problems.push(`${who}[${i}]: ${e.kind} ${JSON.stringify(text)} at ${e.offset}, expected text.delta "${i}" at ${formatOffset(i + 1)}`);
    }
  }
  expect(problems).toEqual([]);
}

describe('relay killed with SIGKILL mid-stream, restarted on the same SQLite file and port', () => {
  it('delivers and stores every one of 10,000 tokens exactly once, in order, across two crashes', async () => {
    const tmp = tempDir('lifeline-crash-');
    dirs.push(tmp.remove);
    const file = join(tmp.dir, 'relay.db');
    const store = `sqlite:${file}`;

    let relay: RelayProcess = await spawnRelay({ store });
    const url = relay.url;
    const sessionId = await createSession(url);

    const retried = { duplicates: 0 };
    const agent = await connect({
      url,
      transport: observedWs(retried),
      token: await sessionToken(sessionId, 'agent-1', 'agent'),
      reconnect: backoff(),
      resume: 'now',
      // Bounded outbox: at most 256 appends in flight, the rest wait for room inside append().
      maxOutbox: 256,
    });
    sessions.push(agent);
    const user = await connect({ url, token: await sessionToken(sessionId, 'user-1', 'user'), reconnect: backoff() });
    sessions.push(user);
    const agentStates = states(agent);
    const userStates = states(user);
    const received = collect(user, TOKENS);

    // Two crash points: after ~3,000 and ~6,500 acknowledged appends, each plus a random amount
    // (logged, so a failure can be replayed by hand). The kill is sent from inside a callback, so
    // it lands while appends are in flight in both directions; preferably at a moment when the
    // user has already seen events whose acknowledgements the agent has not had yet (committed,
    // so the agent's retries of them must come back as duplicates), but not waiting long for one.
    const killAt = [3000 + Math.floor(Math.random() * 1500), 6500 + Math.floor(Math.random() * 1500)];
    console.info(`crash points (acked appends): ${killAt.join(', ')}`);
    let acked = 0;
    let seen = 0;
    const ackedAtKill: number[] = [];
    const receivedAtKill: number[] = [];
    const maybeCrash = (): void => {
      const at = killAt[ackedAtKill.length];
      if (at === undefined || acked < at) return;
      if (seen <= acked && acked < at + 200) return;
      ackedAtKill.push(acked);
      receivedAtKill.push(seen);
      relay.child.kill('SIGKILL');
    };
    user.on('event', () => {
      seen++;
      maybeCrash();
    });
    const appends: Promise<string>[] = [];
    for (let i = 0; i < TOKENS; i++) {
      appends.push(
        agent.sendText(String(i)).then((offset) => {
          acked++;
          maybeCrash();
          return offset;
        }),
      );
    }
    const allAppends = Promise.all(appends);
    allAppends.catch(() => {}); // awaited below; keep a failure from being reported as unhandled

    for (let crash = 0; crash < killAt.length; crash++) {
      await until(() => ackedAtKill.length > crash, `crash point ${crash + 1} (${killAt[crash]} acked)`, 30_000);
      console.info(`crash ${crash + 1}: agent had ${ackedAtKill[crash]} appends acknowledged, user had seen ${receivedAtKill[crash]} events`);
      const exit = await relay.exited;
      expect(exit.signal).toBe('SIGKILL');
      relay = await spawnRelay({ store, port: relay.port });
      expect(relay.url).toBe(url);
    }

    const resolved = await allAppends;
    await received.done;

    // The crashes really happened mid-stream.
    expect(ackedAtKill[0]).toBeLessThan(TOKENS);
    expect(ackedAtKill[1]).toBeLessThan(TOKENS);
    expect(receivedAtKill[1]).toBeLessThan(TOKENS);
    // Both clients noticed each crash and healed by themselves.
    expect(agentStates.filter((s) => s === 'resumed').length).toBeGreaterThanOrEqual(2);
    expect(userStates.filter((s) => s === 'resumed').length).toBeGreaterThanOrEqual(2);
    expect(userStates).not.toContain('closed');

    // Every append resolved with its own offset, consecutive, in the order they were made.
    expect(resolved.length).toBe(TOKENS);
    const badOffsets = resolved.map((o, i) => [i, o] as const).filter(([i, o]) => parseOffset(o) !== i + 1);
    expect(badOffsets.slice(0, 5)).toEqual([]);
    expect(agent.producer.pending).toBe(0);

    // The live reader saw every token once, in order (offsets consecutive), matching the acks.
    expectTokensInOrder(received.events, 'user');

    // A third client reading the whole timeline after the crashes sees the same.
    const late = await connect({ url, token: await sessionToken(sessionId, 'user-2', 'user'), reconnect: backoff() });
    sessions.push(late);
    const replay = collect(late, TOKENS);
    await replay.done;
    expectTokensInOrder(replay.events, 'replay');
    for (const s of sessions.splice(0)) s.close();
    console.info(
      `acked at the crashes: ${ackedAtKill.join(', ')}; committed-but-unacknowledged appends retried and ` +
        `recognised as duplicates: ${retried.duplicates}`,
    );

    // And the file itself, opened after a clean stop, holds each token exactly once: the outbox's
    // retries after each crash were recognised as duplicates, never appended again.
    const stopped = await relay.stop();
    expect(stopped.code).toBe(0);
    const db = await openStore(store);
    try {
      expect(await db.head(sessionId)).toBe(TOKENS);
      const stored: StoredEvent[] = [];
      for (let after = 0; ; ) {
        const batch = await db.read(sessionId, after, 1000);
        if (batch.length === 0) break;
        stored.push(...batch);
        after = batch[batch.length - 1]!.seq;
        if (stored.length > TOKENS + 1000) break; // bounded: duplicates would show up as excess
      }
      expectTokensInOrder(
        stored.map((e) => ({ offset: formatOffset(e.seq), kind: e.kind, data: e.data })),
        'store',
      );
      const producer = await db.producer(sessionId, `agent-1/${agent.producer.id}`);
      expect(producer).toEqual({ id: `agent-1/${agent.producer.id}`, epoch: 0, seq: TOKENS - 1 });
    } finally {
      await db.close();
    }
  }, 60_000);
});
