import { describe, expect, it } from 'vitest';
import { ERROR_CODE_LIST } from '../../src/protocol/index.js';
import { ExponentialBackoff, FINAL_ERRORS } from '../../src/sdk/reconnect-policy.js';

const ctx = (attempt: number, elapsedMs = 0) => ({ attempt, elapsedMs });

describe('ExponentialBackoff', () => {
  it('full jitter: the delay is random × min(max, initial × 2^attempt)', () => {
    const top = new ExponentialBackoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    const bottom = new ExponentialBackoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    const half = new ExponentialBackoff({ initialMs: 100, maxMs: 1000, random: () => 0.5 });
    expect([0, 1, 2, 3, 4, 5].map((a) => top.nextRetryDelayMs(ctx(a)))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 2, 3, 4, 5].map((a) => half.nextRetryDelayMs(ctx(a)))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 5].map((a) => bottom.nextRetryDelayMs(ctx(a)))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('stays within [0, ceiling] for any random value, and is capped for huge attempts', () => {
    let x = 0.123;
    const random = () => (x = (x * 9301 + 49297) % 233280 / 233280);
    const policy = new ExponentialBackoff({ initialMs: 10, maxMs: 700, random });
    for (let attempt = 0; attempt < 200; attempt++) {
      const d = policy.nextRetryDelayMs(ctx(attempt))!;
      expect(Number.isInteger(d)).toBe(true);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(700, 10 * 2 ** attempt));
    }
    const capped = new ExponentialBackoff({ maxMs: 5000, random: () => 0.999 });
    expect(capped.nextRetryDelayMs(ctx(10_000))).toBe(4995);
    expect(capped.nextRetryDelayMs(ctx(Number.MAX_SAFE_INTEGER))).toBe(4995);
  });

  it('defaults: 50 ms first ceiling, 5 s cap, never gives up by time', () => {
    const p = new ExponentialBackoff({ random: () => 0.5 });
    expect(p.nextRetryDelayMs(ctx(0))).toBe(25);
    expect(p.nextRetryDelayMs(ctx(20))).toBe(2500);
    expect(p.nextRetryDelayMs(ctx(3, 365 * 24 * 3600 * 1000))).toBe(200);
  });

  it('gives up (null) once giveUpAfterMs has passed without a link', () => {
    const p = new ExponentialBackoff({ giveUpAfterMs: 2000, random: () => 0.5 });
    expect(p.nextRetryDelayMs(ctx(5, 1999))).not.toBeNull();
    expect(p.nextRetryDelayMs(ctx(5, 2000))).toBeNull();
    expect(p.nextRetryDelayMs(ctx(0, 10_000))).toBeNull();
  });

  it('returns null for errors no retry can heal, and retries the others', () => {
    const p = new ExponentialBackoff({ random: () => 0.5 });
    for (const code of ERROR_CODE_LIST) {
      const delay = p.nextRetryDelayMs({ attempt: 0, elapsedMs: 0, errorCode: code });
      if (FINAL_ERRORS.has(code)) expect(delay, code).toBeNull();
      else expect(delay, code).toBe(25);
    }
    expect([...FINAL_ERRORS].sort()).toEqual(['FORBIDDEN', 'OFFSET_OUT_OF_RANGE', 'SESSION_EXPIRED', 'SESSION_GONE', 'SESSION_NOT_FOUND', 'STALE_EPOCH', 'TOKEN_EXPIRED', 'UNAUTHORIZED']);
  });
});
