import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBenchJson } from '../../native-free-bench/lib/result.js';
import type { BenchJson } from '../../native-free-bench/lib/result.js';
import { runBench } from './run-bench.js';

describe('lifeline bench failover', () => {
  const report = mkdtempSync(join(tmpdir(), 'lifeline-bench-report-'));
  afterAll(() => rmSync(report, { recursive: true, force: true }));

  it('kills the agent worker mid-answer: documented JSON shape, nothing lost or duplicated on the Lifeline path', { timeout: 150_000 }, async () => {
    const args = ['failover', '--trials', '2', '--store', 'memory', '--json', '--report', report];
    const { code, stdout, stderr } = await runBench(args, 140_000);
    expect(code, stderr).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    const json = JSON.parse(stdout) as BenchJson;
    expect(checkBenchJson(json)).toEqual([]);

    expect(json.scenario).toBe('failover');
    expect(json.config).toMatchObject({ trials: 2, killAfter: 10, tokens: 40, store: 'memory' });
    for (const m of ['takeover', 'first_token', 'first_new_token', 'answer_complete']) {
      expect(json.results[m], m).toMatchObject({ unit: 'ms', n: 2 });
      expect(json.baselines['restart-from-scratch']?.[m]?.n, m).toBe(2);
    }
    // The replacement can only write once the dead holder's lease (500 ms) has expired.
    expect(json.results['takeover']!.p50).toBeGreaterThanOrEqual(450);
    for (const k of ['takeover_p50', 'first_new_token_p95']) expect(typeof json.ratios[k]).toBe('number');

    // Lifeline resumes: each of the 2 × 40 tokens once, in order. The naive restart repeats tokens.
    expect(json.integrity).toEqual({ sent: 80, delivered: 80, lost: 0, duplicated: 0, reordered: 0 });
    const dup = json.baselines['restart-from-scratch']?.['duplicated'];
    expect(dup).toMatchObject({ unit: 'events', n: 2 });
    expect(dup!.p50).toBeGreaterThan(0);

    expect(stderr).toMatch(/failover: lifeline 2\/2 trials/);
    const md = readFileSync(join(report, 'failover.md'), 'utf8');
    expect(md).toContain('lifeline bench failover --trials 2');
    expect(md).toMatch(/\| takeover \| lifeline \|/);
  });
});
