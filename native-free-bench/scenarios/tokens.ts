import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import { ExponentialBackoff, connect } from '../../src/sdk/index.js';
import type { ClientTransport, Json, LifelineSession } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { launchWeriftEcho } from '../baselines/werift-echo.js';
import type { Ingress, WeriftEchoBaseline } from '../baselines/werift-echo.js';
import { launchWsEcho } from '../baselines/ws-echo.js';
import type { WsEchoBaseline } from '../baselines/ws-echo.js';
import { LatencyRecorder, ratiosOf } from '../lib/histogram.js';
import { integrityOk } from '../lib/integrity.js';
import { nowMs } from '../lib/pacer.js';
import { runPhase } from '../lib/phase.js';
import type { ChannelPath, PhaseResult } from '../lib/phase.js';
import { launchRelay } from '../lib/relay.js';
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
  transport: TokensTransport;
  /** Where the relay child writes its CPU profile (node --cpu-prof), if anywhere. */
  cpuProf?: string | undefined;
}

/** Text of token k: short, word-like, as a language model streams them. */
const WORDS = [' The', ' relay', ' keeps', ' every', ' token', ' in', ' order', ',', ' once', '.'];
const body = (k: number): { text: string } => ({ text: WORDS[k % WORDS.length]! });

function number(min: number, max: number, integer: boolean) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new InvalidArgumentError(integer ? 'not a whole number' : 'not a number');
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}`);
    return n;
  };
}

/** Collects problems seen by clients, counting repeats instead of flooding the report. */
class Problems {
  readonly #counts = new Map<string, number>();
  add(msg: string): void {
    this.#counts.set(msg, (this.#counts.get(msg) ?? 0) + 1);
  }
  list(prefix: string): string[] {
    return [...this.#counts].map(([m, n]) => `${prefix}${m}${n > 1 ? ` (×${n})` : ''}`);
  }
}

/** The user's transport: WebSocket, or WebRTC restricted to loopback. */
export function userTransport(transport: TokensTransport): ClientTransport | undefined {
  return transport === 'webrtc' ? webrtcTransport({ iceHosts: ['127.0.0.1'] }) : undefined;
}

/** `lifeline serve` flags a transport needs (WebRTC on loopback needs the ICE host). */
export function relayArgs(transport: TokensTransport): string[] {
  return transport === 'webrtc' ? ['--rtc-ice-host', '127.0.0.1'] : [];
}

function relayPath(relay: RelayUnderTest, commit: LatencyRecorder, problems: Problems, transport: TokensTransport): ChannelPath {
  const policy = (): ExponentialBackoff => new ExponentialBackoff({ giveUpAfterMs: 5000 });
  const userVia = userTransport(transport);
  return {
    name: 'relay',
    async open(i, deliver) {
      const session = await relay.createSession({ metadata: { bench: 'tokens' } });
      const [userToken, agentToken] = await Promise.all([relay.token(session, 'user', 'user'), relay.token(session, 'agent', 'agent')]);
      const clients: LifelineSession[] = [];
      let closing = false;
      const watch = (s: LifelineSession, who: string): void => {
        s.on('state', (c) => {
          if (!closing && (c.state === 'reconnecting' || c.state === 'closed')) problems.add(`${who} ${c.state}${c.error ? ` (${c.error})` : ''}`);
        });
        s.on('error', (err) => problems.add(`${who} error ${err.code}`));
      };
      try {
        const user = await connect({ url: relay.url, token: userToken, device: `user-${i}`, reconnect: policy(), ...(userVia ? { transport: userVia } : {}) });
        clients.push(user);
        watch(user, 'user');
        void (async () => {
          for await (const ev of user.stream) if (ev.kind === 'text.delta') deliver(ev.data);
        })().catch((err: unknown) => problems.add(`user stream: ${String(err)}`));
        const agent = await connect({ url: relay.url, token: agentToken, device: `agent-${i}`, resume: 'now', reconnect: policy() });
        clients.push(agent);
        watch(agent, 'agent');
        return {
          send(msg, measured) {
            agent.append('text.delta', msg as unknown as Json).then(
              () => {
                if (measured) commit.recordMs(nowMs() - msg.t);
              },
              (err: { code?: string }) => {
                if (!closing) problems.add(`append refused: ${err.code ?? String(err)}`);
              },
            );
          },
          close() {
            closing = true;
            for (const c of clients) c.close();
          },
        };
      } catch (err) {
        closing = true;
        for (const c of clients) c.close();
        throw err;
      }
    },
  };
}

function parsed(data: string | Uint8Array): unknown {
  try {
    return JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
  } catch {
    return undefined;
  }
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
  const [relayStart, echoStart] = await Promise.allSettled([
    launchRelay({ store: cfg.store, extraArgs: relayArgs(cfg.transport), ...(cfg.cpuProf ? { nodeFlags: ['--cpu-prof', '--cpu-prof-dir', resolve(cfg.cpuProf)] } : {}) }),
    webrtc ? launchWeriftEcho() : launchWsEcho(),
  ]);
  const relay = relayStart.status === 'fulfilled' ? relayStart.value : undefined;
  const echo = echoStart.status === 'fulfilled' ? echoStart.value : undefined;
  try {
    if (!relay || !echo) {
      const failed = [relayStart, echoStart].find((r): r is PromiseRejectedResult => r.status === 'rejected');
      throw failed?.reason instanceof Error ? failed.reason : new Error(String(failed?.reason));
    }
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
    const { result: subject, udpDrops } = await countingUdpDrops(() => runPhase(relayPath(relay, commit, problems, cfg.transport), { ...phase, signal: relaySignal }));
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
    await Promise.all([relay?.stop(), echo?.stop()]);
  }
}

export const tokensScenario: Scenario = {
  name: 'tokens',
  summary: 'agent → user text.delta latency through the relay vs a bare ws forwarder, with integrity',
  configure(cmd: Command) {
    cmd
      .option('--sessions <n>', 'sessions (an agent and a user each)', number(1, 2000, true), 10)
      .option('--rate <n>', 'tokens per second per session', number(0.1, 2000, false), 50)
      .option('--duration <s>', 'measured seconds', number(0.1, 3600, false), 10)
      .option('--warmup <s>', 'seconds sent but not measured, first', number(0, 600, false), 1)
      .option('--drain <s>', 'longest wait for undelivered tokens at the end', number(0.1, 120, false), 5)
      .addOption(new Option('--store <kind>', 'relay store').choices(['sqlite', 'memory']).default('sqlite'))
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
        transport: options['transport'] as TokensTransport,
        cpuProf: typeof options['cpuProf'] === 'string' ? options['cpuProf'] : undefined,
      },
      ctx,
    );
  },
};
