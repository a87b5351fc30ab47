import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import type { Command } from 'commander';
import { ANY_SESSION, mintToken } from '../../src/protocol/index.js';
import { ExponentialBackoff, connect } from '../../src/sdk/index.js';
import type { LifelineSession } from '../../src/sdk/index.js';
import { NatsStore } from '../../src/store/nats/index.js';
import { COMPILED, modulePath, startChild } from '../lib/children.js';
import type { ChildServer } from '../lib/children.js';
import { LatencyRecorder, ratiosOf } from '../lib/histogram.js';
import type { Summary } from '../lib/histogram.js';
import { IntegrityTracker, integrityOk } from '../lib/integrity.js';
import { startNatsCluster } from '../lib/nats-cluster.js';
import type { NatsCluster } from '../lib/nats-cluster.js';
import { decimal, whole } from '../lib/options.js';
import { nowMs, pace, sleep, waitUntil } from '../lib/pacer.js';
import { Problems } from '../lib/relay-clients.js';
import type { BenchRun, Scenario, ScenarioContext } from '../lib/result.js';

/**
 * `cluster`: two `lifeline serve` nodes on a real three-node NATS JetStream cluster (R3 stream),
 * all on 127.0.0.1. In one run:
 *   1. token latency agent → user with both on the same node (the baseline) and on different
 *      nodes (the subject), sessions of both kinds running at the same time;
 *   2. appends/s for N sessions whose agents are spread over both nodes, as fast as acks allow;
 *   3. audio batching: 50 frames/s per track appended to the NATS store (in this process) with
 *      no linger and with the configured linger: JetStream publishes per second per track and the
 *      frame commit latency each costs;
 *   4. failover: clients of node A (given both nodes' URLs) while tokens flow; A is killed with
 *      SIGKILL; the time until each client has resumed on B, and every token exactly once.
 */

interface ClusterConfig {
  sessions: number;
  rate: number;
  duration: number;
  appendSeconds: number;
  tracks: number;
  audioSeconds: number;
  audioLingerMs: number;
  failoverSessions: number;
}

interface RelayNode {
  name: string;
  child: ChildServer;
  url: string;
}

const rateSummary = (samples: number[]): Summary => {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
  const r = (x: number): number => Math.round(x * 10) / 10;
  return { unit: 'events/s', n: sorted.length, p50: r(at(50)), p95: r(at(95)), p99: r(at(99)), max: r(sorted[sorted.length - 1] ?? 0) };
};

async function launchNode(name: string, store: string, secret: string): Promise<RelayNode> {
  const child = await startChild({
    name,
    script: modulePath('src/cli/main'),
    args: ['serve', '--host', '127.0.0.1', '--port', '0', '--store', store, '--secret', secret, '--log-level', 'error', '--no-presence-events'],
  });
  return { name, child, url: child.url };
}

async function runCluster(cfg: ClusterConfig, ctx: ScenarioContext): Promise<BenchRun> {
  const notes: string[] = [];
  const problems = new Problems();
  const loadAtStart = Math.round(loadavg()[0]! * 100) / 100;
  ctx.progress('cluster: starting a 3-node nats-server cluster (JetStream)');
  const nats: NatsCluster = await startNatsCluster();
  const prefix = `bench${process.pid}`;
  const spec = `${nats.storeSpec}?prefix=${prefix}&replicas=3&audioLingerMs=${cfg.audioLingerMs}`;
  const secret = randomBytes(24).toString('hex');
  const nodes: RelayNode[] = [];
  const clients: LifelineSession[] = [];
  try {
    ctx.progress('cluster: starting relay nodes A and B');
    nodes.push(...(await Promise.all([launchNode('relay-a', spec, secret), launchNode('relay-b', spec, secret)])));
    const [a, b] = nodes as [RelayNode, RelayNode];
    const admin = await mintToken(secret, { session: ANY_SESSION, participant: 'bench-admin', role: 'admin', ttlSeconds: 3600 });
    const createSession = async (node: RelayNode): Promise<string> => {
      const res = await fetch(`${node.url}/v1/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ metadata: { bench: 'cluster' } }),
        signal: AbortSignal.timeout(30_000),
      });
      if (res.status !== 201) throw new Error(`create session: HTTP ${res.status}`);
      return ((await res.json()) as { id: string }).id;
    };
    const client = async (urls: string[], session: string, who: string, role: 'user' | 'agent', resume?: string): Promise<LifelineSession> => {
      const s = await connect({
        url: urls[0]!,
        urls,
        token: await mintToken(secret, { session, participant: who, role, ttlSeconds: 3600 }),
        reconnect: new ExponentialBackoff({ initialMs: 20, maxMs: 200, giveUpAfterMs: 20_000 }),
        ...(resume ? { resume } : {}),
      });
      clients.push(s);
      return s;
    };

    // ---- 1. token latency, same node vs across nodes ---------------------------------------
    ctx.progress(`cluster: token latency, ${cfg.sessions} same-node + ${cfg.sessions} cross-node sessions, ${cfg.rate} tokens/s each, ${cfg.duration} s`);
    const integrity = new IntegrityTracker();
    const latency = { same: new LatencyRecorder(), cross: new LatencyRecorder() };
    const ack = { same: new LatencyRecorder(), cross: new LatencyRecorder() };
    interface Pair {
      placement: 'same' | 'cross';
      stream: number;
      agent: LifelineSession;
      user: LifelineSession;
    }
    const pairs: Pair[] = [];
    for (const placement of ['same', 'cross'] as const) {
      for (let i = 0; i < cfg.sessions; i++) {
        const session = await createSession(a);
        const stream = pairs.length;
        const user = await client([a.url], session, `user${stream}`, 'user', 'now');
        const agent = await client([placement === 'same' ? a.url : b.url], session, `agent${stream}`, 'agent', 'now');
        user.on('event', (e) => {
          const d = e.data as { k?: number; t?: number };
          if (e.kind !== 'text.delta' || typeof d.k !== 'number' || typeof d.t !== 'number') return;
          if (integrity.delivered(stream, d.k) === 'ok') latency[placement].recordMs(nowMs() - d.t);
        });
        for (const s of [user, agent]) s.on('state', (c) => c.state === 'closed' && problems.add(`${placement} client closed`));
        pairs.push({ placement, stream, agent, user });
      }
    }
    // Warm-up (one second, not measured): links, live sessions and watches on both nodes.
    await pace({
      streams: pairs.length,
      ratePerSec: cfg.rate,
      durationMs: 1000,
      signal: ctx.signal,
      send: (i) => {
        pairs[i]!.agent.sendText(' warm').catch(() => problems.add('warm-up append failed'));
      },
    });
    await sleep(300, ctx.signal).catch(() => {});
    await pace({
      streams: pairs.length,
      ratePerSec: cfg.rate,
      durationMs: cfg.duration * 1000,
      signal: ctx.signal,
      send: (i) => {
        const p = pairs[i]!;
        const k = integrity.next(p.stream);
        const t = nowMs();
        p.agent
          .append('text.delta', { text: ' tok', k, t })
          .then(() => ack[p.placement].recordMs(nowMs() - t))
          .catch(() => problems.add('token append failed'));
      },
    });
    await waitUntil(() => integrity.complete, 10_000, ctx.signal);

    // ---- 2. appends/s across nodes ---------------------------------------------------------
    ctx.progress(`cluster: appends/s, ${cfg.sessions * 2} sessions with agents on both nodes, ${cfg.appendSeconds} s`);
    const writers: LifelineSession[] = [];
    for (let i = 0; i < cfg.sessions * 2; i++) {
      const node = i % 2 === 0 ? a : b;
      const session = await createSession(node);
      writers.push(await client([node.url], session, `writer${i}`, 'agent', 'now'));
    }
    let acked = 0;
    let stopWriting = false;
    const perSecond: number[] = [];
    const writing = writers.map(async (w) => {
      const inFlight = new Set<Promise<unknown>>();
      while (!stopWriting && !ctx.signal.aborted) {
        const p = w.sendText(' x').then(
          () => {
            acked++;
          },
          () => problems.add('throughput append failed'),
        );
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= 128) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    });
    for (let s = 0; s < cfg.appendSeconds && !ctx.signal.aborted; s++) {
      const before = acked;
      await sleep(1000, ctx.signal).catch(() => {});
      perSecond.push(acked - before);
    }
    stopWriting = true;
    await Promise.all(writing);
    for (const w of writers) w.close();

    // ---- 3. audio batching (the store in this process) -------------------------------------
    const audio: Record<string, { publishesPerTrackS: number; commit: Summary; framesPerPublish: number }> = {};
    for (const linger of [0, cfg.audioLingerMs]) {
      if (audio[`linger${linger}`]) continue;
      ctx.progress(`cluster: audio, ${cfg.tracks} tracks × 50 frames/s for ${cfg.audioSeconds} s, linger ${linger} ms`);
      const store = await NatsStore.open({ servers: nats.servers, prefix: `${prefix}a${linger}`, replicas: 3, audioLingerMs: linger });
      const commit = new LatencyRecorder();
      try {
        const ids: string[] = [];
        for (let t = 0; t < cfg.tracks; t++) {
          const id = `track${t}`;
          await store.createSession({ id, createdAt: Date.now(), expiresAt: null, metadata: {} });
          ids.push(id);
        }
        const frame = new Uint8Array(160);
        const before = store.publishes;
        const pending: Promise<unknown>[] = [];
        const sent = await pace({
          streams: cfg.tracks,
          ratePerSec: 50,
          durationMs: cfg.audioSeconds * 1000,
          signal: ctx.signal,
          send: (i, k) => {
            const t = nowMs();
            pending.push(
              store
                .append([{ sessionId: ids[i]!, producer: { id: 'mic', epoch: 0, seq: k }, event: { ts: Date.now(), from: { participant: 'p', device: 'd', role: 'user' }, kind: 'audio.frame', track: 'mic', data: { codec: 'opus' }, bin: frame } }])
                .then(() => commit.recordMs(nowMs() - t)),
            );
          },
        });
        await Promise.all(pending);
        const publishes = store.publishes - before;
        audio[`linger${linger}`] = {
          publishesPerTrackS: Math.round((publishes / cfg.tracks / cfg.audioSeconds) * 10) / 10,
          commit: commit.summary(),
          framesPerPublish: Math.round((sent / Math.max(1, publishes)) * 100) / 100,
        };
      } finally {
        commit.destroy();
        await store.close();
      }
    }

    // ---- 4. failover: kill relay A under its clients ----------------------------------------
    ctx.progress(`cluster: failover, ${cfg.failoverSessions} sessions on node A (clients know B too), kill -9 A`);
    const failInt = new IntegrityTracker();
    const resume = new LatencyRecorder();
    let killedAt = 0;
    const failPairs: { agent: LifelineSession; user: LifelineSession; stream: number }[] = [];
    for (let i = 0; i < cfg.failoverSessions; i++) {
      const session = await createSession(a);
      const user = await client([a.url, b.url], session, `fuser${i}`, 'user', 'now');
      const agent = await client([a.url, b.url], session, `fagent${i}`, 'agent', 'now');
      for (const s of [user, agent]) {
        s.on('state', (c) => {
          if (c.state === 'resumed' && killedAt > 0) resume.recordMs(nowMs() - killedAt);
          if (c.state === 'closed') problems.add('failover client closed');
        });
      }
      user.on('event', (e) => {
        const d = e.data as { k?: number };
        if (e.kind === 'text.delta' && typeof d.k === 'number') failInt.delivered(i, d.k);
      });
      failPairs.push({ agent, user, stream: i });
    }
    const failLoad = pace({
      streams: failPairs.length,
      ratePerSec: cfg.rate,
      durationMs: 4000,
      signal: ctx.signal,
      send: (i) => {
        const p = failPairs[i]!;
        const k = failInt.next(i);
        p.agent.append('text.delta', { text: ' tok', k }).catch(() => problems.add('failover append failed'));
      },
    });
    await sleep(1500, ctx.signal).catch(() => {});
    const aChild = a.child;
    killedAt = nowMs();
    process.kill(aChild.pid, 'SIGKILL');
    await failLoad;
    await waitUntil(() => failInt.complete && resume.count >= 2 * cfg.failoverSessions, 30_000, ctx.signal);
    const failReport = failInt.report();

    // ---- report ------------------------------------------------------------------------------
    const report = integrity.report();
    const combined = {
      sent: report.sent + failReport.sent,
      delivered: report.delivered + failReport.delivered,
      lost: report.lost + failReport.lost,
      duplicated: report.duplicated + failReport.duplicated,
      reordered: report.reordered + failReport.reordered,
    };
    const ok = integrityOk(combined, integrity.unexpected + failInt.unexpected) && resume.count >= 2 * cfg.failoverSessions;
    if (!ok) notes.push(`integrity or failover incomplete: ${JSON.stringify(combined)}; resumed clients ${resume.count}/${2 * cfg.failoverSessions}`);
    notes.push(`failover: ${failReport.sent} tokens sent across the kill of node A, ${failReport.delivered} delivered once each`);
    for (const [k, v] of Object.entries(audio)) notes.push(`audio ${k}: ${v.publishesPerTrackS} JetStream publishes/s per 50-frames/s track, ${v.framesPerPublish} frames per publish`);
    notes.push(...problems.list('client: '));
    notes.push(`1-minute load average at the start ${loadAtStart} (${cpus().length} CPUs); NATS R3 on 3 local nats-server processes`);
    const cross = latency.cross.summary();
    const same = latency.same.summary();
    const linger0 = audio['linger0']!;
    const lingerN = audio[`linger${cfg.audioLingerMs}`]!;
    const results: Record<string, Summary> = {
      token: cross,
      ack: ack.cross.summary(),
      appends_per_s: rateSummary(perSecond),
      audio_publishes_per_track_s_linger_0: rateSummary([linger0.publishesPerTrackS]),
      audio_commit_linger_0: linger0.commit,
      [`audio_publishes_per_track_s_linger_${cfg.audioLingerMs}`]: rateSummary([lingerN.publishesPerTrackS]),
      [`audio_commit_linger_${cfg.audioLingerMs}`]: lingerN.commit,
      failover_resume: resume.summary(),
    };
    const run: BenchRun = {
      json: {
        scenario: 'cluster',
        config: {
          sessions: cfg.sessions,
          rate: cfg.rate,
          duration: cfg.duration,
          appendSeconds: cfg.appendSeconds,
          tracks: cfg.tracks,
          audioSeconds: cfg.audioSeconds,
          audioLingerMs: cfg.audioLingerMs,
          failoverSessions: cfg.failoverSessions,
          natsServers: 3,
          replicas: 3,
          relayNodes: 2,
          relayBuild: COMPILED ? 'dist' : 'source (tsx)',
          node: process.version,
          cpus: cpus().length,
          loadAvg1m: loadAtStart,
          host: '127.0.0.1',
        },
        results,
        baselines: { 'same-node': { token: same, ack: ack.same.summary() } },
        ratios: { ...ratiosOf('token', cross, same), ...ratiosOf('ack', results['ack'], ack.same.summary()) },
        integrity: combined,
      },
      curves: { 'cross-node': { token: latency.cross.curve() }, 'same-node': { token: latency.same.curve() } },
      series: ['cross-node', 'same-node'],
      ok,
      notes,
    };
    for (const r of [latency.same, latency.cross, ack.same, ack.cross, resume]) r.destroy();
    return run;
  } finally {
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => n.child.stop()));
    await nats.stop();
  }
}

export const clusterScenario: Scenario = {
  name: 'cluster',
  summary: 'two relay nodes on a 3-node NATS JetStream cluster: token latency across nodes vs same node, appends/s, audio batching, failover time',
  configure(cmd: Command) {
    cmd
      .option('--sessions <n>', 'sessions per placement (same node, across nodes); also 2× this many writers for appends/s', whole(1, 500), 4)
      .option('--rate <n>', 'tokens per second per session', decimal(0.1, 1000), 20)
      .option('--duration <s>', 'measured seconds of the latency phase', decimal(0.5, 600), 8)
      .option('--append-seconds <s>', 'seconds of the appends/s phase', whole(1, 600), 5)
      .option('--tracks <n>', 'audio tracks (50 frames/s each) in the batching phase', whole(1, 500), 8)
      .option('--audio-seconds <s>', 'seconds of each audio batching run', whole(1, 600), 4)
      .option('--audio-linger <ms>', 'the NATS store audio linger compared against 0', decimal(1, 1000), 40)
      .option('--failover-sessions <n>', 'sessions whose clients fail over when node A is killed', whole(1, 200), 4);
  },
  run(options, ctx) {
    return runCluster(
      {
        sessions: options['sessions'] as number,
        rate: options['rate'] as number,
        duration: options['duration'] as number,
        appendSeconds: options['appendSeconds'] as number,
        tracks: options['tracks'] as number,
        audioSeconds: options['audioSeconds'] as number,
        audioLingerMs: options['audioLinger'] as number,
        failoverSessions: options['failoverSessions'] as number,
      },
      ctx,
    );
  },
};
