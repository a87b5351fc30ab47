import { request } from 'node:http';
import type { Agent as HttpAgentType, IncomingMessage } from 'node:http';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { Option } from 'commander';
import type { Command } from 'commander';
import { modulePath, startChild } from '../lib/children.js';
import type { ChildServer } from '../lib/children.js';
import { LatencyRecorder, ratiosOf } from '../lib/histogram.js';
import type { CurvePoint, Summary } from '../lib/histogram.js';
import { IntegrityTracker, integrityOk } from '../lib/integrity.js';
import { decimal, whole } from '../lib/options.js';
import { mapLimit, nowMs, sleep, waitUntil } from '../lib/pacer.js';
import { launchRelay } from '../lib/relay.js';
import type { StoreKind } from '../lib/relay.js';
import type { BenchRun, Scenario, ScenarioContext } from '../lib/result.js';
import { processCpuMs } from '../lib/proc-cpu.js';

/**
 * `http`: the Durable Streams HTTP API of the relay (`/v1/stream/{id}`, relay started with
 * `--streams open`) against the reference server `@durable-streams/server` (in-memory
 * DurableStreamTestServer), both child processes on 127.0.0.1, the same load from this harness:
 *
 * - `append_small` / `append_1mb`: `--writers` (`--large-writers`) concurrent writers, each on
 *   its own connection and stream with `--pipeline` appends in flight (HTTP/1.1 pipelining, so the
 *   harness costs little per request and the servers are what saturates), for `--duration`
 *   seconds, 64-byte `text/plain` bodies (1 MiB `application/octet-stream` ones). Reported:
 *   appends per second (`*_rate`, one value) and each append's time from write to answer
 *   (`*_ms`, queueing behind the pipeline included).
 * Phases alternate between the two servers (each phase on the relay, then on the reference) so
 * that load from elsewhere on the machine weighs on both alike; each phase deletes its streams.
 *
 * - `sse_1` / `sse_1000`: 1 (1,000) SSE readers at the tail of one stream; a writer POSTs
 *   `--messages` small messages at `--rate` per second; latency from the POST being sent to each
 *   reader parsing the event. Every reader must get every message once, in order (integrity).
 *
 * A third server takes part in the append phases only: `node-http-noop`, a bare `node:http`
 * server that reads each body and answers, storing nothing (baselines/http-noop-server). It is the
 * ceiling of any server built on Node's HTTP module on this machine under the same load, so the
 * run shows how far above the reference that ceiling lies.
 *
 * Ratios are relay / reference: below 1 is better for latencies, above 1 for rates.
 */

export interface HttpBenchConfig {
  store: StoreKind;
  duration: number;
  /** Seconds of untimed small appends on each server first. */
  warmup: number;
  /** Appends in flight per writer (HTTP/1.1 pipelining; large appends use at most 2). */
  pipeline: number;
  writers: number;
  largeWriters: number;
  largeBytes: number;
  messages: number;
  rate: number;
  subscribers: number[];
}

interface Target {
  name: string;
  url: string;
  child: ChildServer;
  /** Takes part in the append phases only (the no-op ceiling has no streams to read). */
  appendsOnly?: boolean;
}

interface TargetResults {
  results: Record<string, Summary>;
  curves: Record<string, CurvePoint[]>;
  integrity: IntegrityTracker;
  notes: string[];
}

const SMALL = 64;

const rateSummary = (rate: number): Summary => {
  const r = Math.round(rate);
  return { unit: 'events/s', n: 1, p50: r, p95: r, p99: r, max: r };
};

/** A request on a keep-alive agent; resolves with status, headers and the (drained) body. */
function send(agent: HttpAgentType, url: string, method: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(body);
  });
}

async function create(agent: HttpAgentType, base: string, id: string, contentType: string): Promise<string> {
  const res = await send(agent, `${base}/v1/stream/${id}`, 'PUT', { 'content-type': contentType });
  if (res.status !== 201) throw new Error(`PUT ${id}: HTTP ${res.status}`);
  return String(res.headers['stream-next-offset']);
}

/**
 * One writer on its own connection with up to `depth` appends in flight (HTTP/1.1 pipelining: the
 * requests are pre-built bytes, responses are counted by their status line and the empty line
 * after their headers — appends answer 204 without a body). The client does almost no work per
 * request, so what is measured is the server, not this harness.
 */
function pipelinedWriter(url: string, path: string, body: Buffer, contentType: string, depth: number, end: number, latency: LatencyRecorder, signal: AbortSignal): Promise<{ ok: number; failed: number }> {
  const { hostname, port } = new URL(url);
  const head = Buffer.from(`POST ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`, 'latin1');
  return new Promise((resolve, reject) => {
    const sock = connect({ host: hostname, port: Number(port), noDelay: true });
    const sentAt: number[] = [];
    let ok = 0;
    let failed = 0;
    let pending = '';
    const fill = (): void => {
      while (sentAt.length < depth && nowMs() < end && !signal.aborted) {
        sentAt.push(nowMs());
        sock.write(head);
        sock.write(body);
      }
      if (sentAt.length === 0) sock.end();
    };
    sock.setEncoding('latin1');
    sock.on('connect', fill);
    sock.on('data', (chunk: string) => {
      pending += chunk;
      let at: number;
      while ((at = pending.indexOf('\r\n\r\n')) >= 0) {
        const status = pending.slice(9, 12);
        pending = pending.slice(at + 4);
        const t0 = sentAt.shift();
        if (t0 === undefined) continue;
        if (status === '204' || status === '200') {
          ok++;
          latency.recordMs(nowMs() - t0);
        } else failed++;
      }
      fill();
    });
    sock.once('error', reject);
    sock.once('close', () => resolve({ ok, failed }));
  });
}

/** Writers appending to their own streams for `seconds`, `depth` appends in flight each. */
async function appendPhase(target: Target, agent: HttpAgentType, tag: string, writers: number, body: Buffer, contentType: string, seconds: number, depth: number, signal: AbortSignal): Promise<{ rate: number; latency: LatencyRecorder; failures: number; cpuPerAppendUs: number | undefined }> {
  const latency = new LatencyRecorder();
  const ids = Array.from({ length: writers }, (_, i) => `bench-${tag}-${Date.now()}-${i}`);
  for (const id of ids) await create(agent, target.url, id, contentType);
  const cpuBefore = processCpuMs(target.child.pid);
  const end = nowMs() + seconds * 1000;
  const outcomes = await Promise.all(ids.map((id) => pipelinedWriter(target.url, `/v1/stream/${id}`, body, contentType, depth, end, latency, signal)));
  const count = outcomes.reduce((n, o) => n + o.ok, 0);
  const failures = outcomes.reduce((n, o) => n + o.failed, 0);
  const cpuAfter = processCpuMs(target.child.pid);
  const cpuPerAppendUs = cpuBefore !== undefined && cpuAfter !== undefined && count > 0 ? Math.round(((cpuAfter - cpuBefore) * 1000) / count) : undefined;
  // Free what the phase stored (both servers keep streams in memory), so it weighs on no later phase.
  for (const id of ids) await send(agent, `${target.url}/v1/stream/${id}`, 'DELETE', {});
  return { rate: count / seconds, latency, failures, cpuPerAppendUs };
}

/** One SSE reader: calls `onData` with each data event's payload. */
function subscribe(url: string, onData: (payload: string) => void, onReady: () => void): { close(): void; done: Promise<void> } {
  let req: ReturnType<typeof request> | undefined;
  const done = new Promise<void>((resolve) => {
    req = request(url, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('utf8');
      let buf = '';
      let ready = false;
      res.on('data', (chunk: string) => {
        buf += chunk;
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const lines = block.split('\n');
          const type = lines.find((l) => l.startsWith('event:'))?.slice(6).trim();
          const data = lines
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, ''))
            .join('\n');
          if (type === 'data') onData(data);
          else if (type === 'control' && !ready) {
            ready = true;
            onReady();
          }
        }
      });
      res.once('end', resolve);
      res.once('error', () => resolve());
    });
    req.once('error', () => resolve());
    req.end();
  });
  return { close: () => req?.destroy(), done };
}

/** Readers at the tail of one stream, a paced writer, latency from POST to each reader. */
async function ssePhase(target: Target, agent: HttpAgentType, readers: number, cfg: HttpBenchConfig, integrity: IntegrityTracker, base: number, signal: AbortSignal, progress: (s: string) => void): Promise<{ latency: LatencyRecorder; complete: boolean }> {
  const latency = new LatencyRecorder();
  const id = `bench-sse${readers}-${Date.now()}`;
  const tail = await create(agent, target.url, id, 'text/plain');
  let ready = 0;
  const subs = await mapLimit(
    Array.from({ length: readers }, (_, i) => i),
    64,
    async (i) =>
      subscribe(
        `${target.url}/v1/stream/${id}?offset=${tail}&live=sse`,
        (payload) => {
          const [seq, sent] = payload.split(' ').map(Number);
          latency.recordMs(nowMs() - sent!);
          integrity.delivered(base + i, seq!);
        },
        () => ready++,
      ),
  );
  try {
    if (!(await waitUntil(() => ready === readers, 30_000, signal))) throw new Error(`${target.name}: only ${ready} of ${readers} SSE readers connected`);
    const gap = 1000 / cfg.rate;
    const start = nowMs();
    for (let k = 0; k < cfg.messages && !signal.aborted; k++) {
      const due = start + k * gap;
      if (due > nowMs()) await sleep(due - nowMs(), signal);
      for (let i = 0; i < readers; i++) integrity.next(base + i);
      const res = await send(agent, `${target.url}/v1/stream/${id}`, 'POST', { 'content-type': 'text/plain' }, Buffer.from(`${k} ${nowMs()}`));
      if (res.status !== 204) throw new Error(`${target.name}: POST answered ${res.status}`);
    }
    const complete = await waitUntil(() => integrity.complete, 30_000, signal);
    progress(`${target.name}: sse ${readers} readers: ${latency.count} deliveries, p50 ${latency.percentileMs(50)} ms, p99 ${latency.percentileMs(99)} ms`);
    return { latency, complete };
  } finally {
    for (const s of subs) s.close();
    await send(agent, `${target.url}/v1/stream/${id}`, 'DELETE', {}).catch(() => undefined);
  }
}

/**
 * Every phase runs on both targets back to back (relay, then reference), phase by phase, so a
 * change of load on the shared machine during the run weighs on both alike.
 */
async function measureBoth(targets: readonly Target[], cfg: HttpBenchConfig, ctx: ScenarioContext): Promise<TargetResults[]> {
  const outs: TargetResults[] = targets.map(() => ({ results: {}, curves: {}, integrity: new IntegrityTracker(), notes: [] }));
  // A fresh keep-alive pool per phase and server: a socket left idle through the other server's
  // phase may be closed by its server's keep-alive timeout just as it is reused.
  const each = async (fn: (t: Target, agent: HttpAgentType, out: TargetResults) => Promise<void>, appendPhase = true): Promise<void> => {
    for (let i = 0; i < targets.length; i++) {
      if (!appendPhase && targets[i]!.appendsOnly) continue;
      const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
      try {
        await fn(targets[i]!, agent, outs[i]!);
      } finally {
        agent.destroy();
      }
    }
  };
  {
    // Warm both up (JIT, connection pools, first allocations) with the same untimed load.
    await each(async (t, agent) => {
      if (cfg.warmup > 0) await appendPhase(t, agent, 'warmup', cfg.writers, Buffer.alloc(SMALL, 'x'), 'text/plain', cfg.warmup, cfg.pipeline, ctx.signal);
    });
    await each(async (t, agent, out) => {
      const small = await appendPhase(t, agent, 'small', cfg.writers, Buffer.alloc(SMALL, 'x'), 'text/plain', cfg.duration, cfg.pipeline, ctx.signal);
      ctx.progress(`${t.name}: small appends ${Math.round(small.rate)}/s (p99 ${small.latency.percentileMs(99)} ms)`);
      out.results['append_small_rate'] = rateSummary(small.rate);
      out.results['append_small_ms'] = small.latency.summary();
      out.curves['append_small_ms'] = small.latency.curve();
      if (small.failures > 0) out.notes.push(`${t.name}: ${small.failures} small appends failed`);
      if (small.cpuPerAppendUs !== undefined) out.notes.push(`${t.name}: server CPU per small append ${small.cpuPerAppendUs} µs`);
    });
    await each(async (t, agent, out) => {
      const large = await appendPhase(t, agent, 'large', cfg.largeWriters, Buffer.alloc(cfg.largeBytes, 7), 'application/octet-stream', cfg.duration, Math.min(cfg.pipeline, 2), ctx.signal);
      ctx.progress(`${t.name}: large appends ${Math.round(large.rate)}/s (p99 ${large.latency.percentileMs(99)} ms)`);
      out.results['append_1mb_rate'] = rateSummary(large.rate);
      out.results['append_1mb_ms'] = large.latency.summary();
      if (large.failures > 0) out.notes.push(`${t.name}: ${large.failures} large appends failed`);
      if (large.cpuPerAppendUs !== undefined) out.notes.push(`${t.name}: server CPU per ${cfg.largeBytes}-byte append ${large.cpuPerAppendUs} µs`);
    });
    let base = 0;
    for (const readers of cfg.subscribers) {
      await each(async (t, agent, out) => {
        const sse = await ssePhase(t, agent, readers, cfg, out.integrity, base, ctx.signal, ctx.progress);
        out.results[`sse_${readers}_ms`] = sse.latency.summary();
        out.curves[`sse_${readers}_ms`] = sse.latency.curve();
        if (!sse.complete) out.notes.push(`${t.name}: not every SSE reader got every message within 30 s`);
      }, false);
      base += readers;
    }
    return outs;
  }
}

export async function runHttpBench(cfg: HttpBenchConfig, ctx: ScenarioContext): Promise<BenchRun> {
  ctx.progress(`http: starting the relay (store ${cfg.store}, --streams open) and the reference server (@durable-streams/server, in memory) as child processes`);
  const relay = await launchRelay({ store: cfg.store, extraArgs: ['--streams', 'open'] });
  let reference: ChildServer | undefined;
  let noop: ChildServer | undefined;
  try {
    reference = await startChild({ name: 'ds-reference', script: modulePath('native-free-bench/baselines/ds-reference-server'), args: [] });
    noop = await startChild({ name: 'node-http-noop', script: modulePath('native-free-bench/baselines/http-noop-server'), args: [] });
    const loadBefore = loadavg()[0]!.toFixed(2);
    const [ours, theirs, ceiling] = (await measureBoth(
      [
        { name: 'relay', url: relay.url, child: relay.child },
        { name: 'ds-reference', url: reference.url, child: reference },
        { name: 'node-http-noop', url: noop.url, child: noop, appendsOnly: true },
      ],
      cfg,
      ctx,
    )) as [TargetResults, TargetResults, TargetResults];
    const loads = [`run: ${loadBefore}`, `end: ${loadavg()[0]!.toFixed(2)}`];
    const ratios: Record<string, number | null> = {};
    for (const metric of Object.keys(ours.results)) {
      Object.assign(ratios, ratiosOf(metric, ours.results[metric], theirs.results[metric], metric.endsWith('_rate') ? ['p50'] : ['p50', 'p99']));
    }
    const integrity = ours.integrity.report();
    const refIntegrity = theirs.integrity.report();
    const ok = integrityOk(integrity, ours.integrity.unexpected) && !ours.notes.some((n) => /failed|not every/.test(n));
    const notes = [...ours.notes, ...theirs.notes, ...ceiling.notes];
    const small = ratios['append_small_rate_p50'];
    const large = ratios['append_1mb_rate_p50'];
    notes.push(`goal ≥ 2× the reference's append throughput: small ${small}×, 1 MiB ${large}×`);
    const ceilingRatio = (metric: string): number | null => {
      const a = ceiling.results[metric]?.p50;
      const b = theirs.results[metric]?.p50;
      return a !== undefined && b ? Math.round((a / b) * 100) / 100 : null;
    };
    notes.push(
      `ceiling: a no-op node:http server under the same load answers ${ceiling.results['append_small_rate']?.p50 ?? '?'} small appends/s (${ceilingRatio('append_small_rate')}× the reference) and ${ceiling.results['append_1mb_rate']?.p50 ?? '?'} 1 MiB appends/s (${ceilingRatio('append_1mb_rate')}×)`,
    );
    for (const n of cfg.subscribers) notes.push(`goal ≤ ½ the reference's p99, ${n} SSE reader(s): ${ratios[`sse_${n}_ms_p99`]}×`);
    notes.push(`reference integrity: sent ${refIntegrity.sent}, delivered ${refIntegrity.delivered}, lost ${refIntegrity.lost}, duplicated ${refIntegrity.duplicated}, reordered ${refIntegrity.reordered}`);
    notes.push(`1-minute load average (${cpus().length} CPUs): ${loads.join(', ')}`);
    return {
      json: {
        scenario: 'http',
        config: {
          store: cfg.store,
          build: relay.build,
          duration_s: cfg.duration,
          warmup_s: cfg.warmup,
          writers: cfg.writers,
          pipeline: cfg.pipeline,
          large_writers: cfg.largeWriters,
          large_bytes: cfg.largeBytes,
          small_bytes: SMALL,
          messages: cfg.messages,
          rate: cfg.rate,
          subscribers: cfg.subscribers.join(','),
          baseline: '@durable-streams/server 0.3.7 DurableStreamTestServer (memory, compression off)',
        },
        results: ours.results,
        baselines: { 'ds-reference': theirs.results, 'node-http-noop': ceiling.results },
        ratios,
        integrity,
      },
      curves: { relay: ours.curves, 'ds-reference': theirs.curves, 'node-http-noop': ceiling.curves },
      series: ['relay', 'ds-reference', 'node-http-noop'],
      ok,
      notes,
    };
  } finally {
    await noop?.stop();
    await reference?.stop();
    await relay.stop();
  }
}

function subscriberList(value: string): number[] {
  const list = value.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1 || n > 10_000)) throw new Error('--subscribers is a comma-separated list of 1–10000');
  return list;
}

export const httpScenario: Scenario = {
  name: 'http',
  summary: 'Durable Streams HTTP: append throughput (small, 1 MiB) and append → SSE latency (1 and 1,000 readers), against @durable-streams/server',
  configure(cmd: Command) {
    cmd
      .addOption(new Option('--store <kind>', 'relay store').choices(['sqlite', 'memory']).default('memory'))
      .option('--duration <s>', 'seconds of each append phase', decimal(0.5, 600), 3)
      .option('--warmup <s>', 'seconds of untimed small appends on each server first', decimal(0, 60), 1)
      .option('--writers <n>', 'concurrent writers of small appends (one stream and connection each)', whole(1, 1024), 8)
      .option('--pipeline <n>', 'appends in flight per writer (HTTP/1.1 pipelining; 1 MiB appends use at most 2)', whole(1, 256), 16)
      .option('--large-writers <n>', 'concurrent writers of large appends', whole(1, 64), 2)
      .option('--large-bytes <n>', 'size of a large append', whole(1024, 64 * 1024 * 1024), 1024 * 1024)
      .option('--messages <n>', 'messages written in each SSE phase', whole(1, 100_000), 200)
      .option('--rate <n>', 'messages per second in the SSE phases', decimal(0.1, 10_000), 40)
      .option('--subscribers <list>', 'SSE readers per phase, comma-separated', '1,1000');
  },
  async run(o, ctx) {
    return runHttpBench(
      {
        store: o['store'] as StoreKind,
        duration: Number(o['duration']),
        warmup: Number(o['warmup']),
        pipeline: Number(o['pipeline']),
        writers: Number(o['writers']),
        largeWriters: Number(o['largeWriters']),
        largeBytes: Number(o['largeBytes']),
        messages: Number(o['messages']),
        rate: Number(o['rate']),
        subscribers: subscriberList(String(o['subscribers'])),
      },
      ctx,
    );
  },
};
