import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LifelineError } from '../../src/protocol/index.js';
import type { ErrorCode, Json, Origin, ProducerRef } from '../../src/protocol/index.js';
import { leaseProducerId } from '../../src/store/index.js';
import type { AppendEntry, AppendOutcome, SessionRecord, Store, StoredEvent } from '../../src/store/index.js';

/** What a backend's test file hands the contract: a fresh, empty store per test. */
export interface StoreFixture {
  store: Store;
  /** Durable backends: opens a new Store on the same data (the contract closes the old one first). */
  reopen?: () => Promise<Store>;
  /** Closes whatever is still open and removes any files. */
  cleanup: () => Promise<void>;
}

const ALICE: Origin = { participant: 'alice', device: 'phone-1', role: 'user' };

function record(id: string, over: Partial<SessionRecord> = {}): SessionRecord {
  return { id, createdAt: 1_700_000_000_000, expiresAt: null, metadata: {}, ...over };
}

function body(n: number, over: Partial<Omit<StoredEvent, 'seq'>> = {}): Omit<StoredEvent, 'seq'> {
  return { ts: 1_700_000_000_000 + n, from: ALICE, kind: 'text.delta', data: { text: `t${n}` }, ...over };
}

/** An append; `p` is "producer/epoch/seq" shorthand, absent for relay-written events. */
function entry(sessionId: string, n: number, p?: [string, number, number], over: Partial<Omit<StoredEvent, 'seq'>> = {}): AppendEntry {
  const producer: ProducerRef | undefined = p && { id: p[0], epoch: p[1], seq: p[2] };
  return { sessionId, ...(producer ? { producer } : {}), event: body(n, over) };
}

const appended = (seq: number): AppendOutcome => ({ status: 'appended', seq });
const duplicate = (seq: number): AppendOutcome => ({ status: 'duplicate', seq });

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LifelineError);
  expect((err as LifelineError).code).toBe(code);
}

function sameBytes(actual: Uint8Array | undefined, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  expect(actual!.byteLength).toBe(expected.byteLength);
  expect(Buffer.compare(Buffer.from(actual!.buffer, actual!.byteOffset, actual!.byteLength), Buffer.from(expected))).toBe(0);
}

const texts = (events: StoredEvent[]): Json[] => events.map((e) => (e.data as { text: string }).text);

export function runStoreContract(name: string, open: () => Promise<StoreFixture>): void {
  describe(`Store contract: ${name}`, () => {
    let fx: StoreFixture;
    let store: Store;

    beforeEach(async () => {
      fx = await open();
      store = fx.store;
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    describe('sessions', () => {
      it('creates and gets a session with its metadata intact', async () => {
        const metadata: Record<string, Json> = {
          title: 'Support call — ünïcødé ✓',
          n: 42,
          f: 1.5,
          ok: true,
          none: null,
          tags: ['a', 'b', 1, false],
          nested: { deep: { list: [{ x: 1 }, []] } },
        };
        const rec = record('s1', { expiresAt: 1_700_000_360_000, metadata });
        await store.createSession(rec);
        // The store adds what it keeps: no idle TTL unless given, and the last activity (creation).
        expect(await store.getSession('s1')).toEqual({ ...rec, idleTtlMs: null, lastActiveAt: rec.createdAt });
        expect(await store.getSession('nope')).toBeUndefined();
      });

      it('throws SESSION_EXISTS for a duplicate id and keeps the original record', async () => {
        await store.createSession(record('s1', { metadata: { v: 1 } }));
        await expectCode(store.createSession(record('s1', { metadata: { v: 2 } })), 'SESSION_EXISTS');
        expect((await store.getSession('s1'))?.metadata).toEqual({ v: 1 });
      });

      it('deletes a session and reports whether it existed', async () => {
        await store.createSession(record('s1'));
        await store.createSession(record('s2'));
        expect(await store.deleteSession('s1')).toBe(true);
        expect(await store.deleteSession('s1')).toBe(false);
        expect(await store.deleteSession('never')).toBe(false);
        expect(await store.getSession('s1')).toBeUndefined();
        expect(await store.head('s1')).toBeUndefined();
        expect(await store.getSession('s2')).toBeDefined();
      });

      it('lists expired sessions (expiresAt <= now), honouring the limit', async () => {
        const now = 1_700_000_100_000;
        await store.createSession(record('forever', { expiresAt: null }));
        await store.createSession(record('past', { expiresAt: now - 1 }));
        await store.createSession(record('exact', { expiresAt: now }));
        await store.createSession(record('future', { expiresAt: now + 1 }));
        expect((await store.expiredSessions(now, 10)).sort()).toEqual(['exact', 'past']);
        const one = await store.expiredSessions(now, 1);
        expect(one).toHaveLength(1);
        expect(['exact', 'past']).toContain(one[0]);
        expect(await store.expiredSessions(now, 0)).toEqual([]);
        expect(await store.expiredSessions(now - 10, 10)).toEqual([]);
        await store.deleteSession('past');
        expect(await store.expiredSessions(now, 10)).toEqual(['exact']);
      });
    });

    describe('append and read', () => {
      beforeEach(async () => {
        for (const id of ['a', 'b', 'c']) await store.createSession(record(id));
      });

      it('returns no outcomes for an empty batch', async () => {
        expect(await store.append([])).toEqual([]);
      });

      it('assigns seq 1, 2, 3 per session, independently', async () => {
        expect(await store.append([entry('a', 1)])).toEqual([appended(1)]);
        expect(await store.append([entry('b', 1)])).toEqual([appended(1)]);
        expect(await store.append([entry('a', 2)])).toEqual([appended(2)]);
        expect(await store.append([entry('a', 3)])).toEqual([appended(3)]);
        expect(await store.append([entry('b', 2)])).toEqual([appended(2)]);
        expect(await store.head('a')).toBe(3);
        expect(await store.head('b')).toBe(2);
        expect(await store.head('c')).toBe(0);
      });

      it('appends one batch across several sessions', async () => {
        const out = await store.append([entry('a', 1), entry('b', 1), entry('a', 2), entry('c', 1), entry('b', 2), entry('a', 3)]);
        expect(out).toEqual([appended(1), appended(1), appended(2), appended(1), appended(2), appended(3)]);
        expect(texts(await store.read('a', 0, 10))).toEqual(['t1', 't2', 't3']);
        expect(texts(await store.read('b', 0, 10))).toEqual(['t1', 't2']);
        expect(texts(await store.read('c', 0, 10))).toEqual(['t1']);
        expect([await store.head('a'), await store.head('b'), await store.head('c')]).toEqual([3, 2, 1]);
      });

      it('reads in order after a seq, paging by limit', async () => {
        await store.append(Array.from({ length: 10 }, (_, i) => entry('a', i + 1)));
        const all = await store.read('a', 0, 100);
        expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect(texts(all)).toEqual(all.map((e) => `t${e.seq}`));
        expect((await store.read('a', 0, 3)).map((e) => e.seq)).toEqual([1, 2, 3]);
        expect((await store.read('a', 3, 3)).map((e) => e.seq)).toEqual([4, 5, 6]);
        expect((await store.read('a', 9, 5)).map((e) => e.seq)).toEqual([10]);
        expect(await store.read('a', 10, 5)).toEqual([]);
        expect(await store.read('a', 0, 0)).toEqual([]);
        expect(await store.read('b', 0, 10)).toEqual([]);
        expect(await store.read('unknown', 0, 10)).toEqual([]);
      });

      it('round-trips every field of an event', async () => {
        const data: Json = { text: 'hé 👋', id: 'm1', extra: { n: [1, 2.5, null, true], s: '' } };
        const ev = body(1, { from: { participant: 'bot', device: 'srv', role: 'agent' }, track: 'main', data });
        await store.append([{ sessionId: 'a', producer: { id: 'p', epoch: 3, seq: 0 }, event: ev }]);
        const [got] = await store.read('a', 0, 1);
        expect(got).toEqual({ ...ev, seq: 1 });
      });

      it('keeps track optional', async () => {
        await store.append([entry('a', 1), entry('a', 2, undefined, { track: 'mic' })]);
        const [first, second] = await store.read('a', 0, 10);
        expect(first?.track).toBeUndefined();
        expect(second?.track).toBe('mic');
        expect(first?.bin).toBeUndefined();
      });

      it('round-trips binary payloads byte-exact', async () => {
        const every = Uint8Array.from({ length: 256 }, (_, i) => i);
        const big = new Uint8Array(64 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
        const audio = { kind: 'audio.frame' as const, track: 'mic', data: { codec: 'opus' } };
        await store.append([
          entry('a', 1, ['mic', 0, 0], { ...audio, bin: every }),
          entry('a', 2, ['mic', 0, 1], { ...audio, bin: big }),
          entry('a', 3, ['mic', 0, 2], { ...audio, bin: new Uint8Array(0) }),
        ]);
        const [e1, e2, e3] = await store.read('a', 0, 10);
        sameBytes(e1?.bin, every);
        sameBytes(e2?.bin, big);
        sameBytes(e3?.bin, new Uint8Array(0));
      });

      it('copies the binary payload on append (a reused input buffer does not change the event)', async () => {
        const input = Buffer.from([1, 2, 3, 4]);
        await store.append([entry('a', 1, undefined, { kind: 'audio.frame', data: { codec: 'opus' }, bin: input })]);
        input.fill(0xff);
        const [got] = await store.read('a', 0, 1);
        sameBytes(got?.bin, new Uint8Array([1, 2, 3, 4]));
      });

      it('reports head: undefined for an unknown session, 0 for an empty one', async () => {
        expect(await store.head('unknown')).toBeUndefined();
        expect(await store.head('a')).toBe(0);
        await store.append([entry('a', 1), entry('a', 2)]);
        expect(await store.head('a')).toBe(2);
      });

      it('always appends relay-written entries (no producer)', async () => {
        const out = await store.append([entry('a', 1), entry('a', 1), entry('a', 1), entry('b', 1)]);
        expect(out).toEqual([appended(1), appended(2), appended(3), appended(1)]);
        expect(await store.producer('a', 'anything')).toBeUndefined();
      });

      it('rejects SESSION_NOT_FOUND for one entry without affecting the others in the batch', async () => {
        const out = await store.append([entry('a', 1, ['p', 0, 0]), entry('ghost', 1, ['p', 0, 0]), entry('a', 2, ['p', 0, 1]), entry('ghost', 2)]);
        expect(out).toEqual([appended(1), { status: 'rejected', code: 'SESSION_NOT_FOUND' }, appended(2), { status: 'rejected', code: 'SESSION_NOT_FOUND' }]);
        expect(texts(await store.read('a', 0, 10))).toEqual(['t1', 't2']);
        expect(await store.head('ghost')).toBeUndefined();
        expect(await store.getSession('ghost')).toBeUndefined();
        expect(await store.read('ghost', 0, 10)).toEqual([]);
        expect(await store.producer('ghost', 'p')).toBeUndefined();
      });
    });

    describe('idempotent producers', () => {
      beforeEach(async () => {
        await store.createSession(record('a'));
        await store.createSession(record('b'));
      });

      it('accepts a new producer at seq 0, in any epoch, and records its state', async () => {
        expect(await store.producer('a', 'p')).toBeUndefined();
        expect(await store.append([entry('a', 1, ['p', 0, 0]), entry('a', 2, ['q', 7, 0])])).toEqual([appended(1), appended(2)]);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 0, seq: 0 });
        expect(await store.producer('a', 'q')).toEqual({ id: 'q', epoch: 7, seq: 0 });
        expect(await store.producer('b', 'p')).toBeUndefined();
        expect(await store.producer('unknown', 'p')).toBeUndefined();
      });

      it('accepts seq 0 and 1 of one producer in a single batch', async () => {
        expect(await store.append([entry('a', 1, ['p', 0, 0]), entry('a', 2, ['p', 0, 1])])).toEqual([appended(1), appended(2)]);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 0, seq: 1 });
      });

      it('treats a retry of seq 0 within the same batch as a duplicate of the original', async () => {
        const out = await store.append([entry('a', 1, ['p', 0, 0]), entry('a', 1, ['p', 0, 0])]);
        expect(out).toEqual([appended(1), duplicate(1)]);
        expect(await store.head('a')).toBe(1);
        expect(await store.read('a', 0, 10)).toHaveLength(1);
      });

      it('answers a retry with the ORIGINAL seq, writing nothing', async () => {
        await store.append([entry('a', 1, ['p', 0, 0])]);
        await store.append([entry('a', 2)]);
        await store.append([entry('a', 3, ['q', 0, 0])]);
        await store.append([entry('a', 4, ['p', 0, 1])]);
        expect(await store.append([entry('a', 1, ['p', 0, 0]), entry('a', 4, ['p', 0, 1]), entry('a', 3, ['q', 0, 0])])).toEqual([
          duplicate(1),
          duplicate(4),
          duplicate(3),
        ]);
        expect(await store.head('a')).toBe(4);
        expect(texts(await store.read('a', 0, 10))).toEqual(['t1', 't2', 't3', 't4']);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 0, seq: 1 });
      });

      it('rejects a stale epoch with STALE_EPOCH and the current state', async () => {
        await store.append([entry('a', 1, ['p', 2, 0]), entry('a', 2, ['p', 2, 1])]);
        for (const seq of [0, 1, 2, 9]) {
          expect(await store.append([entry('a', 9, ['p', 1, seq])])).toEqual([
            { status: 'rejected', code: 'STALE_EPOCH', current: { id: 'p', epoch: 2, seq: 1 } },
          ]);
        }
        expect(await store.head('a')).toBe(2);
      });

      it('fences the old epoch once a new one starts at seq 0', async () => {
        await store.append([entry('a', 1, ['p', 0, 0]), entry('a', 2, ['p', 0, 1]), entry('a', 3, ['p', 0, 2])]);
        expect(await store.append([entry('a', 4, ['p', 5, 0])])).toEqual([appended(4)]);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 5, seq: 0 });
        const out = await store.append([entry('a', 5, ['p', 0, 3]), entry('a', 1, ['p', 0, 0])]);
        expect(out.map((o) => o.status === 'rejected' && o.code)).toEqual(['STALE_EPOCH', 'STALE_EPOCH']);
        expect(await store.append([entry('a', 5, ['p', 5, 1])])).toEqual([appended(5)]);
      });

      it('requires a new epoch to start at seq 0 (BAD_EPOCH_START)', async () => {
        await store.append([entry('a', 1, ['p', 0, 0])]);
        expect(await store.append([entry('a', 2, ['p', 1, 1])])).toEqual([
          { status: 'rejected', code: 'BAD_EPOCH_START', current: { id: 'p', epoch: 0, seq: 0 } },
        ]);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 0, seq: 0 });
      });

      it('rejects a skipped seq with SEQUENCE_GAP, then accepts the right next one', async () => {
        await store.append([entry('a', 1, ['p', 0, 0])]);
        expect(await store.append([entry('a', 2, ['p', 0, 2])])).toEqual([
          { status: 'rejected', code: 'SEQUENCE_GAP', current: { id: 'p', epoch: 0, seq: 0 } },
        ]);
        expect(await store.append([entry('a', 2, ['p', 0, 1])])).toEqual([appended(2)]);
      });

      it('requires a new producer to start at seq 0 (SEQUENCE_GAP, no current state)', async () => {
        const out = await store.append([entry('a', 1, ['p', 0, 1]), entry('a', 1, ['q', 3, 5])]);
        expect(out).toEqual([
          { status: 'rejected', code: 'SEQUENCE_GAP' },
          { status: 'rejected', code: 'SEQUENCE_GAP' },
        ]);
        for (const o of out) expect(o.status === 'rejected' && o.current).toBeUndefined();
        expect(await store.producer('a', 'p')).toBeUndefined();
        expect(await store.producer('a', 'q')).toBeUndefined();
      });

      it('writes nothing for rejected entries and judges each entry against the ones before it', async () => {
        await store.append([entry('a', 1, ['p', 1, 0])]);
        const out = await store.append([
          entry('a', 2, ['p', 1, 2]), // gap
          entry('a', 2, ['p', 0, 0]), // stale
          entry('a', 2, ['p', 2, 3]), // bad epoch start
          entry('a', 2, ['p', 1, 1]), // ok
          entry('a', 3, ['p', 1, 3]), // gap again
          entry('a', 3, ['p', 1, 2]), // ok
        ]);
        expect(out.map((o) => (o.status === 'rejected' ? o.code : o.seq))).toEqual(['SEQUENCE_GAP', 'STALE_EPOCH', 'BAD_EPOCH_START', 2, 'SEQUENCE_GAP', 3]);
        expect(await store.head('a')).toBe(3);
        expect(texts(await store.read('a', 0, 10))).toEqual(['t1', 't2', 't3']);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 1, seq: 2 });

        const before = await store.read('a', 0, 10);
        await store.append([entry('a', 9, ['p', 1, 9]), entry('a', 9, ['p', 0, 0]), entry('a', 9, ['z', 0, 1])]);
        expect(await store.head('a')).toBe(3);
        expect(await store.read('a', 0, 10)).toEqual(before);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 1, seq: 2 });
        expect(await store.producer('a', 'z')).toBeUndefined();
      });

      it('keeps producer state per session', async () => {
        expect(await store.append([entry('a', 1, ['p', 0, 0]), entry('b', 1, ['p', 0, 0]), entry('a', 2, ['p', 0, 1])])).toEqual([
          appended(1),
          appended(1),
          appended(2),
        ]);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 0, seq: 1 });
        expect(await store.producer('b', 'p')).toEqual({ id: 'p', epoch: 0, seq: 0 });
      });

      it('deleteSession removes events and producer state: a re-created session starts fresh', async () => {
        await store.append([entry('a', 1, ['p', 3, 0]), entry('a', 2, ['p', 3, 1]), entry('b', 1, ['p', 0, 0])]);
        expect(await store.deleteSession('a')).toBe(true);
        expect(await store.read('a', 0, 10)).toEqual([]);
        expect(await store.producer('a', 'p')).toBeUndefined();

        await store.createSession(record('a'));
        expect(await store.head('a')).toBe(0);
        expect(await store.read('a', 0, 10)).toEqual([]);
        expect(await store.producer('a', 'p')).toBeUndefined();
        // Epoch 0 would be stale and seq 2 a gap under the old state; both are fine now.
        expect(await store.append([entry('a', 7, ['p', 0, 0])])).toEqual([appended(1)]);
        expect(await store.append([entry('a', 8, ['p', 0, 2])])).toEqual([
          { status: 'rejected', code: 'SEQUENCE_GAP', current: { id: 'p', epoch: 0, seq: 0 } },
        ]);
        expect(texts(await store.read('a', 0, 10))).toEqual(['t7']);
        // The other session is untouched.
        expect(await store.head('b')).toBe(1);
        expect(await store.producer('b', 'p')).toEqual({ id: 'p', epoch: 0, seq: 0 });
      });
    });

    describe('leases and cursors', () => {
      const AGENT = leaseProducerId('agent');
      const stale = (epoch: number, seq: number): AppendOutcome => ({ status: 'rejected', code: 'STALE_EPOCH', current: { id: AGENT, epoch, seq } });

      beforeEach(async () => {
        for (const id of ['a', 'b']) await store.createSession(record(id));
      });

      it('names the role producer @<role>', () => {
        expect(leaseProducerId('agent')).toBe('@agent');
        expect(leaseProducerId('user')).toBe('@user');
      });

      it('has no lease before any claim', async () => {
        expect(await store.lease('a', 'agent')).toBeUndefined();
        expect(await store.lease('unknown', 'agent')).toBeUndefined();
        expect(await store.producer('a', AGENT)).toBeUndefined();
      });

      it('grants epoch 1 to the first claimer (expectedEpoch 0)', async () => {
        const granted = await store.claimLease('a', 'agent', 'w1', 0);
        expect(granted).toEqual({ sessionId: 'a', role: 'agent', holder: 'w1', epoch: 1 });
        expect(await store.lease('a', 'agent')).toEqual({ sessionId: 'a', role: 'agent', holder: 'w1', epoch: 1 });
      });

      it('refuses a claim with a stale expectedEpoch and changes nothing', async () => {
        await store.claimLease('a', 'agent', 'w1', 0);
        await store.append([entry('a', 1, [AGENT, 1, 0])]);
        for (const expected of [0, 2, 5, -1]) {
          expect(await store.claimLease('a', 'agent', 'w2', expected)).toBeUndefined();
        }
        expect(await store.lease('a', 'agent')).toEqual({ sessionId: 'a', role: 'agent', holder: 'w1', epoch: 1 });
        expect(await store.producer('a', AGENT)).toEqual({ id: AGENT, epoch: 1, seq: 0 });
        // The holder carries on undisturbed.
        expect(await store.append([entry('a', 2, [AGENT, 1, 1])])).toEqual([appended(2)]);
      });

      it('a claim at the current epoch grants epoch + 1 to another holder', async () => {
        await store.claimLease('a', 'agent', 'w1', 0);
        expect(await store.claimLease('a', 'agent', 'w2', 1)).toEqual({ sessionId: 'a', role: 'agent', holder: 'w2', epoch: 2 });
        expect(await store.lease('a', 'agent')).toEqual({ sessionId: 'a', role: 'agent', holder: 'w2', epoch: 2 });
        // Only one of two claims at the same expected epoch wins.
        expect(await store.claimLease('a', 'agent', 'w3', 1)).toBeUndefined();
        expect((await store.lease('a', 'agent'))?.holder).toBe('w2');
      });

      it('claiming fences the role producer: {epoch, seq: -1}, old epochs STALE_EPOCH, new holder starts at seq 0', async () => {
        await store.claimLease('a', 'agent', 'w1', 0);
        expect(await store.producer('a', AGENT)).toEqual({ id: AGENT, epoch: 1, seq: -1 });
        expect(await store.append([entry('a', 1, [AGENT, 1, 0]), entry('a', 2, [AGENT, 1, 1]), entry('a', 3, [AGENT, 1, 2])])).toEqual([
          appended(1),
          appended(2),
          appended(3),
        ]);

        await store.claimLease('a', 'agent', 'w2', 1);
        expect(await store.producer('a', AGENT)).toEqual({ id: AGENT, epoch: 2, seq: -1 });
        // The old holder's next append, and a retry of an old one, are both fenced.
        expect(await store.append([entry('a', 4, [AGENT, 1, 3])])).toEqual([stale(2, -1)]);
        expect(await store.append([entry('a', 3, [AGENT, 1, 2])])).toEqual([stale(2, -1)]);
        expect(await store.head('a')).toBe(3);

        // The new holder: seq 0 first (a later seq is a gap), then 1; a retry is a duplicate.
        expect(await store.append([entry('a', 9, [AGENT, 2, 1])])).toEqual([
          { status: 'rejected', code: 'SEQUENCE_GAP', current: { id: AGENT, epoch: 2, seq: -1 } },
        ]);
        expect(await store.append([entry('a', 4, [AGENT, 2, 0])])).toEqual([appended(4)]);
        expect(await store.append([entry('a', 5, [AGENT, 2, 1])])).toEqual([appended(5)]);
        expect(await store.append([entry('a', 5, [AGENT, 2, 1])])).toEqual([duplicate(5)]);
        expect(await store.producer('a', AGENT)).toEqual({ id: AGENT, epoch: 2, seq: 1 });
        // Still fenced after the new holder wrote.
        expect(await store.append([entry('a', 6, [AGENT, 1, 3])])).toEqual([stale(2, 1)]);
        expect(texts(await store.read('a', 0, 10))).toEqual(['t1', 't2', 't3', 't4', 't5']);
      });

      it('fences even a holder that never appended (a claim with no writes in between)', async () => {
        await store.claimLease('a', 'agent', 'w1', 0);
        await store.claimLease('a', 'agent', 'w2', 1);
        expect(await store.append([entry('a', 1, [AGENT, 1, 0])])).toEqual([stale(2, -1)]);
        expect(await store.head('a')).toBe(0);
      });

      it('leaves other producers alone', async () => {
        await store.append([entry('a', 1, ['p', 4, 0])]);
        await store.claimLease('a', 'agent', 'w1', 0);
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 4, seq: 0 });
        expect(await store.append([entry('a', 2, ['p', 4, 1])])).toEqual([appended(2)]);
      });

      it('returns undefined when claiming for an unknown session and creates nothing', async () => {
        expect(await store.claimLease('unknown', 'agent', 'w1', 0)).toBeUndefined();
        expect(await store.lease('unknown', 'agent')).toBeUndefined();
        expect(await store.producer('unknown', AGENT)).toBeUndefined();
        // A session created later still starts at epoch 0.
        await store.createSession(record('unknown'));
        expect(await store.lease('unknown', 'agent')).toBeUndefined();
        expect(await store.claimLease('unknown', 'agent', 'w1', 0)).toEqual({ sessionId: 'unknown', role: 'agent', holder: 'w1', epoch: 1 });
      });

      it('releases only for the current holder and epoch; the epoch stays and the next claim bumps it', async () => {
        await store.claimLease('a', 'agent', 'w1', 0);
        await store.claimLease('a', 'agent', 'w1', 1);
        expect(await store.releaseLease('a', 'agent', 'w2', 2)).toBe(false);
        expect(await store.releaseLease('a', 'agent', 'w1', 1)).toBe(false);
        expect(await store.releaseLease('a', 'agent', 'w1', 3)).toBe(false);
        expect(await store.releaseLease('a', 'other', 'w1', 2)).toBe(false);
        expect(await store.releaseLease('b', 'agent', 'w1', 2)).toBe(false);
        expect(await store.releaseLease('unknown', 'agent', 'w1', 2)).toBe(false);
        expect(await store.lease('a', 'agent')).toEqual({ sessionId: 'a', role: 'agent', holder: 'w1', epoch: 2 });

        expect(await store.releaseLease('a', 'agent', 'w1', 2)).toBe(true);
        expect(await store.lease('a', 'agent')).toEqual({ sessionId: 'a', role: 'agent', holder: null, epoch: 2 });
        // Released twice: no longer the holder.
        expect(await store.releaseLease('a', 'agent', 'w1', 2)).toBe(false);
        // Releasing does not unfence or reset the producer.
        expect(await store.producer('a', AGENT)).toEqual({ id: AGENT, epoch: 2, seq: -1 });

        expect(await store.claimLease('a', 'agent', 'w2', 0)).toBeUndefined();
        expect(await store.claimLease('a', 'agent', 'w2', 2)).toEqual({ sessionId: 'a', role: 'agent', holder: 'w2', epoch: 3 });
        expect(await store.append([entry('a', 1, [AGENT, 2, 0])])).toEqual([stale(3, -1)]);
      });

      it('keeps leases of different roles and sessions independent', async () => {
        expect(await store.claimLease('a', 'agent', 'w1', 0)).toMatchObject({ epoch: 1 });
        expect(await store.claimLease('a', 'agent', 'w2', 1)).toMatchObject({ epoch: 2 });
        expect(await store.claimLease('a', 'scribe', 'w3', 0)).toEqual({ sessionId: 'a', role: 'scribe', holder: 'w3', epoch: 1 });
        expect(await store.claimLease('b', 'agent', 'w4', 0)).toEqual({ sessionId: 'b', role: 'agent', holder: 'w4', epoch: 1 });
        expect(await store.lease('a', 'agent')).toEqual({ sessionId: 'a', role: 'agent', holder: 'w2', epoch: 2 });
        expect(await store.lease('a', 'scribe')).toEqual({ sessionId: 'a', role: 'scribe', holder: 'w3', epoch: 1 });
        expect(await store.lease('b', 'agent')).toEqual({ sessionId: 'b', role: 'agent', holder: 'w4', epoch: 1 });
        expect(await store.lease('b', 'scribe')).toBeUndefined();

        expect(await store.producer('a', AGENT)).toEqual({ id: AGENT, epoch: 2, seq: -1 });
        expect(await store.producer('a', '@scribe')).toEqual({ id: '@scribe', epoch: 1, seq: -1 });
        expect(await store.producer('b', AGENT)).toEqual({ id: AGENT, epoch: 1, seq: -1 });
        expect(await store.append([entry('a', 1, ['@scribe', 1, 0]), entry('b', 1, [AGENT, 1, 0]), entry('a', 2, [AGENT, 1, 0])])).toEqual([
          appended(1),
          appended(1),
          stale(2, -1),
        ]);

        expect(await store.releaseLease('a', 'scribe', 'w3', 1)).toBe(true);
        expect((await store.lease('a', 'agent'))?.holder).toBe('w2');
        expect((await store.lease('b', 'agent'))?.holder).toBe('w4');
      });

      it('cursors default to 0, are per consumer and session, and never move back', async () => {
        expect(await store.cursor('a', 'c1')).toBe(0);
        expect(await store.cursor('unknown', 'c1')).toBe(0);
        await store.commitCursor('a', 'c1', 10);
        expect(await store.cursor('a', 'c1')).toBe(10);
        await store.commitCursor('a', 'c1', 5);
        expect(await store.cursor('a', 'c1')).toBe(10);
        await store.commitCursor('a', 'c1', 10);
        expect(await store.cursor('a', 'c1')).toBe(10);
        await store.commitCursor('a', 'c1', 0);
        expect(await store.cursor('a', 'c1')).toBe(10);
        await store.commitCursor('a', 'c1', 11);
        expect(await store.cursor('a', 'c1')).toBe(11);

        expect(await store.cursor('a', 'c2')).toBe(0);
        expect(await store.cursor('b', 'c1')).toBe(0);
        await store.commitCursor('a', 'c2', 3);
        await store.commitCursor('b', 'c1', 7);
        expect([await store.cursor('a', 'c1'), await store.cursor('a', 'c2'), await store.cursor('b', 'c1')]).toEqual([11, 3, 7]);
        // The role producer's cursor is just another consumer.
        await store.commitCursor('a', AGENT, 2);
        expect(await store.cursor('a', AGENT)).toBe(2);
        expect(await store.cursor('a', 'c1')).toBe(11);
      });

      it('commitCursor on an unknown session is a no-op', async () => {
        await store.commitCursor('unknown', 'c1', 5);
        expect(await store.cursor('unknown', 'c1')).toBe(0);
        await store.createSession(record('unknown'));
        expect(await store.cursor('unknown', 'c1')).toBe(0);
      });

      it('deleteSession removes leases and cursors: a re-created session starts at epoch 0 and cursor 0', async () => {
        await store.claimLease('a', 'agent', 'w1', 0);
        await store.claimLease('a', 'agent', 'w2', 1);
        await store.claimLease('a', 'scribe', 'w3', 0);
        await store.commitCursor('a', 'c1', 9);
        await store.commitCursor('a', AGENT, 4);
        await store.claimLease('b', 'agent', 'w9', 0);
        await store.commitCursor('b', 'c1', 6);

        expect(await store.deleteSession('a')).toBe(true);
        expect(await store.lease('a', 'agent')).toBeUndefined();
        expect(await store.lease('a', 'scribe')).toBeUndefined();
        expect(await store.cursor('a', 'c1')).toBe(0);
        expect(await store.releaseLease('a', 'agent', 'w2', 2)).toBe(false);

        await store.createSession(record('a'));
        expect(await store.lease('a', 'agent')).toBeUndefined();
        expect(await store.lease('a', 'scribe')).toBeUndefined();
        expect(await store.cursor('a', 'c1')).toBe(0);
        expect(await store.cursor('a', AGENT)).toBe(0);
        expect(await store.producer('a', AGENT)).toBeUndefined();
        expect(await store.claimLease('a', 'agent', 'w5', 2)).toBeUndefined();
        expect(await store.claimLease('a', 'agent', 'w5', 0)).toEqual({ sessionId: 'a', role: 'agent', holder: 'w5', epoch: 1 });
        expect(await store.append([entry('a', 1, [AGENT, 1, 0])])).toEqual([appended(1)]);
        await store.commitCursor('a', 'c1', 1);
        expect(await store.cursor('a', 'c1')).toBe(1);

        // The other session is untouched.
        expect(await store.lease('b', 'agent')).toEqual({ sessionId: 'b', role: 'agent', holder: 'w9', epoch: 1 });
        expect(await store.cursor('b', 'c1')).toBe(6);
      });

      it('returns copies: mutating a returned record changes nothing stored', async () => {
        const granted = await store.claimLease('a', 'agent', 'w1', 0);
        granted!.holder = 'mallory';
        granted!.epoch = 99;
        const read = await store.lease('a', 'agent');
        read!.holder = null;
        expect(await store.lease('a', 'agent')).toEqual({ sessionId: 'a', role: 'agent', holder: 'w1', epoch: 1 });
      });

      it('survives close and reopen: epoch, holder, cursors and the fencing of the role producer', async (ctx) => {
        if (!fx.reopen) return ctx.skip('backend is not durable');
        await store.claimLease('a', 'agent', 'w1', 0);
        await store.append([entry('a', 1, [AGENT, 1, 0]), entry('a', 2, [AGENT, 1, 1])]);
        await store.claimLease('a', 'agent', 'w2', 1);
        await store.append([entry('a', 3, [AGENT, 2, 0])]);
        await store.claimLease('a', 'scribe', 'w3', 0);
        expect(await store.releaseLease('a', 'scribe', 'w3', 1)).toBe(true);
        await store.commitCursor('a', AGENT, 2);
        await store.commitCursor('a', 'c1', 7);
        await store.commitCursor('b', 'c1', 4);

        await store.close();
        store = await fx.reopen();

        expect(await store.lease('a', 'agent')).toEqual({ sessionId: 'a', role: 'agent', holder: 'w2', epoch: 2 });
        expect(await store.lease('a', 'scribe')).toEqual({ sessionId: 'a', role: 'scribe', holder: null, epoch: 1 });
        expect(await store.lease('b', 'agent')).toBeUndefined();
        expect([await store.cursor('a', AGENT), await store.cursor('a', 'c1'), await store.cursor('b', 'c1'), await store.cursor('b', 'c2')]).toEqual([
          2, 7, 4, 0,
        ]);
        await store.commitCursor('a', 'c1', 3);
        expect(await store.cursor('a', 'c1')).toBe(7);

        // The old holder stays fenced; the current one carries on; a retry still finds its seq.
        expect(await store.producer('a', AGENT)).toEqual({ id: AGENT, epoch: 2, seq: 0 });
        expect(await store.append([entry('a', 4, [AGENT, 1, 2])])).toEqual([stale(2, 0)]);
        expect(await store.append([entry('a', 3, [AGENT, 2, 0])])).toEqual([duplicate(3)]);
        expect(await store.append([entry('a', 4, [AGENT, 2, 1])])).toEqual([appended(4)]);

        // A stale claim is still refused; a current one bumps from the durable epoch.
        expect(await store.claimLease('a', 'agent', 'w4', 1)).toBeUndefined();
        expect(await store.releaseLease('a', 'agent', 'w1', 1)).toBe(false);
        expect(await store.claimLease('a', 'agent', 'w4', 2)).toEqual({ sessionId: 'a', role: 'agent', holder: 'w4', epoch: 3 });
        expect(await store.claimLease('a', 'scribe', 'w5', 1)).toMatchObject({ holder: 'w5', epoch: 2 });
        expect(await store.append([entry('a', 5, [AGENT, 2, 2])])).toEqual([stale(3, -1)]);
      });

      it('keeps a fresh claim (fenced, nothing appended yet) across close and reopen', async (ctx) => {
        if (!fx.reopen) return ctx.skip('backend is not durable');
        await store.claimLease('a', 'agent', 'w1', 0);
        await store.append([entry('a', 1, [AGENT, 1, 0])]);
        await store.claimLease('a', 'agent', 'w2', 1);

        await store.close();
        store = await fx.reopen();

        expect(await store.producer('a', AGENT)).toEqual({ id: AGENT, epoch: 2, seq: -1 });
        expect(await store.append([entry('a', 2, [AGENT, 1, 1])])).toEqual([stale(2, -1)]);
        expect(await store.append([entry('a', 2, [AGENT, 2, 0])])).toEqual([appended(2)]);
      });
    });

    describe('durability across close and reopen', () => {
      async function reopen(): Promise<void> {
        await store.close();
        store = await fx.reopen!();
      }

      it('keeps session records, events and heads', async (ctx) => {
        if (!fx.reopen) return ctx.skip('backend is not durable');
        const rec = record('a', { expiresAt: 5, metadata: { who: 'me', n: [1, 2] } });
        await store.createSession(rec);
        await store.createSession(record('b'));
        await store.createSession(record('gone'));
        const bin = Uint8Array.from([0, 255, 7, 128]);
        await store.append([entry('a', 1), entry('a', 2, ['mic', 0, 0], { kind: 'audio.frame', track: 'mic', data: { codec: 'opus' }, bin })]);
        await store.deleteSession('gone');
        const before = await store.read('a', 0, 10);

        await reopen();
        expect(await store.getSession('a')).toMatchObject(rec);
        expect(await store.getSession('gone')).toBeUndefined();
        expect(await store.expiredSessions(10, 10)).toEqual(['a']);
        expect(await store.head('a')).toBe(2);
        expect(await store.head('b')).toBe(0);
        const after = await store.read('a', 0, 10);
        expect(after).toEqual(before);
        sameBytes(after[1]?.bin, bin);
        expect(await store.append([entry('a', 3), entry('b', 1)])).toEqual([appended(3), appended(1)]);
      });

      it('keeps producer state: retries still return the original seq, stale epochs stay fenced', async (ctx) => {
        if (!fx.reopen) return ctx.skip('backend is not durable');
        await store.createSession(record('a'));
        await store.append([entry('a', 1, ['p', 0, 0]), entry('a', 2, ['p', 0, 1]), entry('a', 3, ['p', 1, 0]), entry('a', 4)]);

        await reopen();
        expect(await store.producer('a', 'p')).toEqual({ id: 'p', epoch: 1, seq: 0 });
        const out = await store.append([
          entry('a', 3, ['p', 1, 0]),
          entry('a', 2, ['p', 0, 1]),
          entry('a', 9, ['p', 1, 2]),
          entry('a', 5, ['p', 1, 1]),
        ]);
        expect(out).toEqual([
          duplicate(3),
          { status: 'rejected', code: 'STALE_EPOCH', current: { id: 'p', epoch: 1, seq: 0 } },
          { status: 'rejected', code: 'SEQUENCE_GAP', current: { id: 'p', epoch: 1, seq: 0 } },
          appended(5),
        ]);
        expect(texts(await store.read('a', 0, 10))).toEqual(['t1', 't2', 't3', 't4', 't5']);
      });
    });

    describe('Durable Streams additions', () => {
      const AT = 1_700_000_500_000;

      it('keeps contentType and forkedFrom, and reports closed/deletedAt only when set', async () => {
        await store.createSession(record('t', { contentType: 'text/plain' }));
        const got = await store.getSession('t');
        expect(got?.contentType).toBe('text/plain');
        expect(got?.closed).toBeFalsy();
        expect(got?.deletedAt ?? null).toBeNull();
        // closed/deletedAt passed by a caller are ignored: they are the store's.
        await store.createSession(record('u', { closed: true, deletedAt: 5 }));
        expect((await store.getSession('u'))?.closed).toBeFalsy();
        expect((await store.getSession('u'))?.deletedAt ?? null).toBeNull();
      });

      it('closes with the last entry of a batch; later appends are refused, producer retries still dedupe', async () => {
        await store.createSession(record('c'));
        const closing: AppendEntry = { ...entry('c', 2, ['p', 0, 1]), close: true };
        expect(await store.append([entry('c', 1, ['p', 0, 0]), closing, entry('c', 3)])).toEqual([
          appended(1),
          appended(2),
          { status: 'rejected', code: 'STREAM_CLOSED' },
        ]);
        expect((await store.getSession('c'))?.closed).toBe(true);
        expect(await store.append([entry('c', 2, ['p', 0, 1]), entry('c', 4, ['p', 0, 2]), entry('c', 5, ['q', 0, 0])])).toEqual([
          duplicate(2),
          { status: 'rejected', code: 'STREAM_CLOSED' },
          { status: 'rejected', code: 'STREAM_CLOSED' },
        ]);
        // A stale epoch is still reported as such on a closed timeline.
        await store.createSession(record('d'));
        await store.append([entry('d', 1, ['p', 1, 0]), { ...entry('d', 2), close: true }]);
        expect((await store.append([entry('d', 3, ['p', 0, 0])]))[0]).toMatchObject({ status: 'rejected', code: 'STALE_EPOCH' });
        expect(texts(await store.read('c', 0, 10))).toEqual(['t1', 't2']);
        expect(await store.head('c')).toBe(2);
      });

      it('close-only: idempotent without a producer, producer rules with one, refused when not found', async () => {
        await store.createSession(record('c'));
        await store.append([entry('c', 1)]);
        expect(await store.closeSession('c', undefined, AT)).toEqual(appended(1));
        expect(await store.closeSession('c', undefined, AT)).toEqual(duplicate(1));
        expect(await store.closeSession('c', { id: 'p', epoch: 0, seq: 0 }, AT)).toEqual({ status: 'rejected', code: 'STREAM_CLOSED' });
        expect((await store.getSession('c'))?.lastActiveAt).toBe(AT);

        await store.createSession(record('p'));
        await store.append([entry('p', 1, ['w', 0, 0])]);
        expect(await store.closeSession('p', { id: 'w', epoch: 0, seq: 1 }, AT)).toEqual(appended(1));
        expect(await store.producer('p', 'w')).toEqual({ id: 'w', epoch: 0, seq: 1 });
        // Its retry answers the head (nothing can follow a close); a retry of the earlier append its own seq.
        expect(await store.closeSession('p', { id: 'w', epoch: 0, seq: 1 }, AT)).toEqual(duplicate(1));
        expect(await store.append([entry('p', 1, ['w', 0, 0])])).toEqual([duplicate(1)]);
        expect(await store.closeSession('p', { id: 'w', epoch: 0, seq: 3 }, AT)).toMatchObject({ status: 'rejected', code: 'SEQUENCE_GAP' });
        expect(await store.closeSession('nope', undefined, AT)).toEqual({ status: 'rejected', code: 'SESSION_NOT_FOUND' });
      });

      it('Stream-Seq: each must sort after the last, byte-wise; checked after producer dedupe', async () => {
        await store.createSession(record('s'));
        const withSeq = (n: number, seq: string, p?: [string, number, number]): AppendEntry => ({ ...entry('s', n, p), streamSeq: seq });
        expect(await store.append([withSeq(1, '09'), withSeq(2, '10'), withSeq(3, '10'), withSeq(4, '2'), withSeq(5, '1')])).toEqual([
          appended(1),
          appended(2),
          { status: 'rejected', code: 'STREAM_SEQ_CONFLICT' },
          appended(3),
          { status: 'rejected', code: 'STREAM_SEQ_CONFLICT' },
        ]);
        expect(await store.append([withSeq(4, 'a', ['p', 0, 0]), withSeq(5, 'B')])).toEqual([appended(4), { status: 'rejected', code: 'STREAM_SEQ_CONFLICT' }]);
        expect(await store.append([withSeq(4, 'a', ['p', 0, 0])])).toEqual([duplicate(4)]);
        expect(await store.append([entry('s', 5)])).toEqual([appended(5)]);
      });

      it('forks copy history up to an offset, plus an optional partial event; no producer state, open', async () => {
        const bin = new Uint8Array([0, 1, 255]);
        await store.createSession(record('src'));
        await store.append([entry('src', 1, ['p', 0, 0]), entry('src', 2, ['p', 0, 1], { kind: 'audio.frame', data: { codec: 'opus' }, bin }), entry('src', 3)]);
        await store.closeSession('src', undefined, AT);

        await store.forkSession(record('f2', { contentType: 'application/json' }), 'src', 2);
        const f2 = await store.getSession('f2');
        expect(f2).toMatchObject({ id: 'f2', forkedFrom: 'src', contentType: 'application/json' });
        expect(f2?.closed).toBeFalsy();
        expect(await store.head('f2')).toBe(2);
        const events = await store.read('f2', 0, 10);
        expect(events.map((e) => e.seq)).toEqual([1, 2]);
        expect(events).toEqual((await store.read('src', 0, 2)).map((e) => ({ ...e, bin: e.bin })));
        sameBytes(events[1]?.bin, bin);
        expect(await store.producer('f2', 'p')).toBeUndefined();
        expect(await store.append([entry('f2', 9, ['p', 0, 0])])).toEqual([appended(3)]);
        // The source is untouched.
        expect(await store.head('src')).toBe(3);

        await store.forkSession(record('f0'), 'src', 0, body(7, { data: { text: 'part' } }));
        expect(texts(await store.read('f0', 0, 10))).toEqual(['part']);
        expect(await store.head('f0')).toBe(1);
        // Forks of forks.
        await store.forkSession(record('ff'), 'f2', 3);
        expect((await store.read('ff', 0, 10)).map((e) => [e.seq, e.kind])).toEqual([
          [1, 'text.delta'],
          [2, 'audio.frame'],
          [3, 'text.delta'],
        ]);

        expect(await store.forkCount('src')).toBe(2);
        expect(await store.forkCount('f2')).toBe(1);
        expect(await store.forkCount('ff')).toBe(0);
        await expectCode(store.forkSession(record('f2'), 'src', 1), 'SESSION_EXISTS');
        await expectCode(store.forkSession(record('x'), 'nope', 0), 'SESSION_NOT_FOUND');
        await expectCode(store.forkSession(record('y'), 'src', 4), 'OFFSET_OUT_OF_RANGE');
        expect(await store.getSession('y')).toBeUndefined();
      });

      it('tombstones keep the record (deletedAt) but not the timeline; appends and forks are refused', async () => {
        await store.createSession(record('src'));
        await store.append([entry('src', 1, ['p', 0, 0])]);
        await store.forkSession(record('f'), 'src', 1);
        expect(await store.tombstoneSession('src', AT)).toBe(true);
        expect(await store.tombstoneSession('src', AT)).toBe(false);
        expect(await store.tombstoneSession('never', AT)).toBe(false);
        expect((await store.getSession('src'))?.deletedAt).toBe(AT);
        expect(await store.read('src', 0, 10)).toEqual([]);
        expect(await store.append([entry('src', 2)])).toEqual([{ status: 'rejected', code: 'SESSION_NOT_FOUND' }]);
        expect(await store.closeSession('src', undefined, AT)).toEqual({ status: 'rejected', code: 'SESSION_NOT_FOUND' });
        await expectCode(store.forkSession(record('g'), 'src', 0), 'SESSION_NOT_FOUND');
        await expectCode(store.createSession(record('src')), 'SESSION_EXISTS');
        expect(texts(await store.read('f', 0, 10))).toEqual(['t1']);
        expect(await store.forkCount('src')).toBe(1);
        expect(await store.deleteSession('f')).toBe(true);
        expect(await store.forkCount('src')).toBe(0);
        expect(await store.deleteSession('src')).toBe(true);
        expect(await store.getSession('src')).toBeUndefined();
      });

      it('touchSession renews the idle TTL (never moves lastActiveAt back)', async () => {
        const now = 1_700_000_100_000;
        await store.createSession(record('i', { idleTtlMs: 1000 }));
        expect(await store.expiredSessions(now, 10)).toEqual(['i']);
        await store.touchSession('i', now - 500);
        expect(await store.expiredSessions(now, 10)).toEqual([]);
        await store.touchSession('i', now - 5000);
        expect((await store.getSession('i'))?.lastActiveAt).toBe(now - 500);
        await store.touchSession('nope', now);
      });
    });
  });
}
