import { createHook } from 'node:async_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LifelineError, mintToken } from '../../src/protocol/index.js';
import type { TimelineEvent } from '../../src/protocol/index.js';
import { connect, sessionOfToken } from '../../src/sdk/index.js';
import type { LifelineSession, StateChange } from '../../src/sdk/index.js';
import { Emitter } from '../../src/sdk/emitter.js';
import { SECRET, startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';

const b64url = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');
const fakeJwt = (payload: string): string => `${b64url('{"alg":"none"}')}.${payload}.sig`;

function codeOfSync(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(LifelineError);
    return (e as LifelineError).code;
  }
  return undefined;
}

describe('sessionOfToken', () => {
  it('reads the session id from a minted token', async () => {
    expect(sessionOfToken(await mintToken(SECRET, { session: 'room-42', participant: 'alice', role: 'user' }))).toBe('room-42');
  });

  it('decodes base64url payloads of every padding length, with - and _ in them', () => {
    for (const sid of ['a', 'ab', 'abc', 'abcd', 'abcde', '~~~>>>???', 'x'.repeat(97)]) {
      const payload = b64url(JSON.stringify({ sid, sub: 'alice' }));
      expect(sessionOfToken(fakeJwt(payload)), sid).toBe(sid);
    }
    expect(b64url(JSON.stringify({ sid: '~~~>>>???' }))).toMatch(/[-_]/);
  });

  it.each([
    ['empty', ''],
    ['no dots', 'garbage'],
    ['empty payload', 'a..c'],
    ['not base64', 'a.!!!*.c'],
    ['not JSON', `a.${b64url('hello')}.c`],
    ['JSON null', `a.${b64url('null')}.c`],
    ['JSON array', `a.${b64url('[1,2]')}.c`],
    ['no sid', `a.${b64url('{"sub":"alice"}')}.c`],
    ['numeric sid', `a.${b64url('{"sid":42}')}.c`],
  ])('refuses a token with %s with UNAUTHORIZED', (_what, token) => {
    expect(codeOfSync(() => sessionOfToken(token))).toBe('UNAUTHORIZED');
  });
});

/**
 * Records every handle and request (timers, immediates, sockets, servers, fs and dns requests)
 * created while it is on, with the stack that created it, and forgets each one when Node destroys
 * it. What is left at the end and was not created by vitest itself is ours.
 */
const HANDLE_TYPES = new Set([
  'Timeout', 'Immediate', 'TCPWRAP', 'TCPSERVERWRAP', 'TCPCONNECTWRAP', 'PIPEWRAP', 'PIPESERVERWRAP', 'PIPECONNECTWRAP',
  'UDPWRAP', 'TTYWRAP', 'FSREQCALLBACK', 'FSREQPROMISE', 'FSEVENTWRAP', 'STATWATCHER', 'SIGNALWRAP', 'PROCESSWRAP',
  'GETADDRINFOREQWRAP', 'GETNAMEINFOREQWRAP', 'QUERYWRAP', 'WORKER', 'MESSAGEPORT',
]);

interface Tracked {
  type: string;
  resource: { hasRef?: () => boolean };
  stack: string;
}

/** The first stack frame outside Node itself and this tracker: where a handle was made. */
function origin(stack: string): string {
  const frames = stack.split('\n').slice(1).map((f) => f.trim());
  return frames.find((f) => !/\(node:|at node:|AsyncHook\.init|at new Promise \(<anonymous>\)/.test(f)) ?? '(node internals)';
}

function trackHandles() {
  const alive = new Map<number, Tracked>();
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 60;
  const hook = createHook({
    init(id, type, _trigger, resource) {
      if (HANDLE_TYPES.has(type)) alive.set(id, { type, resource: resource as Tracked['resource'], stack: new Error().stack ?? '' });
    },
    destroy(id) {
      alive.delete(id);
    },
  });
  hook.enable();
  // Made by vitest's own runner (its RPC, its throttled reports), not by the code under test.
  const ours = (): Tracked[] => [...alive.values()].filter((t) => !/[\\/](vitest|@vitest|tinypool|tinyspy)[\\/]/.test(origin(t.stack)));
  const describe = (ts: Tracked[]): string[] =>
    ts.map((t) => `${t.type}${t.resource.hasRef?.() === false ? ' (unref)' : ''} made ${origin(t.stack)}`);
  return {
    /** Handles of ours still alive that keep the process running. */
    active: (): Tracked[] => ours().filter((t) => t.resource.hasRef?.() !== false),
    /** Unref'd handles of ours still pending (they do not keep the process alive). */
    unrefd: (): Tracked[] => ours().filter((t) => t.resource.hasRef?.() === false),
    origin,
    describe,
    stop: () => {
      hook.disable();
      Error.stackTraceLimit = limit;
    },
  };
}

/** Counts of each kind of resource that keeps this process alive, timers excepted (vitest's come and go). */
function handleCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (r !== 'Timeout' && r !== 'Immediate') counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

function extraSince(baseline: Map<string, number>): Record<string, number> {
  const extra: Record<string, number> = {};
  for (const [kind, n] of handleCounts()) if (n > (baseline.get(kind) ?? 0)) extra[kind] = n - (baseline.get(kind) ?? 0);
  return extra;
}

/** Polls (with setImmediate: no timer of its own) until `done` holds, for at most `ms`. */
async function settle(done: () => boolean, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!done() && performance.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
}

describe('LifelineSession against an in-process relay', () => {
  let relay: TestRelay | undefined;
  let session: LifelineSession | undefined;

  afterEach(async () => {
    vi.restoreAllMocks();
    session?.close();
    await relay?.close();
    session = undefined;
    relay = undefined;
  });

  it('leaves no listener, timer or socket behind after close()', async () => {
    const baseline = handleCounts();
    const handles = trackHandles();
    try {
      const onSpy = vi.spyOn(Emitter.prototype, 'on');
      relay = await startRelay();
      const id = await relay.createSession();
      const token = await relay.token(id, 'alice', 'user');
      session = await connect({ url: relay.url, token, heartbeatMs: 50, ackDelayMs: 10 });

      const states: StateChange['state'][] = [];
      session.on('state', (c) => states.push(c.state));
      session.on('error', () => {});
      const seen: TimelineEvent[] = [];
      session.on('event', (e) => seen.push(e));
      // The session's emitter is private; the spy's `this` is how the test gets hold of it.
      const emitters = [...new Set(onSpy.mock.contexts as Emitter<never>[])];
      expect(emitters).toHaveLength(1);
      const emitter = emitters[0]!;
      expect(emitter.listenerCount()).toBe(3);

      const offsets = await Promise.all(['a', 'b', 'c'].map((t) => session!.sendText(t)));
      expect(new Set(offsets).size).toBe(3);
      const streamed: TimelineEvent[] = [];
      const iterating = (async () => {
        for await (const e of session!.stream) streamed.push(e);
      })();
      await vi.waitUntil(() => streamed.length === 3 && session!.rttMs !== undefined, { timeout: 5000, interval: 5 });
      expect(handles.active().length).toBeGreaterThan(0); // the tracker sees the session's own handles

      session.close();
      await iterating; // the stream ends with the session
      expect(session.state).toBe('closed');
      expect(states.at(-1)).toBe('closed');
      expect(emitter.listenerCount()).toBe(0);
      expect(await session.append('text.delta', { text: 'late' }).catch((e: LifelineError) => e.code)).toBe('CONNECTION_CLOSED');
      expect(seen.map((e) => e.offset)).toEqual(offsets);

      await relay.close();
      relay = undefined;
      await settle(() => handles.active().length === 0 && Object.keys(extraSince(baseline)).length === 0);
      expect(handles.describe(handles.active())).toEqual([]);
      expect(extraSince(baseline)).toEqual({});
      // Unref'd timers keep nothing alive (Node's own, e.g. the HTTP Date cache or fetch's timer
      // wheel, stay around). Of Lifeline's, only close guards may outlive close(): a link's
      // close() arms one to drop a socket whose closing handshake stalls (client and relay side).
      const lifelines = handles.unrefd().filter((t) => /[\\/]src[\\/]/.test(handles.origin(t.stack)));
      expect(handles.describe(lifelines.filter((t) => !/Link\.close \(/.test(handles.origin(t.stack))))).toEqual([]);
    } finally {
      handles.stop();
    }
  });

  it('a burst of appends started in one tick respects maxOutbox and commits in call order', async () => {
    relay = await startRelay();
    const id = await relay.createSession();
    session = await connect({ url: relay.url, token: await relay.token(id, 'alice', 'user'), maxOutbox: 4 });
    const texts = Array.from({ length: 40 }, (_, i) => `t${i}`);
    const appends = texts.map((t) => session!.sendText(t));
    for (let i = 0; i < 5; i++) await Promise.resolve(); // microtasks only: no ack can arrive
    expect(session.producer.pending).toBe(4);
    let most = 0;
    const watch = setInterval(() => (most = Math.max(most, session!.producer.pending)), 1);
    const offsets = await Promise.all(appends).finally(() => clearInterval(watch));
    expect(most).toBeLessThanOrEqual(4);
    expect([...offsets].sort()).toEqual(offsets);
    const got: string[] = [];
    for await (const e of session.stream) {
      got.push((e.data as { text: string }).text);
      if (got.length === texts.length) break;
    }
    expect(got).toEqual(texts);
  });
});
