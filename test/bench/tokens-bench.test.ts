import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBenchJson } from '../../native-free-bench/lib/result.js';
import type { BenchJson } from '../../native-free-bench/lib/result.js';
import { runBench } from './run-bench.js';

describe('lifeline bench tokens', () => {
  const report = mkdtempSync(join(tmpdir(), 'lifeline-bench-report-'));
  afterAll(() => rmSync(report, { recursive: true, force: true }));

  it('prints exactly one JSON object of the documented shape, with zero integrity errors', { timeout: 120_000 }, async () => {
    const args = ['tokens', '--sessions', '2', '--rate', '50', '--duration', '1', '--warmup', '0.5', '--store', 'memory', '--json', '--report', report];
    const { code, stdout, stderr } = await runBench(args);
    expect(code, stderr).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    const json = JSON.parse(stdout) as BenchJson;
    expect(checkBenchJson(json)).toEqual([]);

    expect(json.scenario).toBe('tokens');
    expect(json.config).toMatchObject({ sessions: 2, rate: 50, duration: 1, warmup: 0.5, store: 'memory' });
    expect(Object.keys(json.results)).toContain('latency');
    expect(json.results['latency']).toMatchObject({ unit: 'ms' });
    expect(json.results['latency']!.n).toBeGreaterThan(0);
    expect(json.baselines['ws-echo']?.['latency']?.n).toBeGreaterThan(0);
    for (const k of ['latency_p50', 'latency_p99']) expect(typeof json.ratios[k]).toBe('number');

    const i = json.integrity;
    expect(i.sent).toBeGreaterThan(0);
    expect(i).toEqual({ sent: i.sent, delivered: i.sent, lost: 0, duplicated: 0, reordered: 0 });

    // Progress went to stderr, the report to the directory.
    expect(stderr).toMatch(/relay: done/);
    const md = readFileSync(join(report, 'tokens.md'), 'utf8');
    expect(md).toContain('lifeline bench tokens --sessions 2');
    expect(md).toMatch(/\| latency \| relay \|/);
    const svg = readFileSync(join(report, 'tokens.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });

  it('lists its scenarios with --help and rejects bad options with exit code 2', { timeout: 60_000 }, async () => {
    const help = await runBench(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/tokens/);
    const bad = await runBench(['tokens', '--sessions', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/sessions/);
  });
});
