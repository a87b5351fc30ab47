import { describe, expect, it } from 'vitest';
import { LatencyRecorder, ratiosOf } from '../../native-free-bench/lib/histogram.js';
import { IntegrityTracker, integrityOk } from '../../native-free-bench/lib/integrity.js';
import { pace } from '../../native-free-bench/lib/pacer.js';
import { checkBenchJson } from '../../native-free-bench/lib/result.js';

describe('bench library', () => {
  it('integrity: counts loss, duplicates, reordering and unexpected numbers per stream', () => {
    const t = new IntegrityTracker();
    for (let k = 0; k < 5; k++) t.next(0);
    for (let k = 0; k < 2; k++) t.next(1);
    expect(t.delivered(0, 0)).toBe('ok');
    expect(t.delivered(0, 2)).toBe('ok');
    expect(t.delivered(0, 1)).toBe('reordered');
    expect(t.delivered(0, 2)).toBe('duplicate');
    expect(t.delivered(0, 9)).toBe('unexpected');
    expect(t.delivered(1, 0)).toBe('ok');
    expect(t.delivered(1, 1)).toBe('ok');
    expect(t.complete).toBe(false);
    const r = t.report();
    expect(r).toEqual({ sent: 7, delivered: 5, lost: 2, duplicated: 1, reordered: 1 });
    expect(t.unexpected).toBe(1);
    expect(integrityOk(r, t.unexpected)).toBe(false);

    const clean = new IntegrityTracker();
    for (let k = 0; k < 3000; k++) clean.delivered(0, clean.next(0)); // grows past the initial bitmap
    expect(clean.complete).toBe(true);
    expect(integrityOk(clean.report())).toBe(true);
  });

  it('histogram: microsecond resolution reported in ms; ratios against a baseline', () => {
    const h = new LatencyRecorder();
    for (let i = 1; i <= 1000; i++) h.recordMs(i / 100); // 0.01 … 10 ms
    h.recordMs(-1); // clock noise counts as 0
    const s = h.summary();
    expect(s).toMatchObject({ unit: 'ms', n: 1001 });
    expect(s.p50).toBeCloseTo(5, 1);
    expect(s.p99).toBeCloseTo(9.9, 1);
    expect(s.max).toBeCloseTo(10, 1);
    expect(new LatencyRecorder().summary()).toEqual({ unit: 'ms', n: 0, p50: 0, p95: 0, p99: 0, max: 0 });
    const base = { ...s, p50: 2.5, p95: 0, p99: 4.95 };
    expect(ratiosOf('latency', s, base)).toEqual({ latency_p50: 2, latency_p95: null, latency_p99: 2 });
  });

  it('pace: sends rate × duration per stream, open loop', async () => {
    const sent = new Map<number, number[]>();
    const total = await pace({ streams: 3, ratePerSec: 100, durationMs: 200, send: (i, k) => sent.set(i, [...(sent.get(i) ?? []), k]) });
    expect(total).toBe(60);
    for (let i = 0; i < 3; i++) expect(sent.get(i)).toEqual(Array.from({ length: 20 }, (_, k) => k));
  });

  it('checkBenchJson: accepts the documented shape only', () => {
    const summary = { unit: 'ms', n: 1, p50: 1, p95: 1, p99: 1, max: 1 };
    const ok = {
      scenario: 'x',
      config: {},
      results: { latency: summary },
      baselines: { b: { latency: summary } },
      ratios: { latency_p50: 1, latency_p95: null },
      integrity: { sent: 1, delivered: 1, lost: 0, duplicated: 0, reordered: 0 },
    };
    expect(checkBenchJson(ok)).toEqual([]);
    expect(checkBenchJson({ ...ok, extra: 1 })).toEqual(['unexpected keys: extra']);
    expect(checkBenchJson({ ...ok, results: { latency: { ...summary, p99: '1' } } })).toEqual(['results.latency.p99 is not a number']);
  });
});
