/**
 * Wall-clock milliseconds with sub-millisecond precision. `performance.timeOrigin + now()` is
 * comparable across processes on one machine (unlike `now()` alone), so a timestamp taken by a
 * sender in one process can be subtracted from one taken by a receiver in another.
 */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Polls `ready` every `everyMs` until it is true, `timeoutMs` passes or `signal` aborts. */
export async function waitUntil(ready: () => boolean, timeoutMs: number, signal?: AbortSignal, everyMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!ready()) {
    if (performance.now() >= deadline || signal?.aborted) return ready();
    await sleep(everyMs, signal);
  }
  return true;
}

export interface PaceOptions {
  /** Independent streams (sessions), each paced on its own. */
  streams: number;
  /** Messages per second per stream. */
  ratePerSec: number;
  durationMs: number;
  /** Called for every message due: stream index and the message's index within its stream. */
  send: (stream: number, k: number) => void;
  signal?: AbortSignal;
  /** Most messages one timer turn may send to catch up after a stall (default 10). */
  maxBurst?: number;
}

/**
 * An open-loop load generator: message k of stream i is due at start + phase(i) + k / rate, whether
 * or not earlier ones were answered (so a slow system cannot slow the load down and hide its own
 * latency). Streams are phase-shifted evenly so N streams do not all fire in the same millisecond.
 * Resolves with the number of messages sent once every stream has passed `durationMs`.
 */
export function pace(opts: PaceOptions): Promise<number> {
  const interval = 1000 / opts.ratePerSec;
  const maxBurst = opts.maxBurst ?? 10;
  const start = performance.now();
  const end = start + opts.durationMs;
  let total = 0;
  let running = opts.streams;
  return new Promise((resolve) => {
    if (running === 0) return resolve(0);
    const timers = new Set<ReturnType<typeof setTimeout>>();
    const finish = (): void => {
      if (--running === 0) {
        opts.signal?.removeEventListener('abort', abort);
        resolve(total);
      }
    };
    const abort = (): void => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      running = 1;
      finish();
    };
    opts.signal?.addEventListener('abort', abort, { once: true });
    for (let i = 0; i < opts.streams; i++) {
      const phase = (i / opts.streams) * interval;
      let k = 0;
      const dueAt = (n: number): number => start + phase + n * interval;
      const tick = (timer?: ReturnType<typeof setTimeout>): void => {
        if (timer) timers.delete(timer);
        if (opts.signal?.aborted) return;
        const now = performance.now();
        let burst = 0;
        while (burst < maxBurst && dueAt(k) <= now && dueAt(k) < end) {
          opts.send(i, k);
          k++;
          total++;
          burst++;
        }
        if (dueAt(k) >= end) return finish();
        const t: ReturnType<typeof setTimeout> = setTimeout(() => tick(t), Math.max(0, dueAt(k) - performance.now()));
        timers.add(t);
      };
      tick();
    }
  });
}

/**
 * Runs `fn` over `items` with at most `limit` in flight; resolves with the results in order. On the
 * first failure no new item starts; it rejects with that failure once the ones in flight settle.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T, i);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
  return out;
}
