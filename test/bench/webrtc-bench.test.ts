import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkBenchJson } from '../../native-free-bench/lib/result.js';
import type { BenchJson } from '../../native-free-bench/lib/result.js';
import { runBench } from './run-bench.js';

/**
 * The WebRTC modes of the bench in a tiny configuration (seconds): the JSON shape, the baselines
 * present, zero integrity errors. No latency or throughput assertions: those are measurements
 * for docs/BENCHMARKS.md, not properties of the code.
 */

async function benchJson(args: string[]): Promise<{ json: BenchJson; stderr: string }> {
  const { code, stdout, stderr } = await runBench(args, 120_000);
  expect(code, stderr).toBe(0);
  expect(stdout.trim().split('\n')).toHaveLength(1);
  const json = JSON.parse(stdout) as BenchJson;
  expect(checkBenchJson(json)).toEqual([]);
  const i = json.integrity;
  expect(i.sent).toBeGreaterThan(0);
  expect(i).toEqual({ sent: i.sent, delivered: i.sent, lost: 0, duplicated: 0, reordered: 0 });
  return { json, stderr };
}

describe('lifeline bench over WebRTC', () => {
  const report = mkdtempSync(join(tmpdir(), 'lifeline-bench-report-'));
  afterAll(() => rmSync(report, { recursive: true, force: true }));

  it('tokens --transport webrtc: the user on WebRTC, against bare werift baselines', { timeout: 150_000 }, async () => {
    const { json, stderr } = await benchJson(['tokens', '--transport', 'webrtc', '--sessions', '2', '--rate', '50', '--duration', '1', '--warmup', '0.5', '--store', 'memory', '--json']);
    expect(json.scenario).toBe('tokens');
    expect(json.config).toMatchObject({ sessions: 2, rate: 50, transport: 'webrtc', agentTransport: 'ws', store: 'memory' });
    expect(json.results['latency']).toMatchObject({ unit: 'ms' });
    expect(json.results['latency']!.n).toBeGreaterThan(0);
    expect(Object.keys(json.baselines)).toEqual(['werift-echo', 'ws-werift-echo']);
    for (const name of ['werift-echo', 'ws-werift-echo']) expect(json.baselines[name]?.['latency']?.n, name).toBeGreaterThan(0);
    for (const k of ['latency_p50', 'latency_p95', 'latency_p99']) expect(typeof json.ratios[k]).toBe('number');
    expect(stderr).toMatch(/werift-echo: done .* lost 0/);
    expect(stderr).toMatch(/ws-werift-echo: done .* lost 0/);
  });

  it('throughput --transport webrtc: events/s through one peer connection, with its report', { timeout: 150_000 }, async () => {
    const args = ['throughput', '--transport', 'webrtc', '--duration', '1', '--warmup', '0.5', '--burst', '32', '--max-lag', '512', '--store', 'memory', '--json', '--report', report];
    const { json, stderr } = await benchJson(args);
    expect(json.scenario).toBe('throughput');
    expect(json.config).toMatchObject({ transport: 'webrtc', agentTransport: 'ws', burst: 32, maxLag: 512, store: 'memory' });
    const t = json.results['throughput']!;
    expect(t).toMatchObject({ unit: 'events/s', n: 1 });
    expect(t.p50).toBeGreaterThan(0);
    expect([t.p95, t.p99, t.max]).toEqual([t.p50, t.p50, t.p50]);
    expect(json.results['latency']).toMatchObject({ unit: 'ms' });
    expect(Object.keys(json.baselines)).toEqual(['werift-batched', 'werift-single']);
    for (const name of ['werift-batched', 'werift-single']) {
      expect(json.baselines[name]?.['throughput']).toMatchObject({ unit: 'events/s', n: 1 });
      expect(json.baselines[name]!['throughput']!.p50, name).toBeGreaterThan(0);
    }
    expect(typeof json.ratios['throughput_p50']).toBe('number');
    expect(stderr).toMatch(/werift-single: done .* lost 0/);

    const md = readFileSync(join(report, 'throughput.md'), 'utf8');
    expect(md).toContain('lifeline bench throughput --transport webrtc');
    expect(md).toMatch(/\| throughput \| relay \| events\/s \| 1 \|/);
    const svg = readFileSync(join(report, 'throughput.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('throughput: percentiles (events/s)');
  });

  it('throughput --transport ws: the same flood over WebSocket, against bare ws forwarders', { timeout: 150_000 }, async () => {
    const { json } = await benchJson(['throughput', '--transport', 'ws', '--duration', '1', '--warmup', '0.5', '--burst', '32', '--max-lag', '512', '--store', 'memory', '--json']);
    expect(json.config).toMatchObject({ transport: 'ws' });
    expect(json.results['throughput']!.p50).toBeGreaterThan(0);
    expect(Object.keys(json.baselines)).toEqual(['ws-echo-batched', 'ws-echo-single']);
  });
});
