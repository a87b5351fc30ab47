import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LifelineError, START_OFFSET, formatOffset } from '../../src/protocol/index.js';
import type { ErrorCode, Origin } from '../../src/protocol/index.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { leaseProducerId } from '../../src/store/index.js';
import type { LeaseRecord } from '../../src/store/index.js';
import { LeaseManager } from '../../src/timeline/index.js';

const TTL = 1_000;
const BOT: Origin = { participant: 'w1', device: 'srv', role: 'agent' };

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LifelineError);
  expect((err as LifelineError).code).toBe(code);
}

describe('LeaseManager', () => {
  let store: MemoryStore;
  let leases: LeaseManager;
  let expired: LeaseRecord[];

  beforeEach(async () => {
    vi.useFakeTimers();
    store = new MemoryStore();
    await store.createSession({ id: 's', createdAt: 0, expiresAt: null, metadata: {} });
    await store.createSession({ id: 't', createdAt: 0, expiresAt: null, metadata: {} });
    expired = [];
    leases = new LeaseManager(store, { ttlMs: TTL, onExpired: (l) => expired.push(l) });
  });

  afterEach(async () => {
    leases.close();
    await store.close();
    vi.useRealTimers();
  });

  const rec = (holder: string | null, epoch: number, sessionId = 's', role = 'agent'): LeaseRecord => ({ sessionId, role, holder, epoch });

  it('grants epoch 1 and cursor -1 to the first claimer, and fences the role producer in the store', async () => {
    const c1 = {};
    const grant = await leases.claim('s', 'agent', 'w1', c1);
    expect(grant).toEqual({ lease: rec('w1', 1), cursor: START_OFFSET });
    expect(grant.cursor).toBe('-1');
    expect(await store.lease('s', 'agent')).toEqual(rec('w1', 1));
    expect(await store.producer('s', leaseProducerId('agent'))).toEqual({ id: '@agent', epoch: 1, seq: -1 });
    expect(leases.held('s', 'agent', c1)).toEqual(rec('w1', 1));
  });

  it('refuses a second connection while the first is live (LEASE_HELD), whoever it is', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    await expectCode(leases.claim('s', 'agent', 'w2', {}), 'LEASE_HELD');
    // The same participant on another connection without its epoch is not a re-attach either.
    await expectCode(leases.claim('s', 'agent', 'w1', {}), 'LEASE_HELD');
    // Nor with the right epoch but the wrong participant.
    await expectCode(leases.claim('s', 'agent', 'w2', {}, 1), 'LEASE_HELD');
    // Nothing moved.
    expect(await store.lease('s', 'agent')).toEqual(rec('w1', 1));
    expect(leases.held('s', 'agent', c1)).toEqual(rec('w1', 1));
  });

  it('refuses a second connection while the first is merely silent (lost, ttl not yet passed)', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    leases.lost(c1);
    vi.advanceTimersByTime(TTL - 1);
    await expectCode(leases.claim('s', 'agent', 'w2', {}), 'LEASE_HELD');
    expect(expired).toEqual([]);
  });

  it('lets the holder re-attach with its epoch from a new connection (take over) without bumping', async () => {
    const c1 = {};
    const c2 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    await store.append([{ sessionId: 's', producer: { id: '@agent', epoch: 1, seq: 0 }, event: { ts: 1, from: BOT, kind: 'text.delta', data: { text: 'x' } } }]);
    const grant = await leases.claim('s', 'agent', 'w1', c2, 1);
    expect(grant.lease).toEqual(rec('w1', 1));
    expect(await store.lease('s', 'agent')).toEqual(rec('w1', 1));
    // Not re-fenced: the holder's producer state is untouched, so it carries on at seq 1.
    expect(await store.producer('s', '@agent')).toEqual({ id: '@agent', epoch: 1, seq: 0 });
    expect(leases.held('s', 'agent', c2)).toEqual(rec('w1', 1));
    expect(leases.held('s', 'agent', c1)).toBeUndefined();
    expect(leases.heldBy('w1')).toBe(1);
    // The old connection has nothing left to lose or release.
    leases.lost(c1);
    vi.advanceTimersByTime(TTL * 2);
    expect(expired).toEqual([]);
    await expectCode(leases.release('s', 'agent', c1), 'NOT_LEASE_HOLDER');
    expect(leases.held('s', 'agent', c2)).toEqual(rec('w1', 1));
  });

  it('a re-attach cancels the pending expiry of the lost connection', async () => {
    const c1 = {};
    const c2 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    leases.lost(c1);
    vi.advanceTimersByTime(TTL - 10);
    await leases.claim('s', 'agent', 'w1', c2, 1);
    vi.advanceTimersByTime(TTL * 2);
    expect(expired).toEqual([]);
    expect(leases.held('s', 'agent', c2)).toEqual(rec('w1', 1));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses a re-attach with an epoch the lease has moved on from (STALE_EPOCH)', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    await leases.release('s', 'agent', c1);
    const c2 = {};
    await leases.claim('s', 'agent', 'w2', c2);
    expect(await store.lease('s', 'agent')).toEqual(rec('w2', 2));
    leases.lost(c2);
    vi.advanceTimersByTime(TTL);
    expect(expired).toEqual([rec('w2', 2)]);
    // w1 comes back with its old epoch: the lease moved on.
    await expectCode(leases.claim('s', 'agent', 'w1', {}, 1), 'STALE_EPOCH');
    // An epoch from the future, or one never claimed, is just as stale.
    await expectCode(leases.claim('s', 'agent', 'w2', {}, 3), 'STALE_EPOCH');
    await expectCode(leases.claim('s', 'other', 'w1', {}, 1), 'STALE_EPOCH');
    expect(await store.lease('s', 'agent')).toEqual(rec('w2', 2));
  });

  it('refuses a re-attach after a release (the holder is gone, the epoch stays)', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    await leases.release('s', 'agent', c1);
    await expectCode(leases.claim('s', 'agent', 'w1', {}, 1), 'STALE_EPOCH');
  });

  it('keeps the lease when the connection comes back before the ttl (no onExpired)', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    leases.lost(c1);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(TTL - 1);
    leases.alive(c1);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(TTL * 5);
    expect(expired).toEqual([]);
    expect(leases.held('s', 'agent', c1)).toEqual(rec('w1', 1));
    expect(leases.heldBy('w1')).toBe(1);
    await expectCode(leases.claim('s', 'agent', 'w2', {}), 'LEASE_HELD');
  });

  it('does not restart the ttl when lost is reported again', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    leases.lost(c1);
    vi.advanceTimersByTime(TTL / 2);
    leases.lost(c1);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(TTL / 2);
    expect(expired).toEqual([rec('w1', 1)]);
  });

  it('expires the lease once the ttl passes: onExpired once with the record, then another holder gets epoch 2', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    leases.lost(c1);
    vi.advanceTimersByTime(TTL - 1);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual([rec('w1', 1)]);
    vi.advanceTimersByTime(TTL * 10);
    expect(expired).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);

    expect(leases.held('s', 'agent', c1)).toBeUndefined();
    expect(leases.heldBy('w1')).toBe(0);
    // Coming back alive is too late.
    leases.alive(c1);
    expect(leases.held('s', 'agent', c1)).toBeUndefined();
    await expectCode(leases.commit('s', 'agent', c1, 1), 'NOT_LEASE_HOLDER');
    await expectCode(leases.release('s', 'agent', c1), 'NOT_LEASE_HOLDER');

    const c2 = {};
    const grant = await leases.claim('s', 'agent', 'w2', c2);
    expect(grant).toEqual({ lease: rec('w2', 2), cursor: START_OFFSET });
    expect(leases.heldBy('w2')).toBe(1);
    // The expired holder's appends are fenced from that claim on.
    const [out] = await store.append([
      { sessionId: 's', producer: { id: '@agent', epoch: 1, seq: 0 }, event: { ts: 1, from: BOT, kind: 'text.delta', data: { text: 'late' } } },
    ]);
    expect(out).toEqual({ status: 'rejected', code: 'STALE_EPOCH', current: { id: '@agent', epoch: 2, seq: -1 } });
  });

  it('hands onExpired a copy: mutating it does not change the lease', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    leases.lost(c1);
    vi.advanceTimersByTime(TTL);
    expired[0]!.epoch = 42;
    const grant = await leases.claim('s', 'agent', 'w2', {});
    expect(grant.lease.epoch).toBe(2);
  });

  it('expires every lease of a lost connection, and only those', async () => {
    const c1 = {};
    const c2 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    await leases.claim('t', 'agent', 'w1', c1);
    await leases.claim('s', 'scribe', 'w2', c2);
    expect(leases.heldBy('w1')).toBe(2);
    expect(leases.heldBy('w2')).toBe(1);
    leases.lost(c1);
    vi.advanceTimersByTime(TTL);
    expect(expired).toHaveLength(2);
    expect(expired).toEqual(expect.arrayContaining([rec('w1', 1, 's'), rec('w1', 1, 't')]));
    expect(leases.heldBy('w1')).toBe(0);
    expect(leases.heldBy('w2')).toBe(1);
    expect(leases.held('s', 'scribe', c2)).toEqual(rec('w2', 1, 's', 'scribe'));
  });

  it('held() and heldBy() reflect state', async () => {
    const c1 = {};
    const c2 = {};
    expect(leases.held('s', 'agent', c1)).toBeUndefined();
    expect(leases.heldBy('w1')).toBe(0);
    await leases.claim('s', 'agent', 'w1', c1);
    await leases.claim('s', 'scribe', 'w1', c1);
    await leases.claim('t', 'agent', 'w2', c2);
    expect(leases.held('s', 'agent', c1)).toEqual(rec('w1', 1));
    expect(leases.held('s', 'scribe', c1)).toEqual(rec('w1', 1, 's', 'scribe'));
    expect(leases.held('s', 'agent', c2)).toBeUndefined();
    expect(leases.held('t', 'agent', c1)).toBeUndefined();
    expect(leases.held('t', 'agent', c2)).toEqual(rec('w2', 1, 't'));
    expect(leases.held('nope', 'agent', c1)).toBeUndefined();
    expect(leases.heldBy('w1')).toBe(2);
    expect(leases.heldBy('w2')).toBe(1);
    expect(leases.heldBy('w3')).toBe(0);
    // A lost (but not yet expired) lease still counts.
    leases.lost(c1);
    expect(leases.heldBy('w1')).toBe(2);
    expect(leases.held('s', 'agent', c1)).toEqual(rec('w1', 1));
    await leases.release('s', 'scribe', c1);
    expect(leases.heldBy('w1')).toBe(1);
    expect(leases.held('s', 'scribe', c1)).toBeUndefined();
    leases.forget('s');
    expect(leases.heldBy('w1')).toBe(0);
    expect(leases.heldBy('w2')).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses a release by a connection that does not hold the lease (NOT_LEASE_HOLDER)', async () => {
    const c1 = {};
    await expectCode(leases.release('s', 'agent', c1), 'NOT_LEASE_HOLDER');
    await leases.claim('s', 'agent', 'w1', c1);
    await expectCode(leases.release('s', 'agent', {}), 'NOT_LEASE_HOLDER');
    await expectCode(leases.release('s', 'scribe', c1), 'NOT_LEASE_HOLDER');
    await expectCode(leases.release('t', 'agent', c1), 'NOT_LEASE_HOLDER');
    expect(await store.lease('s', 'agent')).toEqual(rec('w1', 1));
    expect(leases.held('s', 'agent', c1)).toEqual(rec('w1', 1));
  });

  it('release clears the holder, keeps the epoch, and the next claim gets epoch + 1', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    expect(await leases.release('s', 'agent', c1)).toEqual(rec('w1', 1));
    expect(await store.lease('s', 'agent')).toEqual(rec(null, 1));
    expect(leases.held('s', 'agent', c1)).toBeUndefined();
    expect(leases.heldBy('w1')).toBe(0);
    await expectCode(leases.release('s', 'agent', c1), 'NOT_LEASE_HOLDER');

    const c2 = {};
    expect((await leases.claim('s', 'agent', 'w2', c2)).lease).toEqual(rec('w2', 2));
    expect(await store.lease('s', 'agent')).toEqual(rec('w2', 2));
    expect(await store.producer('s', '@agent')).toEqual({ id: '@agent', epoch: 2, seq: -1 });
  });

  it('release cancels a pending expiry', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    leases.lost(c1);
    await leases.release('s', 'agent', c1);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(TTL * 2);
    expect(expired).toEqual([]);
  });

  it('refuses a commit by a connection that does not hold the lease (NOT_LEASE_HOLDER)', async () => {
    const c1 = {};
    await expectCode(leases.commit('s', 'agent', c1, 3), 'NOT_LEASE_HOLDER');
    await leases.claim('s', 'agent', 'w1', c1);
    await expectCode(leases.commit('s', 'agent', {}, 3), 'NOT_LEASE_HOLDER');
    await expectCode(leases.commit('s', 'scribe', c1, 3), 'NOT_LEASE_HOLDER');
    expect(await store.cursor('s', leaseProducerId('agent'))).toBe(0);
  });

  it("commit by the holder moves the store cursor; the next claimer's grant starts there", async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    await leases.commit('s', 'agent', c1, 7);
    expect(await store.cursor('s', '@agent')).toBe(7);
    await leases.commit('s', 'agent', c1, 4);
    expect(await store.cursor('s', '@agent')).toBe(7);
    // A re-attach sees it too.
    const c2 = {};
    expect(await leases.claim('s', 'agent', 'w1', c2, 1)).toEqual({ lease: rec('w1', 1), cursor: formatOffset(7) });
    await leases.commit('s', 'agent', c2, 12);
    await leases.release('s', 'agent', c2);

    const grant = await leases.claim('s', 'agent', 'w2', {});
    expect(grant).toEqual({ lease: rec('w2', 2), cursor: formatOffset(12) });
    expect(grant.cursor).toBe('0000000000000012');
    // Cursors are per role: another role starts from the beginning.
    expect((await leases.claim('s', 'scribe', 'w3', {})).cursor).toBe(START_OFFSET);
  });

  it('returns lease copies from claim and release', async () => {
    const c1 = {};
    const grant = await leases.claim('s', 'agent', 'w1', c1);
    grant.lease.holder = 'mallory';
    grant.lease.epoch = 99;
    expect(leases.held('s', 'agent', c1)).toEqual(rec('w1', 1));
    expect(leases.heldBy('w1')).toBe(1);
  });

  it('forget() drops a session’s leases and their timers, leaving the rest', async () => {
    const c1 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    await leases.claim('t', 'agent', 'w1', c1);
    leases.lost(c1);
    expect(vi.getTimerCount()).toBe(2);
    leases.forget('s');
    expect(vi.getTimerCount()).toBe(1);
    expect(leases.held('s', 'agent', c1)).toBeUndefined();
    vi.advanceTimersByTime(TTL);
    expect(expired).toEqual([rec('w1', 1, 't')]);
  });

  it('close() leaves no timers, fires no onExpired, and refuses further claims', async () => {
    const c1 = {};
    const c2 = {};
    await leases.claim('s', 'agent', 'w1', c1);
    await leases.claim('t', 'agent', 'w2', c2);
    leases.lost(c1);
    leases.lost(c2);
    expect(vi.getTimerCount()).toBe(2);
    leases.close();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(TTL * 10);
    expect(expired).toEqual([]);
    expect(leases.heldBy('w1')).toBe(0);
    expect(leases.held('s', 'agent', c1)).toBeUndefined();
    await expectCode(leases.claim('s', 'agent', 'w3', {}), 'SHUTTING_DOWN');
    leases.close();
  });

  it('concurrent fresh claims from two connections: exactly one wins', async () => {
    const results = await Promise.allSettled([leases.claim('s', 'agent', 'w1', {}), leases.claim('s', 'agent', 'w2', {})]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0]!.reason as LifelineError).code).toBe('LEASE_HELD');
    expect((await store.lease('s', 'agent'))?.epoch).toBe(1);
  });

  it('claiming on an unknown session is refused', async () => {
    const err = await leases.claim('nope', 'agent', 'w1', {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LifelineError);
    expect(leases.heldBy('w1')).toBe(0);
  });
});
