/**
 * Idempotent producers end to end: raw protocol frames over real WebSockets, a SQLite file that
 * outlives the relay process state, and the SDK's epoch fencing across a restart.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LifelineError, formatOffset } from '../../src/protocol/index.js';
import type { ErrorCode, ProducerRef, ServerFrame } from '../../src/protocol/index.js';
import { ExponentialBackoff } from '../../src/sdk/index.js';
import { useCleanup } from '../support/fixture.js';
import type { Cleanup } from '../support/fixture.js';
import { headOf } from '../support/http.js';
import { RawClient } from '../support/raw-ws.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { controllableTransport, stateReached } from '../support/sdk.js';
import { waitFor } from '../support/wait.js';

type Answer = Extract<ServerFrame, { type: 'appended' | 'error' }>;

function ref(id: string, epoch: number, seq: number): ProducerRef {
  return { id, epoch, seq };
}

async function appendText(client: RawClient, producer: ProducerRef, text: string): Promise<Answer> {
  return client.append({ producer, kind: 'text.delta', data: { text } });
}

function expectAppended(a: Answer, offset?: string, duplicate = false): string {
  expect(a.type, JSON.stringify(a)).toBe('appended');
  const got = a as Extract<Answer, { type: 'appended' }>;
  expect(got.duplicate).toBe(duplicate);
  if (offset !== undefined) expect(got.offset).toBe(offset);
  return got.offset;
}

function expectRefused(a: Answer, code: ErrorCode, producer: ProducerRef): void {
  expect(a).toMatchObject({ type: 'error', code, fatal: false, producer });
}

/** Every event of the session, read over a fresh connection from the start. */
async function timeline(c: Cleanup, relay: TestRelay, sid: string): Promise<{ offset: string; text: string; participant: string; device: string }[]> {
  const head = await headOf(relay, sid);
  const client = await c.raw(relay.url, sid, { token: await relay.token(sid, 'auditor', 'user') });
  await client.hello({ resume: '-1' });
  if (head !== '-1') await client.take((f) => f.type === 'event' && f.event.offset === head, `event ${head}`);
  await client.close();
  return client.events.map((e) => ({
    offset: e.offset,
    text: (e.data as { text: string }).text,
    participant: e.from.participant,
    device: e.from.device,
  }));
}

async function writer(c: Cleanup, relay: TestRelay, sid: string, participant = 'bot', role: 'user' | 'agent' = 'agent'): Promise<RawClient> {
  const client = await c.raw(relay.url, sid, { token: await relay.token(sid, participant, role) });
  await client.hello({ device: `${participant}-dev` });
  return client;
}

describe('idempotent appends over raw frames', () => {
  it('a retried append answers the original offset with duplicate:true, and the timeline holds it once', async () => {
    const c = useCleanup();
    const relay = await c.relay({ idleTimeoutMs: 60_000 });
    const sid = await relay.createSession();
    const reader = await c.raw(relay.url, sid, { token: await relay.token(sid, 'reader', 'user') });
    await reader.hello({ resume: '-1' });
    const w = await writer(c, relay, sid);

    const o1 = expectAppended(await appendText(w, ref('p', 0, 0), 'one'));
    const o2 = expectAppended(await appendText(w, ref('p', 0, 1), 'two'));
    expect([o1, o2]).toEqual([formatOffset(1), formatOffset(2)]);
    // Retries of the newest and of an older seq, one of them with different data: the original wins.
    expectAppended(await appendText(w, ref('p', 0, 1), 'two'), o2, true);
    expectAppended(await appendText(w, ref('p', 0, 0), 'one'), o1, true);
    expectAppended(await appendText(w, ref('p', 0, 0), 'one, but edited'), o1, true);
    // The same retry from a second connection of the same participant (a reconnect) is a duplicate too.
    const w2 = await writer(c, relay, sid);
    expectAppended(await appendText(w2, ref('p', 0, 1), 'two'), o2, true);
    expect(await headOf(relay, sid)).toBe(o2);

    // The live reader saw each event once: a marker appended last arrives right after them.
    const o3 = expectAppended(await appendText(w, ref('p', 0, 2), 'marker'));
    await reader.take((f) => f.type === 'event' && f.event.offset === o3, 'marker');
    expect(reader.events.map((e) => [e.offset, (e.data as { text: string }).text])).toEqual([
      [o1, 'one'],
      [o2, 'two'],
      [o3, 'marker'],
    ]);
    expect((await timeline(c, relay, sid)).map((e) => e.text)).toEqual(['one', 'two', 'marker']);
  });

  it('a seq gap → SEQUENCE_GAP, nothing written; the producer continues at the next seq', async () => {
    const c = useCleanup();
    const relay = await c.relay({ idleTimeoutMs: 60_000 });
    const sid = await relay.createSession();
    const w = await writer(c, relay, sid);
    const o1 = expectAppended(await appendText(w, ref('p', 0, 0), 'a'));
    expectRefused(await appendText(w, ref('p', 0, 2), 'skipped one'), 'SEQUENCE_GAP', ref('p', 0, 2));
    // A brand-new producer must start at 0 too.
    expectRefused(await appendText(w, ref('q', 0, 3), 'q starts late'), 'SEQUENCE_GAP', ref('q', 0, 3));
    expect(await headOf(relay, sid)).toBe(o1);
    expectAppended(await appendText(w, ref('p', 0, 1), 'b'), formatOffset(2));
    expectAppended(await appendText(w, ref('q', 0, 0), 'q'), formatOffset(3));
    expect((await timeline(c, relay, sid)).map((e) => e.text)).toEqual(['a', 'b', 'q']);
  });

  it('a stale epoch → STALE_EPOCH and nothing written, from any connection, retries included', async () => {
    const c = useCleanup();
    const relay = await c.relay({ idleTimeoutMs: 60_000 });
    const sid = await relay.createSession();
    const old = await writer(c, relay, sid);
    expectAppended(await appendText(old, ref('p', 0, 0), 'old 0'));
    expectAppended(await appendText(old, ref('p', 0, 1), 'old 1'));
    // A replacement instance takes over at epoch 1.
    const fresh = await writer(c, relay, sid);
    const o3 = expectAppended(await appendText(fresh, ref('p', 1, 0), 'new 0'));
    // The old instance is fenced: new appends, retries of committed ones, on either connection.
    expectRefused(await appendText(old, ref('p', 0, 2), 'old 2'), 'STALE_EPOCH', ref('p', 0, 2));
    expectRefused(await appendText(old, ref('p', 0, 1), 'old 1'), 'STALE_EPOCH', ref('p', 0, 1));
    expectRefused(await appendText(fresh, ref('p', 0, 2), 'old 2'), 'STALE_EPOCH', ref('p', 0, 2));
    expect(await headOf(relay, sid)).toBe(o3);
    // The fenced connection itself is still open (the error is not fatal) and the new epoch goes on.
    await old.ping();
    expectAppended(await appendText(fresh, ref('p', 1, 1), 'new 1'), formatOffset(4));
    expect((await timeline(c, relay, sid)).map((e) => e.text)).toEqual(['old 0', 'old 1', 'new 0', 'new 1']);
  });

  it('a new epoch must start at seq 0 → BAD_EPOCH_START, nothing written', async () => {
    const c = useCleanup();
    const relay = await c.relay({ idleTimeoutMs: 60_000 });
    const sid = await relay.createSession();
    const w = await writer(c, relay, sid);
    const o1 = expectAppended(await appendText(w, ref('p', 0, 0), 'a'));
    expectRefused(await appendText(w, ref('p', 1, 5), 'b'), 'BAD_EPOCH_START', ref('p', 1, 5));
    expectRefused(await appendText(w, ref('p', 7, 1), 'b'), 'BAD_EPOCH_START', ref('p', 7, 1));
    expect(await headOf(relay, sid)).toBe(o1);
    // The refused epochs left no trace: epoch 0 continues, and epoch 1 can still start at 0.
    expectAppended(await appendText(w, ref('p', 0, 1), 'b'), formatOffset(2));
    expectAppended(await appendText(w, ref('p', 1, 0), 'c'), formatOffset(3));
  });

  it('producer ids are scoped per participant: the same id of two participants is two producers', async () => {
    const c = useCleanup();
    const relay = await c.relay({ idleTimeoutMs: 60_000 });
    const sid = await relay.createSession();
    const alice = await writer(c, relay, sid, 'alice', 'user');
    const bob = await writer(c, relay, sid, 'bob', 'user');
    const a0 = expectAppended(await appendText(alice, ref('tab', 0, 0), 'alice 0'));
    const a1 = expectAppended(await appendText(alice, ref('tab', 0, 1), 'alice 1'));
    // Not a duplicate of alice's seq 0: bob's own first append.
    const b0 = expectAppended(await appendText(bob, ref('tab', 0, 0), 'bob 0'));
    expect(new Set([a0, a1, b0]).size).toBe(3);
    // Alice moving to epoch 1 does not fence bob.
    expectAppended(await appendText(alice, ref('tab', 1, 0), 'alice epoch 1'));
    expectAppended(await appendText(bob, ref('tab', 0, 1), 'bob 1'));
    expectRefused(await appendText(alice, ref('tab', 0, 2), 'alice stale'), 'STALE_EPOCH', ref('tab', 0, 2));

    // Each one's welcome reports its own state; an unknown producer is seq -1.
    const aw = await c.raw(relay.url, sid, { token: await relay.token(sid, 'alice', 'user') });
    expect((await aw.hello({ producers: ['tab', 'other'] })).producers).toEqual([
      { id: 'tab', epoch: 1, seq: 0 },
      { id: 'other', epoch: 0, seq: -1 },
    ]);
    const bw = await c.raw(relay.url, sid, { token: await relay.token(sid, 'bob', 'user') });
    expect((await bw.hello({ producers: ['tab'] })).producers).toEqual([{ id: 'tab', epoch: 0, seq: 1 }]);

    const events = await timeline(c, relay, sid);
    expect(events.map((e) => `${e.participant}:${e.text}`)).toEqual(['alice:alice 0', 'alice:alice 1', 'bob:bob 0', 'alice:alice epoch 1', 'bob:bob 1']);
  });
});

describe('producer state survives a relay restart (SQLite)', () => {
  it('after a restart on the same file a retry answers the original offset, and a stale epoch is still fenced', async () => {
    const c = useCleanup();
    const path = join(c.dir('lifeline-idem-'), 'relay.db');
    const first = await startRelay({ store: `sqlite:${path}`, idleTimeoutMs: 60_000 });
    c.add(() => first.close());
    const sid = await first.createSession({ id: 'durable' });
    const w = await writer(c, first, sid);
    const o1 = expectAppended(await appendText(w, ref('p', 0, 0), 'e0 s0'));
    expectAppended(await appendText(w, ref('p', 0, 1), 'e0 s1'));
    const o3 = expectAppended(await appendText(w, ref('p', 1, 0), 'e1 s0'));
    const o4 = expectAppended(await appendText(w, ref('p', 1, 1), 'e1 s1'));
    await w.close();
    await first.close();

    const second = await startRelay({ store: `sqlite:${path}`, idleTimeoutMs: 60_000 });
    c.add(() => second.close());
    expect(await headOf(second, sid)).toBe(o4);
    const again = await c.raw(second.url, sid, { token: await second.token(sid, 'bot', 'agent') });
    expect((await again.hello({ producers: ['p'] })).producers).toEqual([{ id: 'p', epoch: 1, seq: 1 }]);
    expectAppended(await appendText(again, ref('p', 1, 1), 'e1 s1'), o4, true);
    expectAppended(await appendText(again, ref('p', 1, 0), 'e1 s0'), o3, true);
    expectRefused(await appendText(again, ref('p', 0, 0), 'e0 s0'), 'STALE_EPOCH', ref('p', 0, 0));
    expectRefused(await appendText(again, ref('p', 0, 2), 'e0 s2'), 'STALE_EPOCH', ref('p', 0, 2));
    expectRefused(await appendText(again, ref('p', 1, 3), 'e1 s3'), 'SEQUENCE_GAP', ref('p', 1, 3));
    expect(await headOf(second, sid)).toBe(o4);
    expectAppended(await appendText(again, ref('p', 1, 2), 'e1 s2'), formatOffset(5));
    expect((await timeline(c, second, sid)).map((e) => e.text)).toEqual(['e0 s0', 'e0 s1', 'e1 s0', 'e1 s1', 'e1 s2']);
    expect(o1).toBe(formatOffset(1));
  });

  it('SDK: welcome carries producer state; a new instance after a restart starts the next epoch and fences the old one', async () => {
    const c = useCleanup();
    const path = join(c.dir('lifeline-idem-'), 'relay.db');
    const first = await startRelay({ store: `sqlite:${path}` });
    c.add(() => first.close());
    const sid = await first.createSession({ id: 'fencing' });
    const token = await first.token(sid, 'bot', 'agent');
    const reconnect = new ExponentialBackoff({ initialMs: 5, maxMs: 20 });

    // The old instance: producer "brain", fresh, so it starts at epoch 0.
    const oldTransport = controllableTransport();
    const old = await c.sdk({ url: first.url, token, device: 'host-1', producer: 'brain', transport: oldTransport, reconnect });
    expect(old.welcome?.producers).toEqual([{ id: 'brain', epoch: 0, seq: -1 }]);
    const committed = await Promise.all(['a', 'b', 'c'].map((t) => old.sendText(t)));
    expect(committed).toEqual([1, 2, 3].map(formatOffset));
    expect(old.producer).toMatchObject({ id: 'brain', epoch: 0, nextSeq: 3, pending: 0 });

    // The relay restarts; the old instance cannot get through yet and queues two more appends.
    oldTransport.hold();
    const reconnecting = stateReached(old, 'reconnecting');
    await first.close();
    await reconnecting;
    const oldErrors: LifelineError[] = [];
    old.on('error', (e) => oldErrors.push(e));
    const late = [old.sendText('late 1'), old.sendText('late 2')].map((p) =>
      p.then(
        (offset) => ({ offset }),
        (err: unknown) => ({ err }),
      ),
    );

    const second = await startRelay({ store: `sqlite:${path}` });
    c.add(() => second.close());
    // The replacement with the same producer id: the welcome shows epoch 0 up to seq 2, so it
    // starts epoch 1 at seq 0.
    const fresh = await c.sdk({ url: second.url, token, device: 'host-2', producer: 'brain', reconnect });
    expect(fresh.welcome?.producers).toEqual([{ id: 'brain', epoch: 0, seq: 2 }]);
    expect(fresh.producer).toMatchObject({ id: 'brain', epoch: 1, nextSeq: 0 });
    expect(await fresh.sendText('from the replacement')).toBe(formatOffset(4));

    // The old instance comes back (to the restarted relay): its queued epoch-0 appends are refused.
    oldTransport.baseUrl = second.url;
    oldTransport.release();
    for (const outcome of await Promise.all(late)) {
      expect('err' in outcome, JSON.stringify(outcome)).toBe(true);
      const err = (outcome as { err: unknown }).err;
      expect(err).toBeInstanceOf(LifelineError);
      expect((err as LifelineError).code).toBe('STALE_EPOCH');
    }
    await waitFor(() => oldErrors.some((e) => e.code === 'STALE_EPOCH'));
    // Fenced for good: a new append is refused at once.
    await expect(old.sendText('still here?')).rejects.toMatchObject({ code: 'STALE_EPOCH' });

    // Nothing of the old instance's got in after the takeover; the replacement keeps writing.
    expect(await fresh.sendText('and more')).toBe(formatOffset(5));
    const events = await timeline(c, second, sid);
    expect(events.map((e) => `${e.device}:${e.text}`)).toEqual([
      'host-1:a',
      'host-1:b',
      'host-1:c',
      'host-2:from the replacement',
      'host-2:and more',
    ]);
  });

  it('SDK: an instance that passes its epoch explicitly continues the same epoch after a restart', async () => {
    const c = useCleanup();
    const path = join(c.dir('lifeline-idem-'), 'relay.db');
    const first = await startRelay({ store: `sqlite:${path}` });
    c.add(() => first.close());
    const sid = await first.createSession({ id: 'lease' });
    const token = await first.token(sid, 'bot', 'agent');
    const a = await c.sdk({ url: first.url, token, producer: 'worker', epoch: 3 });
    await a.sendText('x');
    await a.sendText('y');
    a.close();
    await first.close();
    const second = await startRelay({ store: `sqlite:${path}` });
    c.add(() => second.close());
    const b = await c.sdk({ url: second.url, token, producer: 'worker', epoch: 3 });
    expect(b.welcome?.producers).toEqual([{ id: 'worker', epoch: 3, seq: 1 }]);
    expect(b.producer).toMatchObject({ epoch: 3, nextSeq: 2 });
    expect(await b.sendText('z')).toBe(formatOffset(3));
  });
});
