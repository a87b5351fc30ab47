import type { ErrorCode } from '../protocol/index.js';

export interface ReconnectContext {
  /** 0 for the first retry after a loss. */
  attempt: number;
  /** Milliseconds since the link was lost. */
  elapsedMs: number;
  /** The typed error that ended the last link, when there was one. */
  errorCode?: ErrorCode | undefined;
}

/** Decides when to try again: a delay in ms, or null to give up. */
export interface ReconnectPolicy {
  nextRetryDelayMs(ctx: ReconnectContext): number | null;
}

/** Errors that no retry can heal: reconnecting would only repeat them. */
export const FINAL_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'UNAUTHORIZED',
  'TOKEN_EXPIRED',
  'FORBIDDEN',
  'SESSION_NOT_FOUND',
  'SESSION_EXPIRED',
  'SESSION_GONE',
  'STALE_EPOCH',
  // A resume point beyond the head: a retry would succeed only once the head had passed it,
  // and the events in between would be skipped.
  'OFFSET_OUT_OF_RANGE',
]);

export interface BackoffOptions {
  /** First delay ceiling (default 50 ms: a relay restart or a blip is usually short). */
  initialMs?: number;
  /** Largest delay ceiling (default 5 s). */
  maxMs?: number;
  /** Give up after this long without a link (default: never). */
  giveUpAfterMs?: number;
  /** Source of randomness in [0, 1) (tests pass their own). */
  random?: () => number;
}

/** Exponential backoff with full jitter: delay = random × min(max, initial × 2^attempt). */
export class ExponentialBackoff implements ReconnectPolicy {
  readonly #initial: number;
  readonly #max: number;
  readonly #giveUpAfter: number;
  readonly #random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.#initial = opts.initialMs ?? 50;
    this.#max = opts.maxMs ?? 5000;
    this.#giveUpAfter = opts.giveUpAfterMs ?? Infinity;
    this.#random = opts.random ?? Math.random;
  }

  nextRetryDelayMs(ctx: ReconnectContext): number | null {
    if (ctx.errorCode && FINAL_ERRORS.has(ctx.errorCode)) return null;
    if (ctx.elapsedMs >= this.#giveUpAfter) return null;
    const ceiling = Math.min(this.#max, this.#initial * 2 ** Math.min(ctx.attempt, 30));
    return Math.round(this.#random() * ceiling);
  }
}
