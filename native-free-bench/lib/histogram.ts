import { build } from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/**
 * One metric as every scenario reports it (the `results.<metric>` shape of the bench JSON).
 * Latencies are in `ms`; a rate (the throughput scenario) is in `events/s`; a count per trial
 * (the failover baseline's duplicated tokens) is in `events`.
 */
export interface Summary {
  unit: 'ms' | 'events/s' | 'events';
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** A point of the percentile distribution: `ms` at percentile `p` (0–100). */
export interface CurvePoint {
  p: number;
  ms: number;
}

/** Percentiles sampled for charts: spread evenly in "nines" so the tail is visible. */
export const CURVE_PERCENTILES = [0, 10, 25, 50, 75, 90, 95, 97, 99, 99.5, 99.9, 99.99, 100] as const;

/** Largest latency tracked (one hour); anything above is clamped, never dropped. */
const HIGHEST_US = 3_600_000_000;

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/**
 * Latencies in an HDR histogram at microsecond resolution (3 significant digits), reported in ms.
 * Pure JavaScript (`useWebAssembly: false`): the harness loads no native or WASM module.
 */
export class LatencyRecorder {
  readonly #h: Histogram;

  constructor() {
    this.#h = build({
      useWebAssembly: false,
      bitBucketSize: 32,
      lowestDiscernibleValue: 1,
      highestTrackableValue: HIGHEST_US,
      numberOfSignificantValueDigits: 3,
      autoResize: false,
    });
  }

  /** Records one latency given in milliseconds (negative clock noise counts as 0). */
  recordMs(ms: number): void {
    if (!Number.isFinite(ms)) return;
    const us = Math.min(HIGHEST_US, Math.max(0, Math.round(ms * 1000)));
    this.#h.recordValue(us);
  }

  get count(): number {
    return this.#h.totalCount;
  }

  /** Value at a percentile, in ms (0 when nothing was recorded). */
  percentileMs(p: number): number {
    if (this.#h.totalCount === 0) return 0;
    return round3(this.#h.getValueAtPercentile(p) / 1000);
  }

  summary(): Summary {
    const n = this.#h.totalCount;
    return {
      unit: 'ms',
      n,
      p50: this.percentileMs(50),
      p95: this.percentileMs(95),
      p99: this.percentileMs(99),
      max: n === 0 ? 0 : round3(this.#h.maxValue / 1000),
    };
  }

  curve(): CurvePoint[] {
    if (this.#h.totalCount === 0) return [];
    return CURVE_PERCENTILES.map((p) => ({ p, ms: p === 100 ? round3(this.#h.maxValue / 1000) : this.percentileMs(p) }));
  }

  destroy(): void {
    this.#h.destroy();
  }
}

/** relay / baseline for each listed field, rounded to 0.01; null when the baseline is 0 or absent. */
export function ratiosOf(
  metric: string,
  subject: Summary | undefined,
  baseline: Summary | undefined,
  fields: readonly ('p50' | 'p95' | 'p99' | 'max')[] = ['p50', 'p95', 'p99'],
): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const f of fields) {
    const a = subject?.[f];
    const b = baseline?.[f];
    out[`${metric}_${f}`] = a !== undefined && b !== undefined && b > 0 ? Math.round((a / b) * 100) / 100 : null;
  }
  return out;
}
