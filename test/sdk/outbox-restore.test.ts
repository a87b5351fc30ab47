import { describe, expect, it } from 'vitest';
import type { LifelineError, TimelineEvent } from '../../src/protocol/index.js';
import type { LifelineSession, PendingAppends, SessionOptions } from '../../src/sdk/index.js';
import { useCleanup } from '../support/fixture.js';
import type { Cleanup } from '../support/fixture.js';
import type { TestRelay } from '../support/relay.js';
import { controllableTransport, stateReached } from '../support/sdk.js';
import { waitFor } from '../support/wait.js';

/**
 * SessionOptions.outbox: the appends one instance of a client leaves unacknowledged (a page
 * reloaded, a process restarted) are sent again by the next, each committed exactly once.
 */
describe('unacknowledged appends kept across a restart of the client', () => {
  let cleanup: Cleanup;
  let relay: TestRelay;
  let id: string;

  /** A relay and a session for this test, closed when it ends. */
  async function setup(): Promise<void> {
    cleanup = useCleanup();
    relay = await cleanup.relay();
    id = await relay.createSession();
  }

  /** An instance of alice's client on device tab-1 (its producer is the device's). */
  function open(opts: Partial<SessionOptions> = {}): Promise<LifelineSession> {
    return relay.token(id, 'alice', 'user').then((token) => cleanup.sdk({ url: relay.url, token, device: 'tab-1', resume: 'now', ...opts }));
  }

  /** The texts in the timeline, in order. */
  async function texts(): Promise<string[]> {
    const events = await relay.relay.timeline.read(id, 0, 1000);
    return events.filter((e: TimelineEvent) => e.kind === 'text.delta').map((e: TimelineEvent) => String((e.data as { text: string }).text));
  }

  /** An instance that sends `before` normally, then `pending` while its link is down; closed. */
  async function leaveBehind(before: string[], pending: string[]): Promise<PendingAppends> {
    const transport = controllableTransport();
    let saved: PendingAppends | undefined;
    const a = await open({ transport, outbox: { save: (p) => (saved = p) } });
    for (const t of before) await a.sendText(t);
    transport.hold();
    transport.drop();
    await stateReached(a, 'reconnecting');
    for (const t of pending) a.sendText(t).catch(() => undefined);
    await waitFor(() => saved?.appends.length === pending.length, { message: 'the pending appends saved' });
    const kept = structuredClone(saved!);
    a.close();
    // Closing does not save: what the next instance finds is what was pending.
    expect(saved!.appends.length).toBe(pending.length);
    return kept;
  }

  it('the next instance sends what the last one left pending, once, and continues after it', async () => {
    await setup();
    const kept = await leaveBehind(['a0'], ['a1', 'a2', 'a3']);
    expect(kept.appends.map((f) => f.producer.seq)).toEqual([1, 2, 3]);
    const b = await open({ outbox: { restore: kept } });
    expect(b.producer).toMatchObject({ epoch: kept.epoch, pending: 3 });
    await b.flush();
    await b.sendText('b0');
    expect(await texts()).toEqual(['a0', 'a1', 'a2', 'a3', 'b0']);
    // Its own appends start the next epoch, which fences the instance that left the record.
    expect(b.producer).toMatchObject({ epoch: kept.epoch + 1, nextSeq: 1, pending: 0 });
  });

  it('a duplicate of a live instance (a duplicated tab) takes its record over and fences it: nothing lost, nothing collides', async () => {
    await setup();
    const transport = controllableTransport();
    let saved: PendingAppends | undefined;
    const a = await open({ transport, outbox: { save: (p) => (saved = structuredClone(p)) } });
    await a.sendText('a0');
    transport.hold();
    transport.drop();
    await stateReached(a, 'reconnecting');
    const aPending = ['a1', 'a2'].map((t) => a.sendText(t).then(() => 'committed', (e: LifelineError) => e.code));
    await waitFor(() => saved?.appends.length === 2, { message: 'the pending appends saved' });
    // The duplicate starts from the same record while the original is still alive.
    const b = await open({ outbox: { restore: saved! } });
    await b.sendText('b0');
    transport.release();
    // The original comes back: its appends are in the old epoch, which the duplicate fenced.
    expect(await Promise.all(aPending)).toEqual(['STALE_EPOCH', 'STALE_EPOCH']);
    await expect(a.sendText('a3')).rejects.toMatchObject({ code: 'STALE_EPOCH' });
    // a1 and a2 are in the timeline once (sent by the duplicate); nothing of the two collided.
    expect(await texts()).toEqual(['a0', 'a1', 'a2', 'b0']);
  });

  it('appends that were committed after the record was saved are neither repeated nor overwritten', async () => {
    await setup();
    const saves: PendingAppends[] = [];
    const a = await open({ outbox: { save: (p) => saves.push(structuredClone(p)) } });
    const sent = ['a0', 'a1', 'a2'].map((t) => a.sendText(t));
    await new Promise((resolve) => setImmediate(resolve));
    // The first record has all three pending; the relay commits them, and two more, later.
    const stale = saves.find((p) => p.appends.length === 3)!;
    expect(stale).toBeDefined();
    await Promise.all(sent);
    await a.sendText('a3');
    await a.sendText('a4');
    a.close();
    const errors: LifelineError[] = [];
    const b = await open({ outbox: { restore: stale } });
    b.on('error', (e) => errors.push(e));
    await b.flush();
    // The new append goes in a new epoch: had it taken seq 3 of the old one, the relay would have
    // answered it as a retry of a3.
    await b.sendText('b0');
    expect(await texts()).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'b0']);
    expect(errors).toEqual([]);
  });

  it('if another instance took the producer over, the restored appends are refused and reported', async () => {
    await setup();
    const kept = await leaveBehind(['a0'], ['a1', 'a2']);
    // A newer instance without the record starts epoch 1, fencing the one that left it.
    const c = await open();
    await c.sendText('c0');
    c.close();
    const errors: LifelineError[] = [];
    const refused: string[] = [];
    const onRefused = (e: LifelineError, append: { data: unknown }): void => {
      errors.push(e);
      refused.push(String((append.data as { text: string }).text));
    };
    const b = await open({ outbox: { restore: kept, onRefused } });
    await b.sendText('b0');
    expect(await texts()).toEqual(['a0', 'c0', 'b0']);
    expect(refused).toEqual(['a1', 'a2']);
    await waitFor(() => errors.length === 2, { message: 'both restored appends reported' });
    expect(errors.map((e) => e.code)).toEqual(['STALE_EPOCH', 'STALE_EPOCH']);
    expect(b.producer.epoch).toBe(2);
  });

  it('restored appends the relay cannot place (the ones before them are unknown) are refused, not misnumbered', async () => {
    await setup();
    const orphan: PendingAppends = {
      producer: 'tab-1',
      epoch: 3,
      appends: [5, 6].map((seq) => ({ type: 'append', producer: { id: 'tab-1', epoch: 3, seq }, kind: 'text.delta', data: { text: `x${seq}` } })),
    };
    // Without onRefused they are error events, a task after connect() resolves.
    const errors: LifelineError[] = [];
    const b = await open({ outbox: { restore: orphan } });
    b.on('error', (e) => errors.push(e));
    await b.sendText('b0');
    expect(await texts()).toEqual(['b0']);
    await waitFor(() => errors.length === 2, { message: 'both restored appends reported' });
    expect(errors.map((e) => e.code)).toEqual(['SEQUENCE_GAP', 'SEQUENCE_GAP']);
    expect(b.producer).toMatchObject({ epoch: 4, nextSeq: 1 });
  });

  it('restored appends after a gap in the same epoch are refused (SEQUENCE_GAP), not left to fail forever', async () => {
    await setup();
    const a = await open();
    await a.sendText('a0');
    a.close();
    const gap: PendingAppends = {
      producer: 'tab-1',
      epoch: 0,
      appends: [4, 5].map((seq) => ({ type: 'append', producer: { id: 'tab-1', epoch: 0, seq }, kind: 'text.delta', data: { text: `x${seq}` } })),
    };
    const refused: string[] = [];
    const b = await open({ outbox: { restore: gap, onRefused: (e) => refused.push(e.code) } });
    await b.sendText('b0');
    expect(refused).toEqual(['SEQUENCE_GAP', 'SEQUENCE_GAP']);
    expect(await texts()).toEqual(['a0', 'b0']);
    expect(b.producer).toMatchObject({ epoch: 1, nextSeq: 1 });
  });

  it('ignores a record of another producer', async () => {
    await setup();
    const kept = await leaveBehind([], ['a0']);
    const b = await open({ device: 'tab-2', outbox: { restore: kept } });
    expect(b.producer.pending).toBe(0);
    await b.sendText('b0');
    expect(await texts()).toEqual(['b0']);
  });
  it('a device attached to the session does not write into the record of the one it came from', async () => {
    await setup();
    const records: PendingAppends[] = [];
    const a = await open({ outbox: { save: (p) => records.push(structuredClone(p)) } });
    await a.sendText('a0');
    const saves = records.length;
    const other = await a.attach();
    cleanup.add(() => other.close());
    await other.sendText('from the other device');
    await new Promise((resolve) => setImmediate(resolve));
    expect(records.length).toBe(saves);
    expect(records.every((r) => r.producer === 'tab-1')).toBe(true);
  });
});
