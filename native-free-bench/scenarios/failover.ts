import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { Option } from 'commander';
import type { Command } from 'commander';
import { whole } from '../lib/options.js';
import { ANY_SESSION, connect } from '../../src/sdk/index.js';
import type { LifelineSession, TimelineEvent } from '../../src/sdk/index.js';
import { REPO_ROOT, modulePath, nodeArgs } from '../lib/children.js';
import { LatencyRecorder, ratiosOf } from '../lib/histogram.js';
import type { Summary } from '../lib/histogram.js';
import { IntegrityTracker, integrityOk } from '../lib/integrity.js';
import type { IntegrityReport } from '../lib/integrity.js';
import { nowMs, sleep, waitUntil } from '../lib/pacer.js';
import { launchRelay } from '../lib/relay.js';
import type { RelayUnderTest, StoreKind } from '../lib/relay.js';
import type { BenchRun, Scenario, ScenarioContext } from '../lib/result.js';

/**
 * `failover`: kill the agent worker mid-answer. Two agent worker processes
 * (`agents/answer-worker.ts`) register with a relay child process; each trial creates a session
 * with `agent: {role: 'assistant'}`, a user (Node SDK over WebSocket) asks `q1`, and once
 * `--kill-after` answer tokens have reached the user the worker holding the lease gets SIGKILL.
 * The lease expires (the relay's `leaseTtlMs`, 500 ms by default), the relay hands the session to
 * the other worker, which marks its takeover, reads the timeline from the committed cursor and
 * sends only the tokens still missing. Measured at the user, from the kill: the replacement's first
 * event (its takeover `control` mark), its first answer token, the first token the user had not
 * seen, and the complete answer; integrity: every token a1.0 … a1.(T-1) once, in order.
 *
 * The baseline, in the same run and against the same relay, is "restart from scratch": the same
 * kill, but the workers (NAIVE=1) ignore what was already streamed and repeat the whole answer —
 * what an agent without a durable, resumable timeline does. Its duplicated tokens are reported
 * (expected > 0), and its latencies, so the ratios show what resuming costs or saves.
 *
 * Before a worker takes part in a measured takeover it has handled one warm-up session, so the
 * measurement is not of a cold process (`--no-warmup` turns this off).
 */

export interface FailoverConfig {
  trials: number;
  killAfter: number;
  tokens: number;
  tokenMs: number;
  store: StoreKind;
  warmup: boolean;
}

type Series = 'lifeline' | 'restart-from-scratch';
const SERIES: readonly Series[] = ['lifeline', 'restart-from-scratch'];
const ROLE = 'assistant';
const METRICS = ['takeover', 'first_token', 'first_new_token', 'answer_complete'] as const;
type Metric = (typeof METRICS)[number];


const load1 = (): number => Math.round((loadavg()[0] ?? 0) * 100) / 100;

/** p50/p95/p99/max of per-trial counts (nearest rank), in the bench JSON's Summary shape. */
function countSummary(values: readonly number[]): Summary {
  const v = [...values].sort((a, b) => a - b);
  const at = (p: number): number => (v.length === 0 ? 0 : v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))]!);
  return { unit: 'events', n: v.length, p50: at(50), p95: at(95), p99: at(99), max: v.length === 0 ? 0 : v[v.length - 1]! };
}

// ---------------------------------------------------------------------------------------------
// Worker processes

interface WorkerProc {
  readonly id: string;
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  readonly exited: boolean;
  /** Killed on purpose by the harness (SIGKILL or stop). */
  readonly killed: boolean;
  stderrTail(): string;
}

/**
 * The agent workers of one series, as child processes (from dist/ when the harness is compiled,
 * else through tsx; the orphan guard preloaded). Every one is killed by `stop()`, and by a
 * process `exit` hook should the harness end abruptly (SIGINT: the clean-up exits the process).
 */
class Fleet {
  readonly #relay: RelayUnderTest;
  readonly #cfg: FailoverConfig;
  readonly #naive: boolean;
  readonly #prefix: string;
  readonly #workers = new Map<string, WorkerProc & { exited: boolean; killed: boolean; gone: Promise<void> }>();
  #count = 0;
  /** Workers that exited without the harness asking them to. */
  readonly unexpectedExits: string[] = [];
  readonly #onExit = (): void => {
    for (const w of this.#workers.values()) if (!w.exited) w.child.kill('SIGKILL');
  };

  constructor(relay: RelayUnderTest, cfg: FailoverConfig, naive: boolean) {
    this.#relay = relay;
    this.#cfg = cfg;
    this.#naive = naive;
    this.#prefix = naive ? 'naive' : 'worker';
    process.on('exit', this.#onExit);
  }

  get(id: string): WorkerProc | undefined {
    return this.#workers.get(id);
  }

  /** Workers running and not killed. */
  get live(): number {
    let n = 0;
    for (const w of this.#workers.values()) if (!w.exited && !w.killed) n++;
    return n;
  }

  /** Starts one more worker and waits (bounded) for its `ready` line. */
  async spawn(signal: AbortSignal): Promise<WorkerProc> {
    const id = `${this.#prefix}-${++this.#count}`;
    const token = await this.#relay.token(ANY_SESSION, id, 'agent');
    const child = spawn(process.execPath, nodeArgs(modulePath('native-free-bench/agents/answer-worker')), {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        NODE_ENV: 'production',
        RELAY_URL: this.#relay.url,
        WORKER_TOKEN: token,
        WORKER_ID: id,
        ANSWER_TOKENS: String(this.#cfg.tokens),
        TOKEN_MS: String(this.#cfg.tokenMs),
        NAIVE: this.#naive ? '1' : '0',
      },
    });
    child.stdin!.on('error', () => undefined);
    let tail = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      tail = (tail + s).slice(-4096);
    });
    const w = {
      id,
      child,
      lines: [] as Record<string, unknown>[],
      exited: false,
      killed: false,
      gone: Promise.resolve(),
      stderrTail: () => tail,
    };
    w.gone = new Promise<void>((res) =>
      child.once('exit', (code, sig) => {
        w.exited = true;
        child.stdin?.destroy();
        if (!w.killed) this.unexpectedExits.push(`${id} (code ${code}, signal ${sig})`);
        res();
      }),
    );
    child.once('error', () => undefined);
    this.#workers.set(id, w);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      try {
        w.lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a line of ours
      }
    });
    const ready = await waitUntil(() => w.exited || w.lines.some((l) => l['ready'] === id), 30_000, signal, 5);
    if (!ready || w.exited) {
      const detail = tail.trim() ? `: ${tail.trim().split('\n').slice(-5).join(' | ')}` : '';
      this.kill(w);
      throw new Error(`agent worker ${id} did not start${detail}`);
    }
    // `ready` is printed once the registration frame is sent; give the relay a moment to file it.
    await sleep(100, signal);
    return w;
  }

  /** What the workers said about a session, and their errors: for failure messages. */
  describe(sid: string): string {
    const parts: string[] = [];
    for (const w of this.#workers.values()) {
      const said = w.lines.filter((l) => l['job'] === sid || l['session'] === sid || l['error'] !== undefined).slice(-3);
      parts.push(`${w.id}${w.exited ? ' (exited)' : ''}: ${said.length ? said.map((l) => JSON.stringify(l)).join(' ') : 'nothing'}`);
    }
    return parts.join('; ');
  }

  /** SIGKILL, now. Returns once the signal is sent (not when the process is gone). */
  kill(w: WorkerProc): void {
    const own = this.#workers.get(w.id);
    if (!own || own.exited) return;
    own.killed = true;
    own.child.kill('SIGKILL');
  }

  /** SIGTERM every worker, SIGKILL after a grace period; resolves once all are gone. */
  async stop(graceMs = 3000): Promise<void> {
    const all = [...this.#workers.values()];
    for (const w of all) {
      if (w.exited) continue;
      w.killed = true;
      w.child.kill('SIGTERM');
    }
    const timer = setTimeout(() => {
      for (const w of all) if (!w.exited) w.child.kill('SIGKILL');
    }, graceMs);
    await Promise.all(all.map((w) => w.gone));
    clearTimeout(timer);
    process.off('exit', this.#onExit);
  }
}

// ---------------------------------------------------------------------------------------------
// Users and trials

interface Seen {
  at: number;
  e: TimelineEvent;
}

const textOf = (e: TimelineEvent): string | undefined => (e.kind === 'text.delta' ? (e.data as { text?: unknown }).text as string | undefined : undefined);

/** The index k of an answer token `a1.<k>` from an agent, else undefined. */
function tokenIndex(e: TimelineEvent): number | undefined {
  if (e.from.role !== 'agent') return undefined;
  const m = /^a1\.(\d+)$/.exec(textOf(e) ?? '');
  return m ? Number(m[1]) : undefined;
}

/** The worker named by a takeover mark, else undefined. */
function takeoverBy(e: TimelineEvent): string | undefined {
  if (e.kind !== 'control') return undefined;
  const d = e.data as { action?: unknown; worker?: unknown };
  return d.action === 'takeover' && typeof d.worker === 'string' ? d.worker : undefined;
}

interface User {
  session: LifelineSession;
  seen: Seen[];
  /** The worker whose takeover mark came first (the session's first holder), once seen. */
  holder(): string | undefined;
  answerTokens(): number;
  close(): void;
}

async function userOf(relay: RelayUnderTest, sid: string): Promise<User> {
  const session = await connect({ url: relay.url, token: await relay.token(sid, 'bench-user', 'user'), device: 'bench-user', connectTimeoutMs: 10_000 });
  const seen: Seen[] = [];
  // The stream, not on('event'): events that arrive together with the welcome are emitted before
  // connect() resolves, so a listener attached afterwards would miss them; the stream keeps them.
  void (async () => {
    try {
      for await (const e of session.stream) seen.push({ at: nowMs(), e });
    } catch {
      // the session closed
    }
  })();
  return {
    session,
    seen,
    holder: () => {
      for (const s of seen) {
        const w = takeoverBy(s.e);
        if (w) return w;
      }
      return undefined;
    },
    answerTokens: () => seen.reduce((n, s) => n + (tokenIndex(s.e) !== undefined ? 1 : 0), 0),
    close: () => session.close(),
  };
}

interface TrialResult {
  metrics: Partial<Record<Metric, number>>;
  /** Answer tokens the user got twice. */
  duplicated: number;
  /** Answer tokens the user had when the holder was killed. */
  seenAtKill: number;
  failure?: string;
  /** The session, its user and the replacement, still open: ended by `finish()`. */
  finish: () => Promise<void>;
}

interface SeriesState {
  name: Series;
  fleet: Fleet;
  integrity: IntegrityTracker;
  unexpected: number;
  recorders: Record<Metric, LatencyRecorder>;
  duplicated: number[];
  seenAtKill: number[];
  failures: string[];
  /** Workers that were meant to get a warm-up session and did not. */
  warmupMisses: string[];
  trialsRun: number;
}

/** Sends `bye` (the worker releases its lease) and closes the user; bounded. */
async function endSession(user: User, worker: WorkerProc | undefined, sid: string, signal: AbortSignal, boundMs: number): Promise<void> {
  try {
    await user.session.sendText('bye');
    if (worker) await waitUntil(() => worker.exited || worker.lines.some((l) => l['done'] === sid), boundMs, signal, 5);
  } catch {
    // the session is being torn down anyway
  } finally {
    user.close();
  }
}

/**
 * A session handed to whichever worker the relay picks (the least loaded), asked one question and
 * let go: the worker has then connected, claimed, read and streamed once. Resolves with the worker
 * that took it and a function that ends the session.
 */
async function warmUpSession(relay: RelayUnderTest, fleet: Fleet, cfg: FailoverConfig, signal: AbortSignal): Promise<{ worker: string | undefined; end: () => Promise<void> }> {
  const sid = await relay.createSession({ agent: { role: ROLE }, metadata: { bench: 'failover', warmup: true } });
  const user = await userOf(relay, sid);
  await waitUntil(() => user.holder() !== undefined, 10_000, signal, 2);
  const worker = user.holder();
  await user.session.sendText('q1');
  await waitUntil(() => user.answerTokens() >= Math.min(3, cfg.tokens), 10_000, signal, 5);
  const answerMs = cfg.tokens * (cfg.tokenMs + 5) + 5000;
  return { worker, end: () => endSession(user, worker ? fleet.get(worker) : undefined, sid, signal, answerMs) };
}

async function runTrial(relay: RelayUnderTest, st: SeriesState, cfg: FailoverConfig, trial: number, signal: AbortSignal): Promise<TrialResult> {
  const sid = await relay.createSession({ agent: { role: ROLE }, metadata: { bench: 'failover', series: st.name, trial } });
  const user = await userOf(relay, sid);
  const answerMs = cfg.tokens * (cfg.tokenMs + 5) + 5000;
  let replacement: string | undefined;
  let killedAt = Infinity;
  let lastMissing: number | undefined;
  let tallied = false;
  /** Integrity and token times, read off what the user saw, in the order it saw it (once). */
  const tally = (): void => {
    if (tallied) return;
    tallied = true;
    const have = new Set<number>();
    for (const s of user.seen) {
      const k = tokenIndex(s.e);
      if (k === undefined) continue;
      const delivery = st.integrity.delivered(trial, k);
      if (delivery === 'duplicate') result.duplicated++;
      if (delivery === 'unexpected') st.unexpected++;
      if (s.at >= killedAt && replacement !== undefined && s.e.from.participant === replacement) {
        result.metrics.first_token ??= s.at - killedAt;
        if (!have.has(k)) result.metrics.first_new_token ??= s.at - killedAt;
      }
      if (!have.has(k)) {
        have.add(k);
        if (have.size === cfg.tokens) lastMissing = s.at;
      }
    }
    if (lastMissing !== undefined && Number.isFinite(killedAt)) result.metrics.answer_complete = Math.max(0, lastMissing - killedAt);
  };
  const result: TrialResult = {
    metrics: {},
    duplicated: 0,
    seenAtKill: 0,
    finish: () => endSession(user, replacement ? st.fleet.get(replacement) : undefined, sid, signal, answerMs),
  };
  const fail = (why: string): TrialResult => {
    tally(); // what did arrive still counts as delivered (or duplicated)
    result.failure = `trial ${trial}: ${why}`;
    return result;
  };
  for (let k = 0; k < cfg.tokens; k++) st.integrity.next(trial);

  if (!(await waitUntil(() => user.holder() !== undefined, 10_000, signal, 2))) return fail(`no worker took the new session within 10 s (${st.fleet.describe(sid)}; the user saw ${user.seen.map((x) => x.e.kind).join(',') || 'nothing'})`);
  const holderId = user.holder()!;
  const holder = st.fleet.get(holderId);
  if (!holder || holder.exited) return fail(`the session went to ${holderId}, which is not a live worker of this series`);
  await user.session.sendText('q1');
  if (!(await waitUntil(() => user.answerTokens() >= cfg.killAfter, 10_000 + cfg.killAfter * cfg.tokenMs * 4, signal, 1))) {
    return fail(`only ${user.answerTokens()} of ${cfg.killAfter} tokens before the kill`);
  }

  killedAt = nowMs();
  st.fleet.kill(holder);
  result.seenAtKill = user.answerTokens();

  const replacementMark = (): Seen | undefined => user.seen.find((s) => s.at >= killedAt && takeoverBy(s.e) !== undefined && takeoverBy(s.e) !== holderId);
  if (!(await waitUntil(() => replacementMark() !== undefined, 15_000, signal, 1))) return fail(`no replacement took over within 15 s of the kill (${st.fleet.describe(sid)})`);
  replacement = takeoverBy(replacementMark()!.e)!;
  const distinct = (): number => new Set(user.seen.map((s) => tokenIndex(s.e)).filter((k) => k !== undefined)).size;
  const completed = await waitUntil(() => distinct() >= cfg.tokens, answerMs, signal, 2);
  // Stragglers: anything still on its way (a duplicate, say) lands in this trial, not the next.
  await sleep(Math.max(150, 5 * cfg.tokenMs), signal);

  result.metrics.takeover = replacementMark()!.at - killedAt;
  if (!completed) return fail(`the answer was not complete ${answerMs} ms after the takeover (${distinct()}/${cfg.tokens} tokens)`);
  tally();
  return result;
}

async function runSeries(relay: RelayUnderTest, name: Series, cfg: FailoverConfig, ctx: ScenarioContext, signal: AbortSignal): Promise<SeriesState> {
  const fleet = new Fleet(relay, cfg, name === 'restart-from-scratch');
  const st: SeriesState = {
    name,
    fleet,
    integrity: new IntegrityTracker(),
    unexpected: 0,
    recorders: Object.fromEntries(METRICS.map((m) => [m, new LatencyRecorder()])) as Record<Metric, LatencyRecorder>,
    duplicated: [],
    seenAtKill: [],
    failures: [],
    warmupMisses: [],
    trialsRun: 0,
  };
  try {
    const first = [await fleet.spawn(signal), await fleet.spawn(signal)];
    if (cfg.warmup) {
      // Two sessions at once: the relay hands them to the two (least loaded) workers.
      const a = await warmUpSession(relay, fleet, cfg, signal);
      const b = await warmUpSession(relay, fleet, cfg, signal);
      const warmed = new Set([a.worker, b.worker]);
      for (const w of first) if (!warmed.has(w.id)) st.warmupMisses.push(`${w.id} (start: the warm-ups went to ${a.worker} and ${b.worker})`);
      await Promise.all([a.end(), b.end()]);
    }
    for (let t = 0; t < cfg.trials && !signal.aborted; t++) {
      st.trialsRun++;
      const r = await runTrial(relay, st, cfg, t, signal);
      try {
        if (r.failure) st.failures.push(r.failure);
        for (const m of METRICS) {
          const v = r.metrics[m];
          if (v !== undefined && !r.failure) st.recorders[m].recordMs(v);
        }
        st.duplicated.push(r.duplicated);
        st.seenAtKill.push(r.seenAtKill);
        if (t < cfg.trials - 1 && fleet.live < 2) {
          // A fresh worker in place of the killed one, warmed up while the survivor still holds this
          // trial's session (so the relay hands the warm-up session to the newcomer).
          const fresh = await fleet.spawn(signal);
          if (cfg.warmup) {
            const w = await warmUpSession(relay, fleet, cfg, signal);
            if (w.worker !== fresh.id) st.warmupMisses.push(`${fresh.id} (trial ${t}: the warm-up went to ${w.worker})`);
            await w.end();
          }
        }
      } finally {
        await r.finish();
      }
      if (t % 5 === 4 || t === cfg.trials - 1) {
        ctx.progress(`failover: ${name} ${t + 1}/${cfg.trials} trials, takeover p50 ${st.recorders.takeover.percentileMs(50)} ms, first new token p50 ${st.recorders.first_new_token.percentileMs(50)} ms`);
      }
    }
  } finally {
    await fleet.stop();
  }
  return st;
}

export async function runFailover(cfg: FailoverConfig, ctx: ScenarioContext): Promise<BenchRun> {
  ctx.progress(`failover: starting relay (store ${cfg.store}) as a child process`);
  const relay = await launchRelay({ store: cfg.store });
  const signal = AbortSignal.any([ctx.signal, relay.child.died]);
  const done: Partial<Record<Series, SeriesState>> = {};
  const loads: string[] = [];
  try {
    for (const name of SERIES) {
      loads.push(`${name} phase ${load1()}`);
      ctx.progress(`failover: ${name}: ${cfg.trials} trials, kill after ${cfg.killAfter} of ${cfg.tokens} tokens`);
      done[name] = await runSeries(relay, name, cfg, ctx, signal);
    }
  } finally {
    await relay.stop();
  }
  const relayDied = relay.child.died.aborted;
  const life = done.lifeline!;
  const naive = done['restart-from-scratch']!;

  const summaries = (st: SeriesState): Record<string, Summary> => Object.fromEntries(METRICS.map((m) => [m, st.recorders[m].summary()]));
  const results = summaries(life);
  const baseline: Record<string, Summary> = { ...summaries(naive), duplicated: countSummary(naive.duplicated) };
  const ratios: Record<string, number | null> = {};
  for (const m of METRICS) Object.assign(ratios, ratiosOf(m, results[m], baseline[m]));
  const curves: BenchRun['curves'] = {
    lifeline: Object.fromEntries(METRICS.map((m) => [m, life.recorders[m].curve()])),
    'restart-from-scratch': Object.fromEntries(METRICS.map((m) => [m, naive.recorders[m].curve()])),
  };

  const report = life.integrity.report();
  const naiveReport: IntegrityReport = naive.integrity.report();
  const notes: string[] = [];
  let ok = true;
  if (!integrityOk(report, life.unexpected)) {
    ok = false;
    notes.push(`lifeline integrity failed: lost ${report.lost}, duplicated ${report.duplicated}, reordered ${report.reordered}, unexpected ${life.unexpected}`);
  }
  for (const st of [life, naive]) {
    if (st.failures.length > 0) {
      ok = false;
      notes.push(`${st.name}: ${st.failures.length} of ${st.trialsRun} trial(s) failed: ${st.failures.slice(0, 3).join('; ')}${st.failures.length > 3 ? '; …' : ''}`);
    }
    if (st.fleet.unexpectedExits.length > 0) {
      ok = false;
      notes.push(`${st.name}: worker(s) exited on their own: ${st.fleet.unexpectedExits.join(', ')}`);
    }
    if (st.warmupMisses.length > 0) notes.push(`${st.name}: not warmed up: ${st.warmupMisses.join(', ')}`);
  }
  if (relayDied) {
    ok = false;
    notes.push(`the relay died: ${relay.child.stderrTail().trim().split('\n').slice(-3).join(' | ')}`);
  }
  if (life.trialsRun < cfg.trials) ok = false;
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const atKill = countSummary([...life.seenAtKill, ...naive.seenAtKill]);
  notes.push(
    `restart-from-scratch: ${sum(naive.duplicated)} duplicated answer tokens over ${naive.duplicated.length} trials (per trial p50 ${countSummary(naive.duplicated).p50}, max ${countSummary(naive.duplicated).max}); ` +
      `its integrity: sent ${naiveReport.sent}, delivered ${naiveReport.delivered}, lost ${naiveReport.lost}, duplicated ${naiveReport.duplicated}, reordered ${naiveReport.reordered}` +
      (sum(naive.duplicated) === 0 && naive.duplicated.length > 0 ? ' — no duplicates, which the naive replay should produce: suspicious' : ''),
  );
  notes.push(`answer tokens at the user when the holder was killed: p50 ${atKill.p50}, max ${atKill.max} (kill after ${cfg.killAfter}); lifeline duplicated ${report.duplicated}, lost ${report.lost}`);
  notes.push(
    `takeover and first_token are floored by the relay's lease TTL (leaseTtlMs, default 500 ms; \`lifeline serve\` has no flag for it): the lease expires that long after the holder's connections close, then the session is assigned, connected, claimed and marked. ` +
      `Both series share that path, so takeover ratios near 1 are expected; first_new_token and answer_complete show what resuming from the timeline saves over repeating the answer.`,
  );
  notes.push(`1-minute load average before the ${loads.join(', before the ')} (${cpus().length} CPUs)`);

  return {
    json: {
      scenario: 'failover',
      config: {
        trials: cfg.trials,
        killAfter: cfg.killAfter,
        tokens: cfg.tokens,
        tokenMs: cfg.tokenMs,
        store: cfg.store,
        warmup: cfg.warmup,
        leaseTtlMs: 500,
        relayBuild: relay.build,
      },
      results,
      baselines: { 'restart-from-scratch': baseline },
      ratios,
      integrity: report,
    },
    curves,
    series: ['lifeline', 'restart-from-scratch'],
    ok,
    notes,
  };
}

export const failoverScenario: Scenario = {
  name: 'failover',
  summary: 'SIGKILL the agent worker mid-answer: kill → replacement takeover and next token at the user, vs restarting the answer from scratch',
  configure(cmd: Command) {
    cmd
      .option('--trials <n>', 'kills per series', whole(1, 10_000), 30)
      .option('--kill-after <n>', 'answer tokens the user has received when the holder is killed', whole(1, 10_000), 10)
      .option('--tokens <n>', 'tokens per answer (must exceed --kill-after)', whole(2, 10_000), 40)
      .option('--token-ms <ms>', 'pause between answer tokens', whole(0, 10_000), 20)
      .option('--no-warmup', 'do not give each worker a warm-up session before it takes over')
      .addOption(new Option('--store <kind>', 'relay store').choices(['sqlite', 'memory']).default('sqlite'));
  },
  run(o, ctx) {
    const cfg: FailoverConfig = {
      trials: o['trials'] as number,
      killAfter: o['killAfter'] as number,
      tokens: o['tokens'] as number,
      tokenMs: o['tokenMs'] as number,
      store: o['store'] as StoreKind,
      warmup: o['warmup'] !== false,
    };
    if (cfg.killAfter >= cfg.tokens) return Promise.reject(new Error(`--kill-after (${cfg.killAfter}) must be below --tokens (${cfg.tokens})`));
    return runFailover(cfg, ctx);
  },
};
