import { LifelineError } from '../protocol/index.js';
import type { AppendFrame, EventBody } from '../protocol/index.js';

/**
 * A producer's unacknowledged appends as one instance of a client leaves them, for the next
 * instance (after a reload or restart) to send again: each is then committed exactly once.
 */
export interface PendingAppends {
  producer: string;
  epoch: number;
  /** In seq order. */
  appends: AppendFrame[];
}

interface Pending {
  frame: AppendFrame;
  resolve: (offset: string) => void;
  reject: (err: LifelineError) => void;
}

/**
 * One idempotent producer's appends that the relay has not yet acknowledged. Each append gets the
 * next seq of the current epoch and stays here until its `appended` frame arrives; after a
 * reconnect every pending append is sent again, in order, and the relay answers retries with the
 * original offset. So an append is committed exactly once however often the link breaks.
 */
export class Outbox {
  readonly producerId: string;
  #epoch: number;
  #nextSeq: number;
  readonly #pending = new Map<number, Pending>();
  readonly #max: number;
  #spaceWaiters: (() => void)[] = [];
  /** Room promised by waitForRoom() to an add() that has not happened yet. */
  #reserved = 0;
  #fenced: LifelineError | undefined;

  constructor(producerId: string, epoch: number, max: number) {
    this.producerId = producerId;
    this.#epoch = epoch;
    this.#nextSeq = 0;
    this.#max = max;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get size(): number {
    return this.#pending.size;
  }

  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** Continue a producer the relay already knows, after the last seq it committed. */
  continueFrom(epoch: number, lastSeq: number): void {
    if (this.#pending.size > 0) return; // our own pending appends decide
    this.#epoch = epoch;
    this.#nextSeq = lastSeq + 1;
  }

  /** Start a new epoch (fences older instances of this producer). Only while nothing is pending. */
  bumpEpoch(epoch: number): void {
    if (this.#pending.size > 0) throw new LifelineError('BAD_REQUEST', 'cannot change epoch with appends pending');
    this.#epoch = epoch;
    this.#nextSeq = 0;
  }

  /**
   * Waits until there is room and holds it for the next add() (bounded outbox: back-pressure for
   * fast producers). The hold matters: add() runs a microtask later, so without it every append
   * started in the same tick would see the same free room.
   */
  async waitForRoom(): Promise<void> {
    while (this.#pending.size + this.#reserved >= this.#max && !this.#fenced) {
      await new Promise<void>((resolve) => this.#spaceWaiters.push(resolve));
    }
    if (!this.#fenced) this.#reserved++;
  }

  /** Adds an append; returns its frame (to send now if connected) and a promise of its offset. */
  add(body: EventBody): { frame: AppendFrame; offset: Promise<string> } {
    if (this.#fenced) throw this.#fenced;
    if (this.#reserved > 0) this.#reserved--;
    const frame: AppendFrame = {
      type: 'append',
      producer: { id: this.producerId, epoch: this.#epoch, seq: this.#nextSeq++ },
      kind: body.kind,
      ...(body.track !== undefined ? { track: body.track } : {}),
      data: body.data,
      ...(body.bin !== undefined ? { bin: body.bin } : {}),
    };
    const offset = new Promise<string>((resolve, reject) => {
      this.#pending.set(frame.producer.seq, { frame, resolve, reject });
    });
    return { frame, offset };
  }

  /**
   * Takes over the appends an earlier instance of this producer left unacknowledged: they are
   * pending again (sent on the next welcome) and new appends continue after them. Only before the
   * first append. Those refused go to `onRefused`.
   */
  restore(pending: PendingAppends, onRefused: (err: LifelineError, frame: AppendFrame) => void): void {
    if (this.#pending.size > 0 || this.#nextSeq > 0) throw new LifelineError('BAD_REQUEST', 'restore before any append');
    if (pending.producer !== this.producerId || pending.appends.length === 0) return;
    const appends = [...pending.appends].sort((a, b) => a.producer.seq - b.producer.seq);
    this.#epoch = pending.epoch;
    for (const frame of appends) {
      const copy: AppendFrame = { ...frame, producer: { id: this.producerId, epoch: pending.epoch, seq: frame.producer.seq } };
      this.#pending.set(copy.producer.seq, { frame: copy, resolve: () => undefined, reject: (err) => onRefused(err, copy) });
    }
    this.#nextSeq = appends[appends.length - 1]!.producer.seq + 1;
  }

  /** The first pending seq, if any. */
  get firstPendingSeq(): number | undefined {
    let first: number | undefined;
    for (const seq of this.#pending.keys()) if (first === undefined || seq < first) first = seq;
    return first;
  }

  /** What is pending now, to keep for a later instance (see restore). */
  snapshot(): PendingAppends {
    return { producer: this.producerId, epoch: this.#epoch, appends: this.unacknowledged() };
  }

  /** Pending frames in seq order, to send again after a reconnect. */
  unacknowledged(): AppendFrame[] {
    return [...this.#pending.values()].map((p) => p.frame).sort((a, b) => a.producer.seq - b.producer.seq);
  }

  acknowledged(epoch: number, seq: number, offset: string): void {
    if (epoch !== this.#epoch) return;
    const p = this.#pending.get(seq);
    if (!p) return;
    this.#pending.delete(seq);
    p.resolve(offset);
    this.#wake();
  }

  /** The relay refused one append for good. A stale epoch fences the whole producer. */
  refused(epoch: number, seq: number, err: LifelineError): void {
    if (err.code === 'STALE_EPOCH') {
      this.failAll(err);
      return;
    }
    if (epoch !== this.#epoch) return;
    const p = this.#pending.get(seq);
    if (!p) return;
    this.#pending.delete(seq);
    p.reject(err);
    this.#wake();
  }

  /** Refuses every pending append (without fencing the producer: new appends may follow). */
  discard(err: LifelineError): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#wake();
  }

  failAll(err: LifelineError): void {
    this.#fenced ??= err;
    this.#reserved = 0;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const w of waiters) w();
  }
}
