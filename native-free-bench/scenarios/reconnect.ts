import { InvalidArgumentError, Option } from 'commander';
import type { Command } from 'commander';
import { whole } from '../lib/options.js';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession, StateChange } from '../../src/sdk/index.js';
import { LatencyRecorder, ratiosOf } from '../lib/histogram.js';
import { IntegrityTracker, integrityOk } from '../lib/integrity.js';
import { nowMs, sleep, waitUntil } from '../lib/pacer.js';
import { launchRelay } from '../lib/relay.js';
import type { RelayUnderTest, StoreKind } from '../lib/relay.js';
import type { BenchRun, Scenario, ScenarioContext } from '../lib/result.js';
import { proxiedRtc } from '../netsim/index.js';
import type { ProxiedRtc } from '../netsim/index.js';

/**
 * `reconnect`: a user on WebRTC through a netsim UDP path, an agent streaming tokens to it. Each
 * trial blackholes the path while tokens flow, restores it (or switches it to new ports), and
 * measures (a) detection: blackhole → the client reports the loss, (b) restart: path restored →
 * first event delivered afterwards, and (c) integrity over every token of every trial. Lifeline
 * repairs the living peer connection by ICE restart; the baseline, in the same run, is the full
 * reconnect (new peer connection + resume from the last offset) that other stacks fall back to.
 */

export interface ReconnectConfig {
  trials: number;
  rtts: number[];
  blackholeMs: number;
  rate: number;
  mode: 'restore' | 'switch';
  store: StoreKind;
}

type Method = 'restart' | 'full-reconnect';

interface MethodResult {
  detection: LatencyRecorder;
  restart: LatencyRecorder;
  rtt: LatencyRecorder;
  failures: number;
  fullReconnects: number;
}

function list(value: string): number[] {
  const out = value.split(',').map((v) => Number(v.trim()));
  if (out.length === 0 || out.some((n) => !Number.isFinite(n) || n < 0 || n > 500)) throw new InvalidArgumentError('a comma-separated list of RTTs in ms (0–500)');
  return out;
}


/** Waits for the first state change matching `pred` after `since`; resolves its time, or undefined. */
function nextState(states: StateChange[], since: number, pred: (c: StateChange) => boolean, timeoutMs: number, signal: AbortSignal): Promise<number | undefined> {
  return waitUntil(() => states.some((c) => c.at >= since && pred(c)), timeoutMs, signal, 2).then((ok) =>
    ok ? states.find((c) => c.at >= since && pred(c))!.at : undefined,
  );
}

async function runMethod(relay: RelayUnderTest, method: Method, rtt: number, cfg: ReconnectConfig, integrity: IntegrityTracker, stream: number, ctx: ScenarioContext): Promise<MethodResult> {
  const result: MethodResult = { detection: new LatencyRecorder(), restart: new LatencyRecorder(), rtt: new LatencyRecorder(), failures: 0, fullReconnects: 0 };
  const net: ProxiedRtc = proxiedRtc({ delayMs: rtt / 2, noRestart: method === 'full-reconnect' });
  const session = await relay.createSession({ metadata: { bench: 'reconnect', method, rtt } });
  const label = `${method}@${rtt}ms`;
  let user: LifelineSession | undefined;
  let agent: LifelineSession | undefined;
  let sending = true;
  try {
    user = await connect({
      url: relay.url,
      token: await relay.token(session, 'user', 'user'),
      transport: net.transport,
      restartTimeoutMs: 3000,
      connectTimeoutMs: 3000,
      reconnect: { nextRetryDelayMs: () => 20 },
    });
    agent = await connect({ url: relay.url, token: await relay.token(session, 'agent', 'agent'), resume: 'now' });
    const states: StateChange[] = [];
    user.on('state', (c) => states.push({ ...c, at: nowMs() }));
    // The first event delivered after the path came back (not the latest: a backlog follows it).
    let restoredAt = Infinity;
    let firstAfterRestore = 0;
    user.on('event', (e) => {
      const at = nowMs();
      if (firstAfterRestore === 0 && at > restoredAt) firstAfterRestore = at;
      if (e.kind === 'text.delta') integrity.delivered(stream, (e.data as { n: number }).n);
    });
    // The agent streams for the whole run, at `rate` tokens/s.
    const sender = (async () => {
      while (sending && !ctx.signal.aborted) {
        const n = integrity.next(stream);
        void agent!.append('text.delta', { text: ' tok', n }).catch(() => undefined);
        await sleep(1000 / cfg.rate);
      }
    })();
    await sleep(300, ctx.signal);
    for (let t = 0; t < cfg.trials && !ctx.signal.aborted; t++) {
      if (user.rttMs !== undefined) result.rtt.recordMs(user.rttMs);
      const start = nowMs();
      net.blackhole(true);
      const detected = await nextState(states, start, (c) => c.state === 'reconnecting', 5000, ctx.signal);
      if (detected === undefined) {
        result.failures++;
        net.blackhole(false);
        continue;
      }
      result.detection.recordMs(detected - start);
      const restoreAt = Math.max(start + cfg.blackholeMs, detected + 50);
      await sleep(Math.max(0, restoreAt - nowMs()), ctx.signal);
      if (cfg.mode === 'switch') await net.pathSwitch();
      firstAfterRestore = 0;
      const restored = nowMs();
      restoredAt = restored;
      net.blackhole(false);
      const healed = await waitUntil(() => firstAfterRestore > 0, 10_000, ctx.signal, 1);
      restoredAt = Infinity;
      if (!healed) {
        result.failures++;
      } else {
        result.restart.recordMs(firstAfterRestore - restored);
      }
      await nextState(states, start, (c) => c.state === 'restarted' || c.state === 'resumed', 10_000, ctx.signal);
      if (states.some((c) => c.at >= start && c.state === 'resumed')) result.fullReconnects++;
      await sleep(150, ctx.signal);
      if (t % 10 === 9) ctx.progress(`reconnect: ${label} ${t + 1}/${cfg.trials} trials, restart p50 ${result.restart.percentileMs(50)} ms`);
    }
    sending = false;
    await sender;
    await agent.flush();
    await waitUntil(() => integrity.complete, 5000, ctx.signal, 10);
  } finally {
    sending = false;
    user?.close();
    agent?.close();
    await net.close();
  }
  return result;
}

export async function runReconnect(cfg: ReconnectConfig, ctx: ScenarioContext): Promise<BenchRun> {
  ctx.progress(`reconnect: starting relay (store ${cfg.store}) as a child process`);
  const relay = await launchRelay({ store: cfg.store, extraArgs: ['--rtc-ice-host', '127.0.0.1'] });
  const integrity = new IntegrityTracker();
  const results: Record<string, ReturnType<LatencyRecorder['summary']>> = {};
  const baseline: Record<string, ReturnType<LatencyRecorder['summary']>> = {};
  const ratios: Record<string, number | null> = {};
  const notes: string[] = [];
  const curves: BenchRun['curves'] = { lifeline: {}, 'full-reconnect': {} };
  let ok = true;
  try {
    let stream = 0;
    for (const rtt of cfg.rtts) {
      const byMethod: Partial<Record<Method, MethodResult>> = {};
      for (const method of ['restart', 'full-reconnect'] as const) {
        ctx.progress(`reconnect: ${method} at RTT ${rtt} ms, ${cfg.trials} trials`);
        const r = await runMethod(relay, method, rtt, cfg, integrity, stream++, ctx);
        byMethod[method] = r;
        const target = method === 'restart' ? results : baseline;
        const series = method === 'restart' ? 'lifeline' : 'full-reconnect';
        target[`detection_rtt${rtt}`] = r.detection.summary();
        target[`restart_rtt${rtt}`] = r.restart.summary();
        curves[series]![`restart_rtt${rtt}`] = r.restart.curve();
        if (method === 'restart') target[`measured_rtt_rtt${rtt}`] = r.rtt.summary();
        if (r.failures > 0) {
          ok = false;
          notes.push(`${method} at RTT ${rtt} ms: ${r.failures} trial(s) did not heal within the bound`);
        }
        if (method === 'restart' && r.fullReconnects > 0) notes.push(`restart at RTT ${rtt} ms: ${r.fullReconnects} trial(s) needed a full reconnect`);
      }
      Object.assign(ratios, ratiosOf(`restart_rtt${rtt}`, byMethod.restart?.restart.summary(), byMethod['full-reconnect']?.restart.summary()));
      const p95 = byMethod.restart?.restart.percentileMs(95) ?? Infinity;
      notes.push(`RTT ${rtt} ms: restart p95 ${p95} ms (target ≤ 2·RTT + 10 = ${2 * rtt + 10} ms: ${p95 <= 2 * rtt + 10 ? 'met' : 'missed'}), detection p95 ${byMethod.restart?.detection.percentileMs(95)} ms (target ≤ 300 ms)`);
    }
  } finally {
    await relay.stop();
  }
  const report = integrity.report();
  if (!integrityOk(report)) ok = false;
  return {
    json: {
      scenario: 'reconnect',
      config: { trials: cfg.trials, rtts: cfg.rtts.join(','), blackholeMs: cfg.blackholeMs, rate: cfg.rate, mode: cfg.mode, store: cfg.store, relayBuild: relay.build },
      results,
      baselines: { 'full-reconnect': baseline },
      ratios,
      integrity: report,
    },
    curves,
    series: ['lifeline', 'full-reconnect'],
    ok,
    notes,
  };
}

export const reconnectScenario: Scenario = {
  name: 'reconnect',
  summary: 'blackhole or switch a WebRTC path mid-stream: detection and ICE-restart times vs a full reconnect',
  configure(cmd: Command) {
    cmd
      .option('--trials <n>', 'trials per RTT and method', whole(1, 10_000), 100)
      .option('--rtt <list>', 'simulated round-trip times in ms', list, [0, 20, 50])
      .option('--blackhole-ms <ms>', 'how long each blackhole lasts (at least until detected)', whole(50, 60_000), 400)
      .option('--rate <n>', 'tokens per second from the agent', whole(1, 5000), 100)
      .addOption(new Option('--mode <mode>', 'restore the same path, or switch to new ports').choices(['restore', 'switch']).default('restore'))
      .addOption(new Option('--store <kind>', 'relay store').choices(['sqlite', 'memory']).default('memory'));
  },
  run(o, ctx) {
    return runReconnect(
      {
        trials: o['trials'] as number,
        rtts: o['rtt'] as number[],
        blackholeMs: o['blackholeMs'] as number,
        rate: o['rate'] as number,
        mode: o['mode'] as 'restore' | 'switch',
        store: o['store'] as StoreKind,
      },
      ctx,
    );
  },
};
