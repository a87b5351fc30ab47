/**
 * One impaired direction of a datagram path: blackhole, seeded loss, a rate limit with a bounded
 * bottleneck queue, then a fixed delay plus uniform jitter. Protocol-agnostic: it sees opaque
 * packets and their sizes, so STUN, DTLS, SCTP and RTP sharing one 5-tuple are treated alike.
 *
 * Order of decisions for each packet offered:
 *   1. loss is drawn first (when loss > 0) so packet n's fate depends only on n and the seed,
 *      never on timing or on the other impairments;
 *   2. blackhole drops silently; 3. the loss draw drops; 4. a full bottleneck queue drops;
 *   5. otherwise the packet is due at  serialization end + delay + jitter, and without
 *      `allowReorder` never before the packet ahead of it (FIFO).
 * Blackhole is checked again on release: turning it on also kills packets already in flight.
 */
import { DelayQueue } from './delay-queue.js';
import { NetsimError } from './errors.js';
import { deriveSeed, mulberry32, symmetric, type Random } from './random.js';

export type Direction = 'upstream' | 'downstream';
export type DirectionSelector = Direction | 'both';

export interface Impairment {
  /** Fixed one-way delay, ms. */
  delayMs: number;
  /** Uniform ± jitter added to the delay, ms (the sum is clamped at 0). */
  jitterMs: number;
  /** Probability in [0, 1] that a packet is lost. */
  loss: number;
  /** Drop everything silently. */
  blackhole: boolean;
  /** Bottleneck rate in bytes per second; null = unlimited. */
  rateBytesPerSec: number | null;
  /** Bytes allowed to wait for the bottleneck before tail drop (only with a rate). */
  queueLimitBytes: number;
  /** Let jitter reorder packets; otherwise each direction stays FIFO. */
  allowReorder: boolean;
}

export const NO_IMPAIRMENT: Readonly<Impairment> = Object.freeze({
  delayMs: 0,
  jitterMs: 0,
  loss: 0,
  blackhole: false,
  rateBytesPerSec: null,
  queueLimitBytes: 256 * 1024,
  allowReorder: false,
});

/** Hard cap on packets held per direction, whatever the settings: memory stays bounded. */
export const MAX_QUEUED_PACKETS = 65_536;

export type DropReason = 'blackhole' | 'loss' | 'queueFull' | 'filtered' | 'sendError';

export interface Count {
  packets: number;
  bytes: number;
}

/** Invariant: received = forwarded + Σ dropped + queued (in packets; bytes likewise minus drops). */
export interface DirectionStats {
  received: Count;
  forwarded: Count;
  /** Packets dropped, by reason. */
  dropped: Record<DropReason, number>;
  /** Packets (and bytes) in flight inside the proxy right now. */
  queued: Count;
}

function bad(what: string, value: unknown): never {
  throw new NetsimError('NETSIM_ERR_BAD_OPTION', `${what}: ${String(value)}`);
}

function finiteAtLeast(v: unknown, min: number, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) bad(`${what} must be a finite number >= ${min}`, v);
  return v;
}

/** Returns `base` with `patch` applied, or throws NETSIM_ERR_BAD_OPTION (changing nothing). */
export function mergeImpairment(base: Readonly<Impairment>, patch: Partial<Impairment> = {}): Impairment {
  const next: Impairment = { ...base };
  for (const [key, value] of Object.entries(patch) as [keyof Impairment, unknown][]) {
    if (value === undefined) continue;
    switch (key) {
      case 'delayMs':
      case 'jitterMs':
        next[key] = finiteAtLeast(value, 0, key);
        break;
      case 'loss':
        if (finiteAtLeast(value, 0, key) > 1) bad('loss must be in [0, 1]', value);
        next.loss = value as number;
        break;
      case 'rateBytesPerSec':
        next.rateBytesPerSec = value === null ? null : finiteAtLeast(value, 1, key);
        break;
      case 'queueLimitBytes':
        next.queueLimitBytes = finiteAtLeast(value, 1, key);
        break;
      case 'blackhole':
      case 'allowReorder':
        if (typeof value !== 'boolean') bad(`${key} must be a boolean`, value);
        next[key] = value;
        break;
      default:
        bad('unknown impairment option', key);
    }
  }
  return next;
}

function emptyStats(): DirectionStats {
  return {
    received: { packets: 0, bytes: 0 },
    forwarded: { packets: 0, bytes: 0 },
    dropped: { blackhole: 0, loss: 0, queueFull: 0, filtered: 0, sendError: 0 },
    queued: { packets: 0, bytes: 0 },
  };
}

export interface ImpairedLinkOptions<P> {
  seed: number;
  /** Distinguishes the random streams of this link from others built on the same seed. */
  stream: number;
  impairment?: Partial<Impairment>;
  /** Puts the packet on the wire. Report asynchronous failures with `noteSendError`. */
  send: (packet: P) => void;
  now?: () => number;
}

interface Queued<P> {
  packet: P;
  bytes: number;
}

export class ImpairedLink<P> {
  #impairment: Impairment;
  readonly #lossRandom: Random;
  readonly #jitterRandom: Random;
  readonly #queue: DelayQueue<Queued<P>>;
  readonly #send: (packet: P) => void;
  #stats = emptyStats();
  /** When the bottleneck finishes serializing what it already holds. */
  #linkFreeAt = 0;
  #closed = false;

  constructor(opts: ImpairedLinkOptions<P>) {
    this.#impairment = mergeImpairment(NO_IMPAIRMENT, opts.impairment);
    this.#lossRandom = mulberry32(deriveSeed(opts.seed, opts.stream * 2));
    this.#jitterRandom = mulberry32(deriveSeed(opts.seed, opts.stream * 2 + 1));
    this.#send = opts.send;
    this.#queue = new DelayQueue({ deliver: (q) => this.#release(q), ...(opts.now ? { now: opts.now } : {}) });
  }

  get impairment(): Readonly<Impairment> {
    return { ...this.#impairment };
  }

  /** Applies a validated impairment (see `mergeImpairment`). */
  set impairment(next: Impairment) {
    this.#impairment = { ...next };
  }

  get timerArmed(): boolean {
    return this.#queue.timerArmed;
  }

  offer(packet: P, bytes: number): void {
    if (this.#closed) return;
    const imp = this.#impairment;
    const s = this.#stats;
    s.received.packets++;
    s.received.bytes += bytes;
    const lost = imp.loss > 0 && this.#lossRandom() < imp.loss;
    if (imp.blackhole) return this.#drop('blackhole');
    if (lost) return this.#drop('loss');
    if (this.#queue.length >= MAX_QUEUED_PACKETS) return this.#drop('queueFull');

    const now = this.#queue.now();
    let sentAt = now;
    if (imp.rateBytesPerSec !== null) {
      const start = Math.max(now, this.#linkFreeAt);
      const backlogBytes = ((start - now) * imp.rateBytesPerSec) / 1000;
      if (backlogBytes + bytes > imp.queueLimitBytes && start > now) return this.#drop('queueFull');
      sentAt = start + (bytes * 1000) / imp.rateBytesPerSec;
      this.#linkFreeAt = sentAt;
    }
    const jitter = imp.jitterMs > 0 ? symmetric(this.#jitterRandom) * imp.jitterMs : 0;
    let dueAt = sentAt + Math.max(0, imp.delayMs + jitter);
    if (!imp.allowReorder) dueAt = Math.max(dueAt, this.#queue.lastDueAt);
    s.queued.packets++;
    s.queued.bytes += bytes;
    this.#queue.push({ packet, bytes }, dueAt);
  }

  /** Counts a packet the owner refused before it reached this link (e.g. from a stranger). */
  noteFiltered(bytes: number): void {
    this.#stats.received.packets++;
    this.#stats.received.bytes += bytes;
    this.#drop('filtered');
  }

  /** The owner's send failed after it was counted as forwarded: move it to `dropped.sendError`. */
  noteSendError(bytes: number): void {
    this.#stats.forwarded.packets--;
    this.#stats.forwarded.bytes -= bytes;
    this.#drop('sendError');
  }

  stats(): DirectionStats {
    const s = this.#stats;
    return { received: { ...s.received }, forwarded: { ...s.forwarded }, dropped: { ...s.dropped }, queued: { ...s.queued } };
  }

  /** Zeroes the counters; packets still queued stay counted as queued. */
  resetStats(): void {
    const queued = this.#stats.queued;
    this.#stats = emptyStats();
    this.#stats.queued = { ...queued };
    this.#stats.received = { ...queued };
  }

  /** Discards everything queued and stops the timer; the link accepts no more packets. */
  close(): void {
    this.#closed = true;
    this.#stats.queued = { packets: 0, bytes: 0 };
    this.#queue.close();
  }

  #drop(reason: DropReason): void {
    this.#stats.dropped[reason]++;
  }

  #release(q: Queued<P>): void {
    this.#stats.queued.packets--;
    this.#stats.queued.bytes -= q.bytes;
    if (this.#impairment.blackhole) return this.#drop('blackhole');
    this.#stats.forwarded.packets++;
    this.#stats.forwarded.bytes += q.bytes;
    this.#send(q.packet);
  }
}
