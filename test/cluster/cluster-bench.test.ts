import { describe, expect, it } from 'vitest';
import { checkBenchJson } from '../../native-free-bench/lib/result.js';
import type { BenchJson } from '../../native-free-bench/lib/result.js';
import { runBench } from '../bench/run-bench.js';

describe('lifeline bench cluster', () => {
  it('runs two relay nodes on a 3-node NATS cluster: documented JSON shape, every token once, failover measured', { timeout: 240_000 }, async () => {
    const args = ['cluster', '--sessions', '2', '--rate', '10', '--duration', '2', '--append-seconds', '1', '--tracks', '2', '--audio-seconds', '1', '--failover-sessions', '2', '--json'];
    const { code, stdout, stderr } = await runBench(args, 230_000);
    expect(code, stderr).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    const json = JSON.parse(stdout) as BenchJson;
    expect(checkBenchJson(json)).toEqual([]);
    expect(json.scenario).toBe('cluster');
    expect(json.config).toMatchObject({ sessions: 2, natsServers: 3, replicas: 3, relayNodes: 2, audioLingerMs: 40 });
    expect(json.results['token']).toMatchObject({ unit: 'ms', n: 40 });
    expect(json.baselines['same-node']?.['token']).toMatchObject({ unit: 'ms', n: 40 });
    // Both clients of each of the 2 failover sessions resumed on the surviving node.
    expect(json.results['failover_resume']).toMatchObject({ unit: 'ms', n: 4 });
    // The audio linger batches frames: fewer publishes per track than without it.
    const noLinger = json.results['audio_publishes_per_track_s_linger_0']!.p50;
    expect(noLinger).toBeGreaterThan(0);
    expect(json.results['audio_publishes_per_track_s_linger_40']!.p50).toBeLessThan(noLinger);
    expect(json.integrity.lost + json.integrity.duplicated + json.integrity.reordered).toBe(0);
    expect(json.integrity.delivered).toBe(json.integrity.sent);
  });
});
