/**
 * A queue of items released at their due times by one timer. Items leave in due-time order, and
 * in arrival order among equal due times, so a caller that never pushes a due time earlier than
 * `lastDueAt` gets strict FIFO. Every impaired path in netsim (a UDP direction, a TCP direction)
 * is one of these.
 *
 * Timers never release early: Node's timers run on a cached loop clock that can lag the real
 * clock by a millisecond or more, so when the timer fires before the head is due by `now()`, the
 * queue simply re-arms for the remainder. Delay lower bounds therefore hold exactly.
 */

export interface DelayQueueOptions<T> {
  /** Called once per item, in order, when it is due (and the queue is not paused). */
  deliver: (item: T) => void;
  /** Milliseconds, monotonic. Defaults to `performance.now()`. */
  now?: () => number;
}

interface Entry<T> {
  dueAt: number;
  item: T;
}

export class DelayQueue<T> {
  readonly #deliver: (item: T) => void;
  readonly now: () => number;
  #entries: Entry<T>[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerDueAt = Infinity;
  #paused = false;
  #delivering = false;
  #closed = false;

  constructor(opts: DelayQueueOptions<T>) {
    this.#deliver = opts.deliver;
    this.now = opts.now ?? (() => performance.now());
  }

  get length(): number {
    return this.#entries.length - this.#head;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** True while a timer is armed (for leak checks). */
  get timerArmed(): boolean {
    return this.#timer !== undefined;
  }

  /** The latest due time in the queue, or -Infinity when empty. */
  get lastDueAt(): number {
    return this.length === 0 ? -Infinity : (this.#entries[this.#entries.length - 1] as Entry<T>).dueAt;
  }

  /**
   * Queues `item` for `dueAt`. An item already due, pushed onto an empty running queue, is
   * delivered synchronously: an unimpaired path adds no timer hop.
   */
  push(item: T, dueAt: number): void {
    if (this.#closed) return;
    if (this.length === 0 && !this.#paused && !this.#delivering && dueAt <= this.now()) {
      this.#deliver(item);
      return;
    }
    const entry = { dueAt, item };
    const entries = this.#entries;
    if (this.length === 0 || dueAt >= (entries[entries.length - 1] as Entry<T>).dueAt) {
      entries.push(entry);
    } else {
      // Binary search for the first entry due strictly later: stable among equal due times.
      let lo = this.#head;
      let hi = entries.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((entries[mid] as Entry<T>).dueAt <= dueAt) lo = mid + 1;
        else hi = mid;
      }
      entries.splice(lo, 0, entry);
    }
    this.#arm();
  }

  /** Holds every item (due or not) until `resume()`. */
  pause(): void {
    this.#paused = true;
    this.#disarm();
  }

  /** Releases what is due and re-arms for the rest. */
  resume(): void {
    if (!this.#paused || this.#closed) return;
    this.#paused = false;
    if (this.#delivering) return; // resumed from inside a delivery: the running flush re-arms
    this.#flush();
  }

  /** Removes and returns every queued item, undelivered. */
  clear(): T[] {
    const items = this.#entries.slice(this.#head).map((e) => e.item);
    this.#entries = [];
    this.#head = 0;
    this.#disarm();
    return items;
  }

  /** Clears the queue and refuses further pushes; no timer remains. */
  close(): T[] {
    this.#closed = true;
    return this.clear();
  }

  #arm(): void {
    if (this.#paused || this.#closed || this.#delivering || this.length === 0) return;
    const dueAt = (this.#entries[this.#head] as Entry<T>).dueAt;
    if (this.#timer !== undefined && this.#timerDueAt <= dueAt) return;
    this.#disarm();
    this.#timerDueAt = dueAt;
    const wait = Math.max(0, Math.ceil(dueAt - this.now()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerDueAt = Infinity;
      this.#flush();
    }, wait);
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDueAt = Infinity;
  }

  #flush(): void {
    this.#delivering = true;
    try {
      const now = this.now();
      // Bounded: at most the items queued right now (a delivery may push, never unboundedly).
      let budget = this.length;
      while (budget-- > 0 && !this.#paused && !this.#closed && this.length > 0) {
        const entry = this.#entries[this.#head] as Entry<T>;
        if (entry.dueAt > now) break;
        this.#entries[this.#head] = undefined as unknown as Entry<T>;
        this.#head++;
        this.#compact();
        this.#deliver(entry.item);
      }
    } finally {
      this.#delivering = false;
    }
    this.#arm();
  }

  #compact(): void {
    if (this.#head === this.#entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }
}
