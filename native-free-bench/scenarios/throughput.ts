import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { Option } from 'commander';
import type { Command } from 'commander';
import type { Json } from '../../src/sdk/index.js';
import type { WeriftEchoBaseline } from '../baselines/werift-echo.js';
import type { WsEchoBaseline } from '../baselines/ws-echo.js';
import { LatencyRecorder, ratiosOf } from '../lib/histogram.js';
import type { Summary } from '../lib/histogram.js';
import { IntegrityTracker, integrityOk } from '../lib/integrity.js';
import { nowMs, waitUntil } from '../lib/pacer.js';
import type { StampedMessage } from '../lib/phase.js';
import { decimal, whole } from '../lib/options.js';
import { Problems, openRelayPair, parsed } from '../lib/relay-clients.js';
import type { RelayUnderTest, StoreKind } from '../lib/relay.js';
import type { BenchRun, Scenario, ScenarioContext } from '../lib/result.js';
import { countingUdpDrops } from '../lib/udp-stats.js';
import { launchRelayAndForwarder, userTransport } from './tokens.js';
import type { TokensTransport } from './tokens.js';

/**
 * `throughput`: as many small events as possible through ONE connection. One session: an agent
 * on WebSocket appends `text.delta` events in bursts (`--burst` appends in one turn of the event
 * loop), a user receives them over WebRTC (`--transport webrtc`, the default: one peer connection,
 * the relay coalescing the frames of one turn into one data-channel message) or over WebSocket.
 * Closed loop with a bounded lag: a new burst goes out only while fewer than `--max-lag` events are
 * sent and not yet delivered, so the relay is kept saturated without an ever-growing backlog.
 *
 * Reported: `throughput` — events delivered to the user per second during the measured seconds
 * (after `--warmup`), one value (n = 1; p50 = p95 = p99 = max = that value, unit `events/s`);
 * `latency` — send → receive of the events sent in the measured seconds (under saturation, so it is
 * mostly queueing); integrity over every event. The per-second rates are in the notes.
 *
 * Baselines in the same run, the same bursts and payloads through one bare forwarder in a child
 * process (WebRTC: baselines/werift-echo-server, the sender on WebSocket like the agent, one werift
 * peer connection to the receiver; WebSocket: baselines/ws-echo-server):
 * `*-batched` — each burst as ONE message (a JSON array), what coalescing aims at; the ratios are
 * against it — and `*-single` — one message per event. The single baseline runs with its own lag
 * bound, `--single-max-lag` (64): with more small messages in flight, werift overflows the
 * receiver's UDP socket buffer (the default, ~208 KiB) and then waits for SCTP's retransmission
 * timer (≥ 1 s), so it would measure loss recovery instead of the per-message cost. Set it equal to
 * `--max-lag` to see that collapse. The UDP receive-buffer drops of each phase are in the notes.
 */

export interface ThroughputConfig {
  transport: TokensTransport;
  duration: number;
  warmup: number;
  drain: number;
  burst: number;
  maxLag: number;
  singleMaxLag: number;
  store: StoreKind;
  cpuProf: string | undefined;
}

const WORDS = [' The', ' relay', ' keeps', ' every', ' token', ' in', ' order', ',', ' once', '.'];

/** A throughput target worth stating: through one peer connection, with coalescing. */
const TARGET_EVENTS_PER_S = 20_000;

interface FloodChannel {
  /** Sends one burst: every event, in order, in this turn of the event loop. Must not throw. */
  sendBurst(events: StampedMessage[]): void;
  close(): void;
}

interface FloodPath {
  name: string;
  open(deliver: (msg: unknown) => void): Promise<FloodChannel>;
}

interface FloodOptions {
  warmupMs: number;
  durationMs: number;
  drainMs: number;
  burst: number;
  maxLag: number;
  signal: AbortSignal;
  progress: (line: string) => void;
}

interface FloodResult {
  /** Events delivered per second in the measured window. */
  rate: number;
  /** Events delivered in each whole second of the measured window. */
  perSecond: number[];
  latency: LatencyRecorder;
  integrity: IntegrityTracker;
  drained: boolean;
  drainedMs: number;
}

function isStamped(v: unknown): v is StampedMessage {
  return typeof v === 'object' && v !== null && typeof (v as StampedMessage).s === 'number' && typeof (v as StampedMessage).t === 'number';
}

/** A single-value rate in the common summary shape. */
function rateSummary(rate: number): Summary {
  const r = Math.round(rate);
  return { unit: 'events/s', n: 1, p50: r, p95: r, p99: r, max: r };
}

function relayFlood(relay: RelayUnderTest, transport: TokensTransport, maxOutbox: number, problems: Problems): FloodPath {
  const userVia = userTransport(transport);
  return {
    name: 'relay',
    async open(deliver) {
      const pair = await openRelayPair(relay, { bench: 'throughput', userDevice: 'user', agentDevice: 'agent', userTransport: userVia, maxOutbox, problems });
      pair.user.on('event', (ev) => {
        if (ev.kind === 'text.delta') deliver(ev.data);
      });
      return {
        sendBurst(events) {
          for (const ev of events) {
            pair.agent.append('text.delta', ev as unknown as Json).catch((err: { code?: string }) => {
              if (!pair.closing) problems.add(`append refused: ${err.code ?? String(err)}`);
            });
          }
        },
        close: () => pair.close(),
      };
    },
  };
}

interface Forwarded {
  send(data: string): void;
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  close(): void;
}

/** A bare forwarder: each burst as one message (`batched`) or one message per event. */
function forwarderFlood(name: string, openPair: () => Promise<Forwarded>, batched: boolean, maxLag: number): FloodPath & { maxLag: number } {
  return {
    name,
    maxLag,
    async open(deliver) {
      const pair = await openPair();
      pair.onMessage = (data) => {
        const v = parsed(data);
        if (Array.isArray(v)) for (const x of v) deliver(x);
        else deliver(v);
      };
      return {
        sendBurst(events) {
          if (batched) pair.send(JSON.stringify(events));
          else for (const ev of events) pair.send(JSON.stringify(ev));
        },
        close: () => pair.close(),
      };
    },
  };
}

/**
 * Floods one channel for warm-up + duration: a burst whenever the lag (sent, not yet delivered)
 * leaves room for it, then one turn of the event loop for I/O; waits for deliveries otherwise.
 */
async function runFlood(path: FloodPath, o: FloodOptions): Promise<FloodResult> {
  const integrity = new IntegrityTracker();
  const latency = new LatencyRecorder();
  const lowWater = Math.max(0, o.maxLag - o.burst);
  const perSecond = new Array<number>(Math.max(1, Math.floor(o.durationMs / 1000))).fill(0);
  let delivered = 0;
  let inWindow = 0;
  let measureFrom = Infinity;
  let measureTo = Infinity;
  let wake: (() => void) | undefined;
  const deliver = (msg: unknown): void => {
    const at = nowMs();
    if (!isStamped(msg)) {
      integrity.delivered(0, -1);
      return;
    }
    const r = integrity.delivered(0, msg.s);
    if (r !== 'ok' && r !== 'reordered') return;
    delivered++;
    if (at >= measureFrom && at < measureTo) {
      inWindow++;
      const sec = Math.floor((at - measureFrom) / 1000);
      if (sec < perSecond.length) perSecond[sec]!++;
    }
    if (msg.t >= measureFrom && msg.t < measureTo) latency.recordMs(at - msg.t);
    if (wake && integrity.sent - delivered <= lowWater) wake();
  };

  o.progress(`${path.name}: opening one channel`);
  const channel = await path.open(deliver);
  try {
    const started = nowMs();
    measureFrom = started + o.warmupMs;
    measureTo = measureFrom + o.durationMs;
    const total = (o.warmupMs + o.durationMs) / 1000;
    let lastCount = 0;
    const ticker = setInterval(() => {
      const secs = ((nowMs() - started) / 1000).toFixed(0);
      o.progress(`${path.name}: ${secs}/${total.toFixed(0)} s  sent ${integrity.sent}  delivered ${delivered}  (${delivered - lastCount}/s)`);
      lastCount = delivered;
    }, 1000);
    try {
      while (!o.signal.aborted && nowMs() < measureTo) {
        if (integrity.sent - delivered > lowWater) {
          // Wait for deliveries (bounded: a lost event must not hang the loop).
          await new Promise<void>((resolveWait) => {
            const timer = setTimeout(done, 50);
            function done(): void {
              clearTimeout(timer);
              wake = undefined;
              resolveWait();
            }
            wake = done;
          });
          continue;
        }
        const events: StampedMessage[] = [];
        for (let b = 0; b < o.burst; b++) {
          const s = integrity.next(0);
          events.push({ text: WORDS[s % WORDS.length]!, s, t: nowMs() });
        }
        channel.sendBurst(events);
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      clearInterval(ticker);
    }
    const drainStart = nowMs();
    const drained = await waitUntil(() => integrity.complete, o.drainMs, o.signal, 5);
    const drainedMs = Math.round(nowMs() - drainStart);
    const r = integrity.report();
    const rate = inWindow / (o.durationMs / 1000);
    o.progress(`${path.name}: done  ${Math.round(rate)} events/s  sent ${r.sent}  delivered ${r.delivered}  lost ${r.lost}  (drain ${drainedMs} ms)`);
    return { rate, perSecond, latency, integrity, drained, drainedMs };
  } finally {
    channel.close();
  }
}

export async function runThroughput(cfg: ThroughputConfig, ctx: ScenarioContext): Promise<BenchRun> {
  const webrtc = cfg.transport === 'webrtc';
  const kind = webrtc ? 'werift' : 'ws-echo';
  ctx.progress(`throughput: starting relay (store ${cfg.store}, user on ${cfg.transport}) and the ${kind} forwarder as child processes`);
  const profDir = cfg.cpuProf ? resolve(cfg.cpuProf) : undefined;
  const { relay, echo } = await launchRelayAndForwarder(cfg);
  try {
    ctx.progress(`throughput: relay ${relay.url} (pid ${relay.child.pid}, ${relay.build}), ${kind} forwarder ${echo.url} (pid ${echo.child.pid})`);
    let pairs = 0;
    const openPair = async (): Promise<Forwarded> => {
      const id = `flood-${pairs++}`;
      return webrtc ? (echo as WeriftEchoBaseline).openPair(id, 'ws') : (echo as WsEchoBaseline).openPair(id);
    };
    const baselines = [forwarderFlood(`${kind}-batched`, openPair, true, cfg.maxLag), forwarderFlood(`${kind}-single`, openPair, false, cfg.singleMaxLag)];
    const problems = new Problems();
    const relaySignal = AbortSignal.any([ctx.signal, relay.child.died]);
    const echoSignal = AbortSignal.any([ctx.signal, echo.child.died]);
    const opts = {
      warmupMs: cfg.warmup * 1000,
      durationMs: cfg.duration * 1000,
      drainMs: cfg.drain * 1000,
      burst: cfg.burst,
      maxLag: cfg.maxLag,
      progress: ctx.progress,
    };
    const load1 = (): number => Math.round((loadavg()[0] ?? 0) * 100) / 100;
    const loadAtStart = load1();
    const loads = [`relay phase ${loadAtStart}`];
    const drops: string[] = [];
    const { result: subject, udpDrops } = await countingUdpDrops(() => runFlood(relayFlood(relay, cfg.transport, cfg.maxLag * 2, problems), { ...opts, signal: relaySignal }));
    drops.push(`relay ${udpDrops ?? 'n/a'}`);
    const baseResults: { name: string; result: FloodResult }[] = [];
    for (const path of baselines) {
      loads.push(`${path.name} phase ${load1()}`);
      const counted = await countingUdpDrops(() => runFlood(path, { ...opts, maxLag: path.maxLag, signal: echoSignal }));
      drops.push(`${path.name} ${counted.udpDrops ?? 'n/a'}`);
      baseResults.push({ name: path.name, result: counted.result });
    }

    const notes: string[] = [];
    const integrity = subject.integrity.report();
    const relayOk = integrityOk(integrity, subject.integrity.unexpected);
    if (!relayOk) notes.push(`relay integrity failed (unexpected payloads: ${subject.integrity.unexpected}; drained: ${subject.drained})`);
    const throughput = rateSummary(subject.rate);
    const results: Record<string, Summary> = { throughput, latency: subject.latency.summary() };
    const baselineJson: Record<string, Record<string, Summary>> = {};
    const curves: BenchRun['curves'] = { relay: { latency: subject.latency.curve() } };
    let baseOk = true;
    for (const { name, result } of baseResults) {
      const r = result.integrity.report();
      if (!integrityOk(r, result.integrity.unexpected)) {
        baseOk = false;
        notes.push(`baseline ${name} integrity failed: ${JSON.stringify(r)} — the comparison is not valid`);
      }
      baselineJson[name] = { throughput: rateSummary(result.rate), latency: result.latency.summary() };
      curves[name] = { latency: result.latency.curve() };
    }
    const aborts = [relaySignal, echoSignal].filter((sig) => sig.aborted).map((sig) => (sig.reason instanceof Error ? sig.reason.message : String(sig.reason)));
    for (const reason of new Set(aborts)) notes.push(`run aborted: ${reason}`);
    if (!relay.child.alive && relay.child.stderrTail().trim()) notes.push(`relay stderr: ${relay.child.stderrTail().trim().split('\n').slice(-3).join(' | ')}`);
    notes.push(...problems.list('relay client: '));
    const perSec = (f: FloodResult): string => f.perSecond.join(', ');
    notes.push(`per-second deliveries: relay [${perSec(subject)}]; ${baseResults.map(({ name, result }) => `${name} [${perSec(result)}]`).join('; ')}`);
    for (const { name, result } of baseResults) {
      const r = result.integrity.report();
      notes.push(`baseline ${name}: sent ${r.sent}, delivered ${r.delivered}, lost ${r.lost}`);
    }
    if (webrtc) {
      const met = throughput.p50 >= TARGET_EVENTS_PER_S;
      notes.push(`target ≥ ${TARGET_EVENTS_PER_S} events/s through one peer connection with coalescing: ${met ? 'met' : 'missed'} (${throughput.p50} events/s)`);
    }
    notes.push(`1-minute load average before the ${loads.join(', before the ')} (${cpus().length} CPUs)`);
    notes.push(`UDP datagrams dropped for a full receive buffer, system-wide (/proc/net/snmp RcvbufErrors), per phase: ${drops.join(', ')}`);
    if (profDir) notes.push(`relay CPU profile (node --cpu-prof) written to ${profDir}`);
    const payloadBytes = Buffer.byteLength(JSON.stringify({ text: WORDS[1], s: 100_000, t: nowMs() }));
    const first = baseResults[0]!;
    const run: BenchRun = {
      json: {
        scenario: 'throughput',
        config: {
          transport: cfg.transport,
          agentTransport: 'ws',
          duration: cfg.duration,
          warmup: cfg.warmup,
          burst: cfg.burst,
          maxLag: cfg.maxLag,
          singleMaxLag: cfg.singleMaxLag,
          store: cfg.store,
          sqliteSync: relay.sqliteSync ?? null,
          payloadBytes,
          relayBuild: relay.build,
          node: process.version,
          cpus: cpus().length,
          loadAvg1m: loadAtStart,
          host: '127.0.0.1',
        },
        results,
        baselines: baselineJson,
        ratios: ratiosOf('throughput', throughput, baselineJson[first.name]!['throughput'], ['p50']),
        integrity,
      },
      curves,
      series: ['relay', ...baseResults.map((b) => b.name)],
      ok: relayOk && baseOk && !relaySignal.aborted && !echoSignal.aborted,
      notes,
    };
    subject.latency.destroy();
    for (const { result } of baseResults) result.latency.destroy();
    return run;
  } finally {
    await Promise.all([relay.stop(), echo.stop()]);
  }
}

export const throughputScenario: Scenario = {
  name: 'throughput',
  summary: 'events/s through ONE connection (agent on WS in bursts, user on WebRTC, coalescing) vs bare werift, batched and one by one',
  configure(cmd: Command) {
    cmd
      .addOption(new Option('--transport <kind>', "the user's transport (the agent stays on WebSocket)").choices(['webrtc', 'ws']).default('webrtc'))
      .option('--duration <s>', 'measured seconds', decimal(0.5, 600), 5)
      .option('--warmup <s>', 'seconds of flooding before measuring', decimal(0, 60), 1)
      .option('--drain <s>', 'longest wait for undelivered events at the end', decimal(0.1, 120), 10)
      .option('--burst <n>', 'events the agent appends in one turn of the event loop', whole(1, 4096), 64)
      .option('--max-lag <n>', 'most events sent and not yet delivered (bounded backlog)', whole(1, 100_000), 1024)
      .option('--single-max-lag <n>', 'the same bound for the one-message-per-event baseline (more overflows werift\'s UDP receive buffer)', whole(1, 100_000), 64)
      .addOption(new Option('--store <kind>', 'relay store').choices(['sqlite', 'memory']).default('sqlite'))
      .option('--cpu-prof <dir>', "write the relay child's CPU profile (node --cpu-prof) to <dir>");
  },
  run(o, ctx) {
    return runThroughput(
      {
        transport: o['transport'] as TokensTransport,
        duration: o['duration'] as number,
        warmup: o['warmup'] as number,
        drain: o['drain'] as number,
        burst: o['burst'] as number,
        maxLag: o['maxLag'] as number,
        singleMaxLag: o['singleMaxLag'] as number,
        store: o['store'] as StoreKind,
        cpuProf: typeof o['cpuProf'] === 'string' ? o['cpuProf'] : undefined,
      },
      ctx,
    );
  },
};
