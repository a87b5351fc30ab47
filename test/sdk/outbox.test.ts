import { describe, expect, it } from 'vitest';
import { LifelineError } from '../../src/protocol/index.js';
import type { EventBody } from '../../src/protocol/index.js';
import { Outbox } from '../../src/sdk/outbox.js';

const body = (n: number): EventBody => ({ kind: 'text.delta', data: { text: `t${n}` } });
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function settledFlag(p: Promise<unknown>): () => boolean {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  return () => settled;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LifelineError);
  return (err as LifelineError).code;
}

describe('Outbox', () => {
  it('numbers appends 0, 1, 2, … in the current epoch and builds append frames', () => {
    const box = new Outbox('p1', 3, 10);
    const a = box.add(body(0));
    const b = box.add({ kind: 'audio.frame', track: 'mic', data: { codec: 'opus' }, bin: new Uint8Array([7]) });
    expect(a.frame).toEqual({ type: 'append', producer: { id: 'p1', epoch: 3, seq: 0 }, kind: 'text.delta', data: { text: 't0' } });
    expect(b.frame).toEqual({
      type: 'append',
      producer: { id: 'p1', epoch: 3, seq: 1 },
      kind: 'audio.frame',
      track: 'mic',
      data: { codec: 'opus' },
      bin: new Uint8Array([7]),
    });
    expect('track' in a.frame || 'bin' in a.frame).toBe(false);
    expect(box.size).toBe(2);
    expect(box.nextSeq).toBe(2);
  });

  it('lists unacknowledged frames in seq order whatever order acks arrive in', async () => {
    const box = new Outbox('p', 0, 10);
    const added = [0, 1, 2, 3, 4].map((n) => box.add(body(n)));
    box.acknowledged(0, 3, 'o3');
    box.acknowledged(0, 0, 'o0');
    expect(box.unacknowledged().map((f) => f.producer.seq)).toEqual([1, 2, 4]);
    expect(await added[3]!.offset).toBe('o3');
    expect(await added[0]!.offset).toBe('o0');
    expect(box.size).toBe(3);
  });

  it('ignores acks for another epoch, unknown seqs and repeats', async () => {
    const box = new Outbox('p', 1, 10);
    const a = box.add(body(0));
    const settled = settledFlag(a.offset);
    box.acknowledged(0, 0, 'wrong-epoch');
    box.acknowledged(1, 5, 'unknown');
    await turn();
    expect(settled()).toBe(false);
    box.acknowledged(1, 0, 'right');
    box.acknowledged(1, 0, 'again');
    expect(await a.offset).toBe('right');
    expect(box.size).toBe(0);
  });

  it('a refused append rejects that append only', async () => {
    const box = new Outbox('p', 0, 10);
    const a = box.add(body(0));
    const b = box.add(body(1));
    box.refused(1, 0, new LifelineError('SEQUENCE_GAP')); // other epoch: ignored
    box.refused(0, 0, new LifelineError('BAD_FRAME', 'nope'));
    expect(await codeOf(a.offset)).toBe('BAD_FRAME');
    expect(box.unacknowledged().map((f) => f.producer.seq)).toEqual([1]);
    box.acknowledged(0, 1, 'o1');
    expect(await b.offset).toBe('o1');
    expect(() => box.add(body(2))).not.toThrow();
  });

  it('STALE_EPOCH fences the producer: everything pending fails and nothing more can be added', async () => {
    const box = new Outbox('p', 0, 10);
    const pending = [0, 1, 2].map((n) => box.add(body(n)));
    const stale = new LifelineError('STALE_EPOCH');
    box.refused(0, 1, stale);
    for (const p of pending) await expect(p.offset).rejects.toBe(stale);
    expect(box.size).toBe(0);
    expect(box.unacknowledged()).toEqual([]);
    expect(() => box.add(body(3))).toThrow(stale);
    await box.waitForRoom(); // does not block a fenced producer: add() reports the fence
  });

  it('failAll keeps the first reason', async () => {
    const box = new Outbox('p', 0, 10);
    const a = box.add(body(0));
    box.failAll(new LifelineError('CONNECTION_CLOSED'));
    box.failAll(new LifelineError('STALE_EPOCH'));
    expect(await codeOf(a.offset)).toBe('CONNECTION_CLOSED');
    expect(() => box.add(body(1))).toThrow(expect.objectContaining({ code: 'CONNECTION_CLOSED' }) as unknown as Error);
  });

  it('waitForRoom blocks at max and resumes when an ack makes room', async () => {
    const box = new Outbox('p', 0, 2);
    await box.waitForRoom();
    box.add(body(0));
    await box.waitForRoom();
    box.add(body(1));
    const waiting = box.waitForRoom();
    const settled = settledFlag(waiting);
    await turn();
    expect(settled()).toBe(false);
    box.acknowledged(0, 0, 'o0');
    await waiting;
    expect(box.size).toBe(1);
  });

  it('waitForRoom resumes on refusals and on failAll too', async () => {
    const box = new Outbox('p', 0, 1);
    box.add(body(0)).offset.catch(() => {});
    const w1 = box.waitForRoom();
    box.refused(0, 0, new LifelineError('BAD_FRAME'));
    await w1;
    box.add(body(1)).offset.catch(() => {});
    const w2 = box.waitForRoom();
    box.failAll(new LifelineError('CONNECTION_CLOSED'));
    await w2;
  });

  it('continueFrom resumes a known producer after its last seq, unless appends are pending', () => {
    const box = new Outbox('p', 0, 10);
    box.continueFrom(4, 9);
    expect(box.epoch).toBe(4);
    expect(box.add(body(0)).frame.producer).toEqual({ id: 'p', epoch: 4, seq: 10 });
    box.continueFrom(7, 0); // our own pending append decides: ignored
    expect(box.epoch).toBe(4);
    expect(box.nextSeq).toBe(11);
  });

  it('bumpEpoch starts a new epoch at seq 0, and only with nothing pending', () => {
    const box = new Outbox('p', 0, 10);
    box.add(body(0));
    box.acknowledged(0, 0, 'o');
    box.bumpEpoch(1);
    expect(box.epoch).toBe(1);
    expect(box.add(body(1)).frame.producer).toEqual({ id: 'p', epoch: 1, seq: 0 });
    let thrown: unknown;
    try {
      box.bumpEpoch(2);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(LifelineError);
    expect((thrown as LifelineError).code).toBe('BAD_REQUEST');
    expect(box.epoch).toBe(1);
    expect(box.nextSeq).toBe(1);
  });
});

describe('Outbox bound under concurrent appenders', () => {
  /** What LifelineSession.append does: wait for room, then add. */
  const append = async (box: Outbox, n: number): Promise<number> => {
    await box.waitForRoom();
    const { frame, offset } = box.add(body(n));
    offset.catch(() => {}); // these tests look at the bound, not at the outcome
    return frame.producer.seq;
  };

  it('never holds more than max, even when many appends start in the same tick', async () => {
    const box = new Outbox('p', 0, 3);
    const seqs = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => append(box, n));
    await turn();
    expect(box.size).toBe(3);
    for (let seq = 0; seq < 8; seq++) {
      expect(box.size).toBeLessThanOrEqual(3);
      box.acknowledged(0, seq, `o${seq}`);
      await turn();
    }
    expect(await Promise.all(seqs)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(box.size).toBe(0);
  });

  it('one ack lets exactly one waiting append in', async () => {
    const box = new Outbox('p', 0, 2);
    await append(box, 0);
    await append(box, 1);
    const waiting = [2, 3, 4].map((n) => append(box, n));
    await turn();
    expect(box.size).toBe(2);
    box.acknowledged(0, 0, 'o0');
    await turn();
    expect(box.size).toBe(2);
    expect(box.unacknowledged().map((f) => f.producer.seq)).toEqual([1, 2]);
    box.failAll(new LifelineError('CONNECTION_CLOSED'));
    const outcomes = await Promise.allSettled(waiting);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
  });
});
