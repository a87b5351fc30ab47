import { cpus, loadavg } from 'node:os';
import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import { ExponentialBackoff, connect } from '../../src/sdk/index.js';
import type { Json, LifelineSession } from '../../src/sdk/index.js';
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

/**
 * `tokens`: N sessions, each with an agent streaming `text.delta` tokens at a fixed rate and a
 * user receiving them, through the relay (child process, Node SDK over WebSocket). Measures
 * agent-send → user-receive latency, and the append → commit acknowledgement seen by the agent.
 * Baseline in the same run: the same N streams, rate and payloads through a bare `ws` forwarder.
 */

export interface TokensConfig {
  sessions: number;
  rate: number;
  duration: number;
  warmup: number;
  drain: number;
  store: StoreKind;
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

function relayPath(relay: RelayUnderTest, commit: LatencyRecorder, problems: Problems): ChannelPath {
  const policy = (): ExponentialBackoff => new ExponentialBackoff({ giveUpAfterMs: 5000 });
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
        const user = await connect({ url: relay.url, token: userToken, device: `user-${i}`, reconnect: policy() });
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

function wsEchoPath(echo: WsEchoBaseline): ChannelPath {
  return {
    name: 'ws-echo',
    async open(i, deliver) {
      const pair = await echo.openPair(`s${i}`);
      pair.onMessage = (data) => {
        let msg: unknown;
        try {
          msg = JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
        } catch {
          msg = undefined;
        }
        deliver(msg);
      };
      return { send: (msg) => pair.send(JSON.stringify(msg)), close: () => pair.close() };
    },
  };
}

export async function runTokens(cfg: TokensConfig, ctx: ScenarioContext): Promise<BenchRun> {
  ctx.progress(`tokens: starting relay (store ${cfg.store}) and ws-echo baseline as child processes`);
  const [relayStart, echoStart] = await Promise.allSettled([launchRelay({ store: cfg.store }), launchWsEcho()]);
  const relay = relayStart.status === 'fulfilled' ? relayStart.value : undefined;
  const echo = echoStart.status === 'fulfilled' ? echoStart.value : undefined;
  try {
    if (!relay || !echo) {
      const failed = [relayStart, echoStart].find((r): r is PromiseRejectedResult => r.status === 'rejected');
      throw failed?.reason instanceof Error ? failed.reason : new Error(String(failed?.reason));
    }
    ctx.progress(`tokens: relay ${relay.url} (pid ${relay.child.pid}, ${relay.build}), ws-echo ${echo.url} (pid ${echo.child.pid})`);
    // Each phase stops early if its own child dies (or on SIGINT); the other phase still runs.
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
    // The two phases run one after the other so they do not compete for the CPU; the load average
    // at the start of each says whether something else on the machine did.
    const load1 = (): number => Math.round((loadavg()[0] ?? 0) * 100) / 100;
    const loadAtStart = load1();
    const subject: PhaseResult = await runPhase(relayPath(relay, commit, problems), { ...phase, signal: relaySignal });
    const loadBetween = load1();
    const base: PhaseResult = await runPhase(wsEchoPath(echo), { ...phase, signal: echoSignal });

    const latency = subject.latency.summary();
    const baseLatency = base.latency.summary();
    const integrity = subject.integrity.report();
    const baseIntegrity = base.integrity.report();
    const notes: string[] = [];
    const relayOk = integrityOk(integrity, subject.integrity.unexpected);
    const baseOk = integrityOk(baseIntegrity, base.integrity.unexpected);
    if (!relayOk) notes.push(`relay integrity failed (unexpected payloads: ${subject.integrity.unexpected}; drained: ${subject.drained})`);
    if (!baseOk) notes.push(`baseline integrity failed: ${JSON.stringify(baseIntegrity)} — the comparison is not valid`);
    const aborts = [relaySignal, echoSignal].filter((sig) => sig.aborted).map((sig) => (sig.reason instanceof Error ? sig.reason.message : String(sig.reason)));
    for (const reason of new Set(aborts)) notes.push(`run aborted: ${reason}`);
    if (!relay.child.alive && relay.child.stderrTail().trim()) notes.push(`relay stderr: ${relay.child.stderrTail().trim().split('\n').slice(-3).join(' | ')}`);
    notes.push(...problems.list('relay client: '));
    notes.push(`baseline ws-echo: sent ${baseIntegrity.sent}, delivered ${baseIntegrity.delivered}, lost ${baseIntegrity.lost}`);
    notes.push(`1-minute load average before the relay phase ${loadAtStart}, before the baseline phase ${loadBetween} (${cpus().length} CPUs)`);
    const payloadBytes = Buffer.byteLength(JSON.stringify({ ...body(1), s: 1000, t: nowMs() }));
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
          payloadBytes,
          relayBuild: relay.build,
          node: process.version,
          cpus: cpus().length,
          loadAvg1m: loadAtStart,
          host: '127.0.0.1',
        },
        results: { latency, commit: commit.summary() },
        baselines: { 'ws-echo': { latency: baseLatency } },
        ratios: ratiosOf('latency', latency, baseLatency),
        integrity,
      },
      curves: {
        relay: { latency: subject.latency.curve(), commit: commit.curve() },
        'ws-echo': { latency: base.latency.curve() },
      },
      series: ['relay', 'ws-echo'],
      ok: relayOk && baseOk && !relaySignal.aborted && !echoSignal.aborted,
      notes,
    };
    subject.latency.destroy();
    base.latency.destroy();
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
      .addOption(new Option('--store <kind>', 'relay store').choices(['sqlite', 'memory']).default('sqlite'));
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
      },
      ctx,
    );
  },
};
