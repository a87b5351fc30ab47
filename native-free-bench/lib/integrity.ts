/** The `integrity` object of the bench JSON. Every count but `sent` and `delivered` must be 0. */
export interface IntegrityReport {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
}

export type Delivery = 'ok' | 'duplicate' | 'reordered' | 'unexpected';

class StreamState {
  sent = 0;
  delivered = 0;
  duplicated = 0;
  reordered = 0;
  unexpected = 0;
  maxSeen = -1;
  seen = new Uint8Array(1024);

  mark(seq: number): Delivery {
    if (seq < 0 || seq >= this.sent || !Number.isInteger(seq)) {
      this.unexpected++;
      return 'unexpected';
    }
    if (this.seen[seq] === 1) {
      this.duplicated++;
      return 'duplicate';
    }
    this.seen[seq] = 1;
    this.delivered++;
    if (seq < this.maxSeen) {
      this.reordered++;
      return 'reordered';
    }
    this.maxSeen = seq;
    return 'ok';
  }

  send(): number {
    const seq = this.sent++;
    if (seq >= this.seen.length) {
      const grown = new Uint8Array(this.seen.length * 2);
      grown.set(this.seen);
      this.seen = grown;
    }
    return seq;
  }
}

/**
 * Exactly-once, in-order bookkeeping for many independent streams (one per session). Each stream's
 * sequence numbers are 0, 1, 2, … as handed out by `next()`. A delivery of a number already seen
 * is a duplicate; one below the highest seen so far is reordered (it still counts as delivered);
 * a number never sent is unexpected (a corrupted payload) and fails the run like the others.
 * Whatever was sent and never delivered by the time of `report()` is lost.
 */
export class IntegrityTracker {
  readonly #streams: StreamState[] = [];

  #stream(i: number): StreamState {
    let s = this.#streams[i];
    if (!s) this.#streams[i] = s = new StreamState();
    return s;
  }

  /** Allocates the next sequence number of stream `i` (call just before sending it). */
  next(i: number): number {
    return this.#stream(i).send();
  }

  /** Records the delivery of `seq` on stream `i`. */
  delivered(i: number, seq: number): Delivery {
    return this.#stream(i).mark(seq);
  }

  get sent(): number {
    let n = 0;
    for (const s of this.#streams) if (s) n += s.sent;
    return n;
  }

  get deliveredCount(): number {
    let n = 0;
    for (const s of this.#streams) if (s) n += s.delivered;
    return n;
  }

  /** Deliveries of numbers never sent: not part of the JSON shape, but they fail the run. */
  get unexpected(): number {
    let n = 0;
    for (const s of this.#streams) if (s) n += s.unexpected;
    return n;
  }

  /** True once every message sent so far has been delivered. */
  get complete(): boolean {
    return this.#streams.every((s) => !s || s.delivered === s.sent);
  }

  report(): IntegrityReport {
    const r: IntegrityReport = { sent: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0 };
    for (const s of this.#streams) {
      if (!s) continue;
      r.sent += s.sent;
      r.delivered += s.delivered;
      r.lost += s.sent - s.delivered;
      r.duplicated += s.duplicated;
      r.reordered += s.reordered;
    }
    return r;
  }
}

/** True when nothing was lost, duplicated, reordered or unexpected (and something was sent). */
export function integrityOk(r: IntegrityReport, unexpected = 0): boolean {
  return r.sent > 0 && r.lost === 0 && r.duplicated === 0 && r.reordered === 0 && r.delivered === r.sent && unexpected === 0;
}
