/**
 * `lifeline bench http` end to end at a tiny size: the documented JSON shape, both servers
 * measured (and the no-op node:http ceiling in the append phases), every SSE reader got every message once and in order. No timing is asserted.
 */
import { describe, expect, it } from 'vitest';
import { checkBenchJson } from '../../native-free-bench/lib/result.js';
import type { BenchJson } from '../../native-free-bench/lib/result.js';
import { runBench } from '../bench/run-bench.js';

describe('lifeline bench http', () => {
  it('prints one JSON object with relay and reference figures and zero integrity errors', { timeout: 180_000 }, async () => {
    const args = ['http', '--duration', '0.5', '--warmup', '0.2', '--writers', '2', '--large-writers', '1', '--large-bytes', '65536', '--messages', '5', '--rate', '50', '--subscribers', '1,20', '--json'];
    const { code, stdout, stderr } = await runBench(args, 150_000);
    expect(code, stderr).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    const json = JSON.parse(stdout) as BenchJson;
    expect(checkBenchJson(json)).toEqual([]);
    expect(json.scenario).toBe('http');
    const metrics = ['append_small_rate', 'append_small_ms', 'append_1mb_rate', 'append_1mb_ms', 'sse_1_ms', 'sse_20_ms'];
    for (const m of metrics) {
      expect(json.results[m]?.n, m).toBeGreaterThan(0);
      expect(json.baselines['ds-reference']?.[m]?.n, m).toBeGreaterThan(0);
    }
    // The no-op node:http ceiling takes part in the append phases only.
    for (const m of ['append_small_rate', 'append_1mb_rate']) expect(json.baselines['node-http-noop']?.[m]?.n, m).toBe(1);
    expect(json.baselines['node-http-noop']?.['sse_1_ms']).toBeUndefined();
    expect(json.results['sse_20_ms']!.n).toBe(100);
    for (const k of ['append_small_rate_p50', 'sse_1_ms_p99', 'sse_20_ms_p99']) expect(typeof json.ratios[k]).toBe('number');
    expect(json.integrity).toEqual({ sent: 105, delivered: 105, lost: 0, duplicated: 0, reordered: 0 });
  });
});
