import { LatencyRecorder } from './histogram.js';
import { IntegrityTracker } from './integrity.js';
import { mapLimit, nowMs, pace, waitUntil } from './pacer.js';

/**
 * One measured phase of a streaming scenario, the same for the system under test and for every
 * baseline: open N channels, send at a fixed rate per channel (open loop) for warm-up + duration,
 * wait for stragglers, close. Latency is receive time minus the send timestamp carried in the
 * message; only messages sent after the warm-up are recorded, but integrity counts every one.
 */

/** What travels: a per-stream sequence number and the send time (performance.timeOrigin + now()). */
export interface StampedMessage {
  s: number;
  t: number;
  [extra: string]: unknown;
}

export interface Channel {
  /** Sends one message; `measured` is false during warm-up. Must not throw. */
  send(msg: StampedMessage, measured: boolean): void;
  close(): void;
}

export interface ChannelPath {
  /** Series name in the output: "relay", "ws-echo", … */
  name: string;
  /** Opens channel `i`; `deliver` must be called with each message as the receiver gets it. */
  open(i: number, deliver: (msg: unknown) => void): Promise<Channel>;
}

export interface PhaseOptions {
  streams: number;
  ratePerSec: number;
  warmupMs: number;
  durationMs: number;
  /** Longest wait for undelivered messages after the last send. */
  drainMs: number;
  /** Builds message k of a stream around its stamp (payload beyond `s` and `t`). */
  body: (k: number) => Record<string, unknown>;
  signal: AbortSignal;
  progress: (line: string) => void;
  /** Channels opened concurrently (default 8). */
  openConcurrency?: number;
  /** Called once when the warm-up ends and measuring starts. */
  onMeasureStart?: () => void;
}

export interface PhaseResult {
  latency: LatencyRecorder;
  integrity: IntegrityTracker;
  /** Milliseconds spent waiting for the last deliveries after sending stopped. */
  drainedMs: number;
  /** True when everything sent was delivered before the drain deadline. */
  drained: boolean;
}

function isStamped(v: unknown): v is StampedMessage {
  return typeof v === 'object' && v !== null && typeof (v as StampedMessage).s === 'number' && typeof (v as StampedMessage).t === 'number';
}

export async function runPhase(path: ChannelPath, opts: PhaseOptions): Promise<PhaseResult> {
  const latency = new LatencyRecorder();
  const integrity = new IntegrityTracker();
  let measureFrom = Infinity;
  const deliverTo =
    (i: number) =>
    (msg: unknown): void => {
      const at = nowMs();
      if (!isStamped(msg)) {
        integrity.delivered(i, -1);
        return;
      }
      const r = integrity.delivered(i, msg.s);
      if ((r === 'ok' || r === 'reordered') && msg.t >= measureFrom) latency.recordMs(at - msg.t);
    };

  opts.progress(`${path.name}: opening ${opts.streams} channel(s)`);
  const ids = Array.from({ length: opts.streams }, (_, i) => i);
  const channels: Channel[] = [];
  try {
    await mapLimit(ids, opts.openConcurrency ?? 8, async (i) => {
      if (opts.signal.aborted) throw new Error(`aborted while opening: ${String(opts.signal.reason ?? '')}`);
      channels[i] = await path.open(i, deliverTo(i));
    });

    const total = opts.warmupMs + opts.durationMs;
    const started = nowMs();
    measureFrom = started + opts.warmupMs;
    const measureStart = opts.onMeasureStart && setTimeout(opts.onMeasureStart, opts.warmupMs);
    const ticker = setInterval(() => {
      const s = latency.summary();
      const secs = ((nowMs() - started) / 1000).toFixed(0);
      opts.progress(
        `${path.name}: ${secs}/${(total / 1000).toFixed(0)} s  sent ${integrity.sent}  delivered ${integrity.deliveredCount}` +
          (s.n > 0 ? `  p50 ${s.p50} ms  p99 ${s.p99} ms` : '  (warm-up)'),
      );
    }, 1000);
    try {
      await pace({
        streams: opts.streams,
        ratePerSec: opts.ratePerSec,
        durationMs: total,
        signal: opts.signal,
        send: (i, k) => {
          const s = integrity.next(i);
          const t = nowMs();
          channels[i]!.send({ ...opts.body(k), s, t }, t >= measureFrom);
        },
      });
    } finally {
      clearInterval(ticker);
      clearTimeout(measureStart);
    }
    const drainStart = nowMs();
    const drained = await waitUntil(() => integrity.complete, opts.drainMs, opts.signal);
    const drainedMs = Math.round(nowMs() - drainStart);
    const r = integrity.report();
    opts.progress(`${path.name}: done  sent ${r.sent}  delivered ${r.delivered}  lost ${r.lost}  (drain ${drainedMs} ms)`);
    return { latency, integrity, drainedMs, drained };
  } finally {
    for (const c of channels) c?.close();
  }
}
