import type { ProducerState } from '../../protocol/index.js';
import { leaseProducerId } from '../store.js';
import type { BatchMeta } from './codec.js';

/** Recent (producer seq → event seq) pairs kept per producer for answering retries locally. */
const ORIGIN_WINDOW = 4096;

interface ProducerFold extends ProducerState {
  /** producer seq → event seq, for the current epoch, the most recent ORIGIN_WINDOW of them. */
  origins: Map<number, number>;
}

/**
 * What one node knows of a session: the fold of every message on its subject up to
 * `lastStreamSeq`. Appends are published with "expected last subject sequence = lastStreamSeq",
 * so a batch judged against this state can only commit if nothing was written in between.
 */
export class SessionState {
  readonly id: string;
  readonly key: string;
  readonly gen: string;
  readonly subject: string;
  /** Stream sequence of the last message folded, valid or void (0: none): where catching up resumes. */
  lastStreamSeq = 0;
  /** Stream sequence of the last valid message (0: none): what the next message is judged against. */
  lastValidSeq = 0;
  head = 0;
  /** ts of the newest event (or close), 0 if none. */
  lastTs = 0;
  closed = false;
  /** Last accepted Durable Streams Stream-Seq. */
  lastWriterSeq: string | undefined;
  readonly producers = new Map<string, ProducerFold>();
  readonly leases = new Map<string, { holder: string | null; epoch: number }>();
  /** Messages holding events: their first event seq and stream seq, both ascending. */
  readonly firsts: number[] = [];
  readonly streamSeqs: number[] = [];
  /** Nonces of the most recent messages, to recognise one's own write after a lost ack. */
  readonly #recentNonces: string[] = [];

  constructor(id: string, key: string, gen: string, subject: string) {
    this.id = id;
    this.key = key;
    this.gen = gen;
    this.subject = subject;
  }

  /**
   * Applies one message (in stream order). Ignores messages already folded. A message judged
   * against another base than the last valid message is void and changes nothing. Returns whether
   * the message is valid (false for void and already folded ones).
   */
  fold(meta: BatchMeta, streamSeq: number): boolean {
    if (streamSeq <= this.lastStreamSeq) return false;
    this.lastStreamSeq = streamSeq;
    if (meta.l !== this.lastValidSeq) return false;
    this.lastValidSeq = streamSeq;
    this.#recentNonces.push(meta.b);
    if (this.#recentNonces.length > 64) this.#recentNonces.shift();
    if (meta.n > 0) {
      this.firsts.push(meta.f);
      this.streamSeqs.push(streamSeq);
      this.head = meta.h;
    }
    if (meta.ts !== undefined) this.lastTs = meta.ts;
    if (meta.cl) this.closed = true;
    if (meta.ss !== undefined) this.lastWriterSeq = meta.ss;
    for (const [id, epoch, seq, eventSeq] of meta.p ?? []) this.#setProducer(id, epoch, seq, eventSeq);
    const op = meta.op;
    if (op?.t === 'claim') {
      this.leases.set(op.role, { holder: op.holder, epoch: op.epoch });
      this.#setProducer(leaseProducerId(op.role), op.epoch, -1, undefined);
    } else if (op?.t === 'release') {
      const l = this.leases.get(op.role);
      if (l && l.holder === op.holder && l.epoch === op.epoch) l.holder = null;
    }
    return true;
  }

  /** Whether the already folded message at `streamSeq` holding events was valid. */
  holdsEvents(streamSeq: number): boolean {
    let lo = 0;
    let hi = this.streamSeqs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const v = this.streamSeqs[mid]!;
      if (v === streamSeq) return true;
      if (v < streamSeq) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  hasNonce(nonce: string): boolean {
    return this.#recentNonces.includes(nonce);
  }

  producer(id: string): ProducerState | undefined {
    const p = this.producers.get(id);
    return p && { id, epoch: p.epoch, seq: p.seq };
  }

  /** Event seq of a producer's (epoch, seq) if still in the local window. */
  origin(id: string, epoch: number, seq: number): number | undefined {
    const p = this.producers.get(id);
    return p && p.epoch === epoch ? p.origins.get(seq) : undefined;
  }

  /** Stream sequence of the message holding event `seq`, or undefined if none folded holds it. */
  messageOf(seq: number): number | undefined {
    if (seq < 1 || seq > this.head || this.firsts.length === 0) return undefined;
    let lo = 0;
    let hi = this.firsts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firsts[mid]! <= seq) lo = mid;
      else hi = mid - 1;
    }
    return this.firsts[lo]! <= seq ? this.streamSeqs[lo] : undefined;
  }

  #setProducer(id: string, epoch: number, seq: number, eventSeq: number | undefined): void {
    let p = this.producers.get(id);
    if (!p || p.epoch !== epoch) {
      p = { id, epoch, seq, origins: new Map() };
      this.producers.set(id, p);
    }
    p.seq = seq;
    if (eventSeq !== undefined) {
      p.origins.set(seq, eventSeq);
      if (p.origins.size > ORIGIN_WINDOW) p.origins.delete(p.origins.keys().next().value!);
    }
  }
}
