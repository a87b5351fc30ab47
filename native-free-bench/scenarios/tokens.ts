import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { Option } from 'commander';
import type { Command } from 'commander';
import type { ClientTransport, Json } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { launchWeriftEcho } from '../baselines/werift-echo.js';
import type { Ingress, WeriftEchoBaseline } from '../baselines/werift-echo.js';
import { launchWsEcho } from '../baselines/ws-echo.js';
import type { WsEchoBaseline } from '../baselines/ws-echo.js';
import { commitStats, commitStatsBetween, describeCommits } from '../lib/commit-stats.js';
import type { CommitStats } from '../lib/commit-stats.js';
import { LatencyRecorder, ratiosOf } from '../lib/histogram.js';
import { integrityOk } from '../lib/integrity.js';
import { nowMs } from '../lib/pacer.js';
import { runPhase } from '../lib/phase.js';
import type { ChannelPath, PhaseResult } from '../lib/phase.js';
import { launchRelay } from '../lib/relay.js';
import { decimal, whole } from '../lib/options.js';
import { Problems, openRelayPair, parsed } from '../lib/relay-clients.js';
import type { RelayUnderTest, StoreKind } from '../lib/relay.js';
import type { BenchRun, Scenario, ScenarioContext } from '../lib/result.js';
import { countingUdpDrops } from '../lib/udp-stats.js';

/**
 * `tokens`: N sessions, each with an agent streaming `text.delta` tokens at a fixed rate and a
 * user receiving them, through the relay (child process, Node SDK). Measures agent-send →
 * user-receive latency, and the append → commit acknowledgement seen by the agent.
 *
 * `--transport ws` (default): both clients on WebSocket. Baseline in the same run: the same N
 * streams, rate and payloads through a bare `ws` forwarder (child process).
 *
 * `--transport webrtc`: the user receives over WebRTC (werift, loopback only), the agent stays on
 * WebSocket (server-side agents use WS); the relay runs with `--rtc-ice-host 127.0.0.1`. Baselines
 * in the same run, through a bare werift forwarder (child process, baselines/werift-echo-server):
 * `werift-echo` — werift peer → forwarder → werift peer (the ratios are against this one) — and
 * `ws-werift-echo` — WebSocket → forwarder → werift peer, the relay's own topology without the relay.
 */

export type TokensTransport = 'ws' | 'webrtc';

export interface TokensConfig {
  sessions: number;
  rate: number;
  duration: number;
  warmup: number;
  drain: number;
  store: StoreKind;
  /** SQLite fsync policy of the relay (sqlite store only; default full). */
  sqliteSync?: 'full' | 'normal' | undefined;
  /** Run the relay without RELAY_NODE_FLAGS (V8's defaults), to see what they change. */
  plainNode?: boolean | undefined;
  transport: TokensTransport;
  /** Where the relay child writes its CPU profile (node --cpu-prof), if anywhere. */
  cpuProf?: string | undefined;
}

/** Text of token k: short, word-like, as a language model streams them. */
const WORDS = [' The', ' relay', ' keeps', ' every', ' token', ' in', ' order', ',', ' once', '.'];
const body = (k: number): { text: string } => ({ text: WORDS[k % WORDS.length]! });

/** The user's transport: WebSocket, or WebRTC restricted to loopback. */
export function userTransport(transport: TokensTransport): ClientTransport | undefined {
  return transport === 'webrtc' ? webrtcTransport({ iceHosts: ['127.0.0.1'] }) : undefined;
}

/** `lifeline serve` flags a transport needs (WebRTC on loopback needs the ICE host). */
export function relayArgs(transport: TokensTransport): string[] {
  return transport === 'webrtc' ? ['--rtc-ice-host', '127.0.0.1'] : [];
}

/**
 * Starts the relay under test (with the flags the transport needs) and the matching bare
 * forwarder for the baseline, side by side. If either fails to start, the other is stopped.
 */
export async function launchRelayAndForwarder(opts: {
  store: StoreKind;
  sqliteSync?: 'full' | 'normal' | undefined;
  plainNode?: boolean | undefined;
  transport: TokensTransport;
  cpuProf?: string | undefined;
}): Promise<{ relay: RelayUnderTest; echo: WeriftEchoBaseline | WsEchoBaseline }> {
  const [relayStart, echoStart] = await Promise.allSettled([
    launchRelay({ store: opts.store, ...(opts.sqliteSync ? { sqliteSync: opts.sqliteSync } : {}), ...(opts.plainNode ? { plainNode: true } : {}), extraArgs: relayArgs(opts.transport), ...(opts.cpuProf ? { nodeFlags: ['--cpu-prof', '--cpu-prof-dir', resolve(opts.cpuProf)] } : {}) }),
    opts.transport === 'webrtc' ? launchWeriftEcho() : launchWsEcho(),
  ]);
  if (relayStart.status === 'fulfilled' && echoStart.status === 'fulfilled') return { relay: relayStart.value, echo: echoStart.value };
  await Promise.all([relayStart.status === 'fulfilled' ? relayStart.value.stop() : undefined, echoStart.status === 'fulfilled' ? echoStart.value.stop() : undefined]);
  const failed = [relayStart, echoStart].find((r): r is PromiseRejectedResult => r.status === 'rejected');
  throw failed?.reason instanceof Error ? failed.reason : new Error(String(failed?.reason));
}

function relayPath(relay: RelayUnderTest, commit: LatencyRecorder, problems: Problems, transport: TokensTransport): ChannelPath {
  const userVia = userTransport(transport);
  return {
    name: 'relay',
    async open(i, deliver) {
      const pair = await openRelayPair(relay, { bench: 'tokens', userDevice: `user-${i}`, agentDevice: `agent-${i}`, userTransport: userVia, problems });
      void (async () => {
        for await (const ev of pair.user.stream) if (ev.kind === 'text.delta') deliver(ev.data);
      })().catch((err: unknown) => problems.add(`user stream: ${String(err)}`));
      return {
        send(msg, measured) {
          pair.agent.append('text.delta', msg as unknown as Json).then(
            () => {
              if (measured) commit.recordMs(nowMs() - msg.t);
            },
            (err: { code?: string }) => {
              if (!pair.closing) problems.add(`append refused: ${err.code ?? String(err)}`);
            },
          );
        },
        close: () => pair.close(),
      };
    },
  };
}

function weriftEchoPath(echo: WeriftEchoBaseline, ingress: Ingress): ChannelPath {
  const name = ingress === 'rtc' ? 'werift-echo' : 'ws-werift-echo';
  return {
    name,
    async open(i, deliver) {
      const pair = await echo.openPair(`${name}-${i}`, ingress);
      pair.onMessage = (data) => deliver(parsed(data));
      return { send: (msg) => pair.send(JSON.stringify(msg)), close: () => pair.close() };
    },
  };
}

function wsEchoPath(echo: WsEchoBaseline): ChannelPath {
  return {
    name: 'ws-echo',
    async open(i, deliver) {
      const pair = await echo.openPair(`s${i}`);
      pair.onMessage = (data) => deliver(parsed(data));
      return { send: (msg) => pair.send(JSON.stringify(msg)), close: () => pair.close() };
    },
  };
}

export async function runTokens(cfg: TokensConfig, ctx: ScenarioContext): Promise<BenchRun> {
  const webrtc = cfg.transport === 'webrtc';
  const baselineName = webrtc ? 'werift-echo' : 'ws-echo';
  ctx.progress(`tokens: starting relay (store ${cfg.store}, user on ${cfg.transport}) and ${baselineName} baseline as child processes`);
  const { relay, echo } = await launchRelayAndForwarder(cfg);
  try {
    ctx.progress(`tokens: relay ${relay.url} (pid ${relay.child.pid}, ${relay.build}), ${baselineName} ${echo.url} (pid ${echo.child.pid})`);
    // The ratios are against the first baseline.
    const baselines: ChannelPath[] = webrtc
      ? [weriftEchoPath(echo as WeriftEchoBaseline, 'rtc'), weriftEchoPath(echo as WeriftEchoBaseline, 'ws')]
      : [wsEchoPath(echo as WsEchoBaseline)];
    // Each phase stops early if its own child dies (or on SIGINT); the other phases still run.
    const relaySignal = AbortSignal.any([ctx.signal, relay.child.died]);
    const echoSignal = AbortSignal.any([ctx.signal, echo.child.died]);
    const phase = {
      streams: cfg.sessions,
      ratePerSec: cfg.rate,
      warmupMs: cfg.warmup * 1000,
      durationMs: cfg.duration * 1000,
      drainMs: cfg.drain * 1000,
      body,
      progress: ctx.progress,
    };
    const commit = new LatencyRecorder();
    const problems = new Problems();
    // The phases run one after the other so they do not compete for the CPU; the load average
    // at the start of each says whether something else on the machine did.
    const load1 = (): number => Math.round((loadavg()[0] ?? 0) * 100) / 100;
    const loads: string[] = [];
    const loadAtStart = load1();
    loads.push(`relay phase ${loadAtStart}`);
    const drops: string[] = [];
    // The relay's own commit times (its /metrics), over the measured window and the drain.
    let commitsBefore: Promise<CommitStats | undefined> = Promise.resolve(undefined);
    const onMeasureStart = (): void => {
      commitsBefore = commitStats(relay.url).catch(() => undefined);
    };
    const { result: subject, udpDrops } = await countingUdpDrops(() =>
      runPhase(relayPath(relay, commit, problems, cfg.transport), { ...phase, signal: relaySignal, onMeasureStart }),
    );
    const before = await commitsBefore;
    const storeCommits = before && relay.child.alive ? commitStatsBetween(before, await commitStats(relay.url)) : undefined;
    drops.push(`relay ${udpDrops ?? 'n/a'}`);
    const baseResults: { name: string; result: PhaseResult }[] = [];
    for (const path of baselines) {
      loads.push(`${path.name} phase ${load1()}`);
      const counted = await countingUdpDrops(() => runPhase(path, { ...phase, signal: echoSignal }));
      drops.push(`${path.name} ${counted.udpDrops ?? 'n/a'}`);
      baseResults.push({ name: path.name, result: counted.result });
    }

    const latency = subject.latency.summary();
    const integrity = subject.integrity.report();
    const notes: string[] = [];
    const relayOk = integrityOk(integrity, subject.integrity.unexpected);
    if (!relayOk) notes.push(`relay integrity failed (unexpected payloads: ${subject.integrity.unexpected}; drained: ${subject.drained})`);
    let baseOk = true;
    const baselineJson: Record<string, { latency: ReturnType<LatencyRecorder['summary']> }> = {};
    const curves: BenchRun['curves'] = { relay: { latency: subject.latency.curve(), commit: commit.curve() } };
    for (const { name, result } of baseResults) {
      const r = result.integrity.report();
      if (!integrityOk(r, result.integrity.unexpected)) {
        baseOk = false;
        notes.push(`baseline ${name} integrity failed: ${JSON.stringify(r)} — the comparison is not valid`);
      }
      baselineJson[name] = { latency: result.latency.summary() };
      curves[name] = { latency: result.latency.curve() };
    }
    const aborts = [relaySignal, echoSignal].filter((sig) => sig.aborted).map((sig) => (sig.reason instanceof Error ? sig.reason.message : String(sig.reason)));
    for (const reason of new Set(aborts)) notes.push(`run aborted: ${reason}`);
    if (!relay.child.alive && relay.child.stderrTail().trim()) notes.push(`relay stderr: ${relay.child.stderrTail().trim().split('\n').slice(-3).join(' | ')}`);
    notes.push(...problems.list('relay client: '));
    for (const { name, result } of baseResults) {
      const r = result.integrity.report();
      notes.push(`baseline ${name}: sent ${r.sent}, delivered ${r.delivered}, lost ${r.lost}`);
    }
    notes.push(`1-minute load average before the ${loads.join(', before the ')} (${cpus().length} CPUs)`);
    if (storeCommits) notes.push(`relay store commits (/metrics, measured window and drain): ${describeCommits(storeCommits)}`);
    if (cfg.cpuProf) notes.push(`relay CPU profile (node --cpu-prof) written to ${resolve(cfg.cpuProf)}`);
    if (webrtc) notes.push(`UDP datagrams dropped for a full receive buffer, system-wide (/proc/net/snmp RcvbufErrors), per phase: ${drops.join(', ')}`);
    const payloadBytes = Buffer.byteLength(JSON.stringify({ ...body(1), s: 1000, t: nowMs() }));
    const first = baseResults[0]!;
    const run: BenchRun = {
      json: {
        scenario: 'tokens',
        config: {
          sessions: cfg.sessions,
          rate: cfg.rate,
          duration: cfg.duration,
          warmup: cfg.warmup,
          store: cfg.store,
          sqliteSync: relay.sqliteSync ?? null,
          relayNodeFlags: relay.nodeFlags.join(' '),
          harnessNodeFlags: process.execArgv.join(' '),
          transport: cfg.transport,
          agentTransport: 'ws',
          payloadBytes,
          relayBuild: relay.build,
          node: process.version,
          cpus: cpus().length,
          loadAvg1m: loadAtStart,
          host: '127.0.0.1',
        },
        results: { latency, commit: commit.summary() },
        baselines: baselineJson,
        ratios: ratiosOf('latency', latency, baselineJson[first.name]!.latency),
        integrity,
      },
      curves,
      series: ['relay', ...baseResults.map((b) => b.name)],
      ok: relayOk && baseOk && !relaySignal.aborted && !echoSignal.aborted,
      notes,
    };
    subject.latency.destroy();
    for (const { result } of baseResults) result.latency.destroy();
    commit.destroy();
    return run;
  } finally {
    await Promise.all([relay.stop(), echo.stop()]);
  }
}

export const tokensScenario: Scenario = {
  name: 'tokens',
  summary: 'agent → user text.delta latency through the relay vs a bare ws forwarder, with integrity',
  configure(cmd: Command) {
    cmd
      .option('--sessions <n>', 'sessions (an agent and a user each)', whole(1, 2000), 10)
      .option('--rate <n>', 'tokens per second per session', decimal(0.1, 2000), 50)
      .option('--duration <s>', 'measured seconds', decimal(0.1, 3600), 10)
      .option('--warmup <s>', 'seconds sent but not measured, first', decimal(0, 600), 1)
      .option('--drain <s>', 'longest wait for undelivered tokens at the end', decimal(0.1, 120), 5)
      .addOption(new Option('--store <kind>', 'relay store').choices(['sqlite', 'memory']).default('sqlite'))
      .addOption(new Option('--sqlite-sync <mode>', 'SQLite fsync policy of the relay').choices(['full', 'normal']).default('normal'))
      .option('--plain-node', "run the relay with V8's defaults, without the flags npm start gives it (src/cli/node-flags.ts)")
      .addOption(new Option('--transport <kind>', "the user's transport (the agent stays on WebSocket); webrtc compares against bare werift").choices(['ws', 'webrtc']).default('ws'))
      .option('--cpu-prof <dir>', "write the relay child's CPU profile (node --cpu-prof) to <dir>");
  },
  run(options, ctx) {
    return runTokens(
      {
        sessions: options['sessions'] as number,
        rate: options['rate'] as number,
        duration: options['duration'] as number,
        warmup: options['warmup'] as number,
        drain: options['drain'] as number,
        store: options['store'] as StoreKind,
        sqliteSync: options['sqliteSync'] as 'full' | 'normal',
        plainNode: options['plainNode'] === true,
        transport: options['transport'] as TokensTransport,
        cpuProf: typeof options['cpuProf'] === 'string' ? options['cpuProf'] : undefined,
      },
      ctx,
    );
  },
};
