import type { AppendEntry, AppendOutcome, Store } from '../store/index.js';
import { hasPipelinedAppends } from './store-capabilities.js';

interface Pending {
  entries: readonly AppendEntry[];
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: appends that arrive while the store is busy (or in the same turn of the event loop)
 * are committed together in one store.append call — one transaction, at most one fsync. Batches commit
 * strictly one after another, so per-session order is the order of arrival.
 */
export class GroupCommitter {
  readonly #store: Store;
  readonly #maxBatch: number;
  readonly #onCommitted: (entries: readonly AppendEntry[], outcomes: AppendOutcome[], ms: number) => void;
  #queue: Pending[] = [];
  #queued = 0;
  #running = false;
  #scheduled = false;
  #idle: (() => void)[] = [];
  /** Submissions handed straight to a pipelining store and not yet answered. */
  #inFlight = 0;

  constructor(
    store: Store,
    maxBatch: number,
    onCommitted: (entries: readonly AppendEntry[], outcomes: AppendOutcome[], ms: number) => void,
  ) {
    this.#store = store;
    this.#maxBatch = maxBatch;
    this.#onCommitted = onCommitted;
  }

  /** Number of entries waiting for a commit. */
  get backlog(): number {
    return this.#queued;
  }

  submit(entries: readonly AppendEntry[]): Promise<AppendOutcome[]> {
    if (hasPipelinedAppends(this.#store)) return this.#direct(entries);
    return new Promise((resolve, reject) => {
      this.#queue.push({ entries, resolve, reject });
      this.#queued += entries.length;
      this.#schedule();
    });
  }

  /**
   * A store that batches per session itself (e.g. NATS: one publish in flight per session, what
   * arrives meanwhile rides the next) gets every submission at once: one slow session — an audio
   * track waiting to fill a publish — never holds up the others. Per-session order is the store's.
   */
  async #direct(entries: readonly AppendEntry[]): Promise<AppendOutcome[]> {
    this.#queued += entries.length;
    this.#inFlight++;
    const started = performance.now();
    try {
      const outcomes = await this.#store.append(entries);
      this.#onCommitted(entries, outcomes, performance.now() - started);
      return outcomes;
    } finally {
      this.#queued -= entries.length;
      this.#inFlight--;
      if (this.#inFlight === 0 && !this.#running && this.#queue.length === 0) {
        const idle = this.#idle;
        this.#idle = [];
        for (const done of idle) done();
      }
    }
  }

  /** Resolves once everything submitted so far has been committed (or failed). */
  drain(): Promise<void> {
    if (!this.#running && this.#queue.length === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #schedule(): void {
    if (this.#running || this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate lets every append that arrived in this I/O turn join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const batch: Pending[] = [];
        let size = 0;
        while (this.#queue.length > 0) {
          const next = this.#queue[0]!;
          if (batch.length > 0 && size + next.entries.length > this.#maxBatch) break;
          batch.push(next);
          size += next.entries.length;
          this.#queue.shift();
        }
        this.#queued -= size;
        const entries = batch.flatMap((p) => p.entries);
        const started = performance.now();
        let outcomes: AppendOutcome[];
        try {
          outcomes = await this.#store.append(entries);
        } catch (err) {
          for (const p of batch) p.reject(err);
          continue;
        }
        this.#onCommitted(entries, outcomes, performance.now() - started);
        let at = 0;
        for (const p of batch) {
          p.resolve(outcomes.slice(at, at + p.entries.length));
          at += p.entries.length;
        }
      }
    } finally {
      this.#running = false;
      const idle = this.#idle;
      this.#idle = [];
      for (const done of idle) done();
    }
  }
}
