import { cpus, loadavg } from 'node:os';
import { Option } from 'commander';
import type { Command } from 'commander';
import { RtpHeader, RtpPacket } from 'werift';
import type { RTCPeerConnection, RTCRtpTransceiver } from 'werift';
import { EVENT_KINDS, encodeFrame, encodedSize } from '../../src/protocol/index.js';
import { ExponentialBackoff, connect } from '../../src/sdk/index.js';
import type { LifelineSession } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { closePeer, localAnswer, localOffer, loopbackPeer } from '../baselines/werift-peer.js';
import { LatencyRecorder, ratiosOf } from '../lib/histogram.js';
import type { Summary } from '../lib/histogram.js';
import { IntegrityTracker } from '../lib/integrity.js';
import type { IntegrityReport } from '../lib/integrity.js';
import { decimal, whole } from '../lib/options.js';
import { mapLimit, nowMs, sleep, waitUntil } from '../lib/pacer.js';
import { Problems } from '../lib/relay-clients.js';
import { launchRelay } from '../lib/relay.js';
import type { RelayUnderTest, StoreKind } from '../lib/relay.js';
import type { BenchRun, Scenario, ScenarioContext } from '../lib/result.js';
import { udpReceiveBufferErrors } from '../lib/udp-stats.js';
import { processCpuMs } from '../lib/proc-cpu.js';
import { commitStats, commitStatsBetween } from '../lib/commit-stats.js';
import type { CommitStats } from '../lib/commit-stats.js';

/**
 * `audio`: N concurrent full-duplex voice sessions through the relay. In each session a user and
 * an agent, both on WebRTC, send each other 20 ms Opus frames (50 packets/s each way) while the
 * agent also streams text tokens (`--token-rate`). Reported:
 *
 *   rtp_latency      send → receive of every RTP frame, both directions, through the relay's live
 *                    forwarding (one hop through the relay process)
 *   timeline_latency user frame sent → the agent receives it as an `audio.frame` timeline event
 *                    (relay: checks, group commit to the store, delivery on the data channel)
 *   jitter           RFC 3550 interarrival jitter of each RTP stream, sampled at every packet
 *   token_latency    agent → user text.delta
 *   integrity        RTP frames (both directions): sent, delivered, lost, duplicated, reordered
 *
 * Baseline in the same run: `werift-direct`, the same N × 2 RTP streams at the same pace between
 * bare werift peer connections with no relay in between (one hop, peer to peer, in this process).
 * The relay's added latency is relay − baseline. Relay CPU per session comes from the relay
 * child's /proc/PID/stat over the measured window. The Opus packets are valid Opus framing (a
 * 20 ms CELT TOC, ~32 kbit/s) with filler payload: the relay checks framing, never decodes, and
 * the harness loads no WASM.
 */

interface AudioConfig {
  sessions: number;
  duration: number;
  warmup: number;
  drain: number;
  tokenRate: number;
  store: StoreKind;
  sqliteSync: 'full' | 'normal';
  baseline: boolean;
  /** Sessions record audio in their timelines (default); false: forwarded live only. */
  record: boolean;
  /** User devices read every kind but `audio.frame` (they play the agent from RTP). */
  userSkipsAudio: boolean;
  cpuProf: string | undefined;
}

const FRAME_MS = 20;
const TICKS_PER_FRAME = 960;
/** Added latency the issue asks us to stay under, at p99. */
const TARGET_ADDED_P99_MS = 10;

/** Valid Opus framing: TOC 0xF8 (CELT fullband, 20 ms, mono, one frame) and 79 filler bytes. */
function opusLikeFrame(k: number): Uint8Array {
  const p = new Uint8Array(80);
  p[0] = 0xf8;
  for (let i = 1; i < p.length; i++) p[i] = (k * 131 + i * 17) & 0xff;
  return p;
}

interface Stream {
  /** Send time (performance.now) by sequence number. */
  sentAt: Map<number, number>;
  measuredFrom: number;
  lastTransit: number | undefined;
  jitter: number;
}

/** Latency and loss bookkeeping shared by the relay and baseline runs. */
class Meter {
  readonly rtp = new LatencyRecorder();
  readonly timeline = new LatencyRecorder();
  readonly jitter = new LatencyRecorder();
  readonly tokens = new LatencyRecorder();
  readonly integrity = new IntegrityTracker();
  /** Timeline events the user devices received while measuring: all, and `audio.frame` of them. */
  userEvents = 0;
  userAudioEvents = 0;
  /** Their size as protocol frames (what the data channel carried, before batching and SCTP). */
  userEventBytes = 0;
  readonly #streams: Stream[] = [];
  /** Stream index → integrity sequence base (integrity numbers from 0). */
  measuring = false;

  stream(i: number): Stream {
    let s = this.#streams[i];
    if (!s) this.#streams[i] = s = { sentAt: new Map(), measuredFrom: -1, lastTransit: undefined, jitter: 0 };
    return s;
  }

  sent(i: number, seq: number): void {
    const s = this.stream(i);
    const at = performance.now();
    s.sentAt.set(seq, at);
    if (this.measuring) {
      if (s.measuredFrom < 0) s.measuredFrom = seq;
      this.integrity.next(i);
    }
  }

  received(i: number, seq: number): void {
    const s = this.stream(i);
    const sentAt = s.sentAt.get(seq);
    if (sentAt === undefined) return;
    const transit = performance.now() - sentAt;
    if (s.lastTransit !== undefined) s.jitter += (Math.abs(transit - s.lastTransit) - s.jitter) / 16;
    s.lastTransit = transit;
    if (s.measuredFrom < 0 || seq < s.measuredFrom) return;
    this.integrity.delivered(i, seq - s.measuredFrom);
    this.rtp.recordMs(transit);
    this.jitter.recordMs(s.jitter);
  }

  viaTimeline(i: number, seq: number): void {
    const s = this.stream(i);
    const sentAt = s.sentAt.get(seq);
    if (sentAt === undefined || s.measuredFrom < 0 || seq < s.measuredFrom) return;
    this.timeline.recordMs(performance.now() - sentAt);
  }

  destroy(): void {
    for (const r of [this.rtp, this.timeline, this.jitter, this.tokens]) r.destroy();
  }
}

/** One full-duplex pair of endpoints: stream 2i is user → agent, 2i+1 agent → user. */
interface Duplex {
  sendUser(seq: number, payload: Uint8Array): void;
  sendAgent(seq: number, payload: Uint8Array): void;
  sendToken?(t: number): void;
  close(): void;
}

async function relayDuplex(relay: RelayUnderTest, i: number, m: Meter, problems: Problems, record: boolean, userSkipsAudio: boolean): Promise<Duplex> {
  const sid = await relay.createSession({ metadata: { bench: 'audio', recordAudio: record } });
  const transport = webrtcTransport({ iceHosts: ['127.0.0.1'] });
  const open = async (participant: string, role: 'user' | 'agent'): Promise<LifelineSession> => {
    const kinds = role === 'user' && userSkipsAudio ? { kinds: EVENT_KINDS.filter((k) => k !== 'audio.frame') } : {};
    const s = await connect({ url: relay.url, token: await relay.token(sid, participant, role), transport, resume: 'now', ...kinds, reconnect: new ExponentialBackoff({ giveUpAfterMs: 5000 }) });
    s.on('state', (c) => c.state === 'reconnecting' && problems.add(`${role} reconnecting (${c.mode ?? ''}: ${c.reason ?? ''})`));
    return s;
  };
  const user = await open('user', 'user');
  const agent = await open('agent', 'agent');
  const up = 2 * i;
  const down = 2 * i + 1;
  // A full reconnect brings a new link with new tracks: listen on whichever link is current.
  const listen = (s: LifelineSession, stream: number): void => {
    let bound: LifelineSession['media'];
    let off = (): void => {};
    const bind = (): void => {
      if (s.media === bound) return;
      off();
      bound = s.media;
      off = bound ? bound.onPacket((kind, p) => kind === 'audio' && m.received(stream, p.sequenceNumber)) : () => {};
    };
    bind();
    s.on('state', bind);
  };
  listen(agent, up);
  listen(user, down);
  agent.on('event', (e) => {
    if (e.kind === 'audio.frame' && e.from.role === 'user') m.viaTimeline(up, (e.data as { rtpSeq: number }).rtpSeq);
  });
  user.on('event', (e) => {
    if (m.measuring) {
      m.userEvents++;
      m.userEventBytes += encodedSize(encodeFrame({ type: 'event', event: e }));
      if (e.kind === 'audio.frame') m.userAudioEvents++;
    }
    if (e.kind !== 'text.delta') return;
    const t = Number((e.data as { text: string }).text);
    if (m.measuring && Number.isFinite(t)) m.tokens.recordMs(nowMs() - t);
  });
  const frame = (seq: number, payload: Uint8Array): { sequenceNumber: number; timestamp: number; marker: boolean; payload: Uint8Array } => ({
    sequenceNumber: seq,
    timestamp: seq * TICKS_PER_FRAME,
    marker: seq === 0,
    payload,
  });
  return {
    sendUser(seq, payload) {
      m.sent(up, seq);
      if (!user.media?.send('audio', frame(seq, payload))) problems.add('user could not send');
    },
    sendAgent(seq, payload) {
      m.sent(down, seq);
      if (!agent.media?.send('audio', frame(seq, payload))) problems.add('agent could not send');
    },
    sendToken(t) {
      agent.sendText(String(t)).catch(() => undefined);
    },
    close() {
      user.close();
      agent.close();
    },
  };
}

function audioOf(pc: RTCPeerConnection): RTCRtpTransceiver {
  return pc.getTransceivers().find((t) => t.kind === 'audio')!;
}

async function directDuplex(i: number, m: Meter): Promise<Duplex> {
  const a = loopbackPeer();
  const b = loopbackPeer();
  a.addTransceiver('audio', { direction: 'sendrecv' });
  const answered = new Promise<void>((resolve) => b.onTransceiverAdded.subscribe(() => resolve()));
  const offer = await localOffer(a);
  const answer = await localAnswer(b, offer);
  await answered;
  audioOf(b).setDirection('sendrecv');
  await a.setRemoteDescription({ type: 'answer', sdp: answer });
  const connected = (pc: RTCPeerConnection): Promise<boolean> => waitUntil(() => pc.connectionState === 'connected', 10_000);
  if (!(await connected(a)) || !(await connected(b))) throw new Error('werift-direct: peers did not connect');
  const up = 2 * i;
  const down = 2 * i + 1;
  const subs = [
    b.dtlsTransports[0]!.onRtp.subscribe((rtp) => m.received(up, rtp.header.sequenceNumber)),
    a.dtlsTransports[0]!.onRtp.subscribe((rtp) => m.received(down, rtp.header.sequenceNumber)),
  ];
  const send = (pc: RTCPeerConnection, seq: number, payload: Uint8Array): void => {
    const header = new RtpHeader({ sequenceNumber: seq & 0xffff, timestamp: (seq * TICKS_PER_FRAME) >>> 0, marker: seq === 0 });
    void audioOf(pc).sender.sendRtp(new RtpPacket(header, Buffer.from(payload))).catch(() => undefined);
  };
  return {
    sendUser(seq, payload) {
      m.sent(up, seq);
      send(a, seq, payload);
    },
    sendAgent(seq, payload) {
      m.sent(down, seq);
      send(b, seq, payload);
    },
    close() {
      for (const s of subs) s.unSubscribe();
      void closePeer(a);
      void closePeer(b);
    },
  };
}

/** Sends every pair's frames on one 20 ms clock (drift-corrected) for warm-up + duration, then drains. */
async function drive(pairs: Duplex[], m: Meter, cfg: AudioConfig, ctx: ScenarioContext, name: string): Promise<{ elapsedMs: number; measuredFrom: number; measuredTo: number }> {
  const frames = Array.from({ length: 50 }, (_, k) => opusLikeFrame(k));
  const total = Math.round(((cfg.warmup + cfg.duration) * 1000) / FRAME_MS);
  const warmFrames = Math.round((cfg.warmup * 1000) / FRAME_MS);
  const tokenEvery = cfg.tokenRate > 0 ? Math.max(1, Math.round(1000 / cfg.tokenRate / FRAME_MS)) : Infinity;
  const start = performance.now();
  let measuredFrom = 0;
  for (let k = 0; k < total && !ctx.signal.aborted; k++) {
    if (k === warmFrames) {
      m.measuring = true;
      measuredFrom = performance.now();
    }
    const payload = frames[k % frames.length]!;
    for (const p of pairs) {
      p.sendUser(k, payload);
      p.sendAgent(k, payload);
      if (k % tokenEvery === 0) p.sendToken?.(nowMs());
    }
    if (k % 50 === 0) ctx.progress(`${name}: ${(k / 50).toFixed(0)}/${cfg.warmup + cfg.duration} s`);
    const due = start + (k + 1) * FRAME_MS;
    await sleep(due - performance.now());
  }
  const measuredTo = performance.now();
  m.measuring = false;
  await waitUntil(() => m.integrity.complete, cfg.drain * 1000, ctx.signal, 20);
  return { elapsedMs: performance.now() - start, measuredFrom, measuredTo };
}

async function runAudio(cfg: AudioConfig, ctx: ScenarioContext): Promise<BenchRun> {
  const notes: string[] = [];
  const problems = new Problems();
  const loadAtStart = Math.round(loadavg()[0]! * 100) / 100;
  const udpBefore = udpReceiveBufferErrors();

  let baseline: Meter | undefined;
  if (cfg.baseline) {
    baseline = new Meter();
    ctx.progress(`werift-direct: connecting ${cfg.sessions} pairs`);
    const pairs = await mapLimit(Array.from({ length: cfg.sessions }, (_, i) => i), 8, (i) => directDuplex(i, baseline!));
    try {
      await drive(pairs, baseline, { ...cfg, tokenRate: 0 }, ctx, 'werift-direct');
    } finally {
      for (const p of pairs) p.close();
    }
    await sleep(500);
  }

  const relay = await launchRelay({
    store: cfg.store,
    sqliteSync: cfg.sqliteSync,
    extraArgs: ['--rtc-ice-host', '127.0.0.1'],
    ...(cfg.cpuProf ? { nodeFlags: ['--cpu-prof', '--cpu-prof-dir', cfg.cpuProf] } : {}),
  });
  const m = new Meter();
  let cpuPerSession: number | undefined;
  let harnessCpu: number | undefined;
  let commits: CommitStats | undefined;
  try {
    ctx.progress(`relay: connecting ${cfg.sessions} sessions (user + agent on WebRTC)`);
    const pairs = await mapLimit(Array.from({ length: cfg.sessions }, (_, i) => i), 4, (i) => relayDuplex(relay, i, m, problems, cfg.record, cfg.userSkipsAudio));
    try {
      const before = await commitStats(relay.url);
      let cpuAt: number | undefined;
      const cpuWatch = setInterval(() => {
        if (m.measuring && cpuAt === undefined) cpuAt = processCpuMs(relay.child.pid);
      }, 5);
      const harnessBefore = process.cpuUsage();
      const t = await drive(pairs, m, cfg, ctx, 'relay');
      clearInterval(cpuWatch);
      const cpuEnd = processCpuMs(relay.child.pid);
      const harnessUsed = process.cpuUsage(harnessBefore);
      harnessCpu = Math.round(((harnessUsed.user + harnessUsed.system) / 1e6 / (t.elapsedMs / 1000)) * 1000) / 10;
      const after = await commitStats(relay.url);
      commits = commitStatsBetween(before, after);
      if (cpuAt !== undefined && cpuEnd !== undefined) {
        // CPU seconds per wall second over the measured window (plus the drain), per session, in %.
        const wallSeconds = Math.max(1, t.measuredTo - t.measuredFrom) / 1000;
        cpuPerSession = Math.round(((cpuEnd - cpuAt) / 1000 / wallSeconds / cfg.sessions) * 10000) / 100;
      }
    } finally {
      for (const p of pairs) p.close();
    }
  } finally {
    await relay.stop();
  }

  const udpAfter = udpReceiveBufferErrors();
  const integrity: IntegrityReport = m.integrity.report();
  const results: Record<string, Summary> = {
    rtp_latency: m.rtp.summary(),
    timeline_latency: m.timeline.summary(),
    jitter: m.jitter.summary(),
    token_latency: m.tokens.summary(),
  };
  const baselines: Record<string, Record<string, Summary>> = {};
  if (baseline) baselines['werift-direct'] = { rtp_latency: baseline.rtp.summary(), jitter: baseline.jitter.summary() };
  const base = baselines['werift-direct']?.['rtp_latency'];
  const added = base && results['rtp_latency']!.n > 0 ? Math.round((results['rtp_latency']!.p99 - base.p99) * 1000) / 1000 : undefined;
  if (added !== undefined) notes.push(`added p99 RTP latency (relay − werift-direct): ${added} ms (target ≤ ${TARGET_ADDED_P99_MS} ms: ${added <= TARGET_ADDED_P99_MS ? 'met' : 'missed'})`);
  if (cpuPerSession !== undefined) notes.push(`relay CPU per session: ${cpuPerSession} % of one core (relay child, /proc, measured window)`);
  notes.push(
    `user devices read ${cfg.userSkipsAudio ? 'every kind but audio.frame (hello.kinds)' : 'every event'}: ` +
      `${Math.round(m.userEvents / cfg.duration / cfg.sessions)} events/s per user, ${Math.round(m.userAudioEvents / cfg.duration / cfg.sessions)} of them audio.frame, ` +
      `${Math.round((m.userEventBytes * 8) / 1000 / cfg.duration / cfg.sessions)} kbit/s of event frames per user`,
  );
  if (harnessCpu !== undefined) notes.push(`harness CPU (all ${cfg.sessions * 2} client peer connections, one process): ${harnessCpu} % of one core`);
  if (commits && commits.commits > 0 && cfg.store === 'sqlite') {
    notes.push('better-sqlite3 commits run on the relay\'s event loop: a slow fsync (a busy disk) stalls RTP forwarding and heartbeats with it');
  }
  if (commits && commits.commits > 0) {
    const secs = cfg.duration;
    notes.push(
      `storage (${cfg.store}): ${Math.round(commits.entries / secs)} events/s committed in ${Math.round(commits.commits / secs)} commits/s, ` +
        `${(commits.entries / commits.commits).toFixed(1)} events per commit, mean commit ${((commits.seconds / commits.commits) * 1000).toFixed(2)} ms, ${commits.over100ms} commits over 100 ms`,
    );
  }
  if (baseline) {
    const b = baseline.integrity.report();
    notes.push(`werift-direct integrity: sent ${b.sent}, delivered ${b.delivered}, lost ${b.lost}`);
  }
  if (udpBefore !== undefined && udpAfter !== undefined) notes.push(`UDP receive-buffer drops during the run (system-wide): ${udpAfter - udpBefore}`);
  notes.push(`1-minute load average at start: ${loadAtStart} (${cpus().length} CPUs; other work on the machine counts)`);
  notes.push(...problems.list('client: '));
  const lost = integrity.lost + integrity.duplicated;
  const json = {
    scenario: 'audio',
    config: {
      sessions: cfg.sessions,
      duration: cfg.duration,
      warmup: cfg.warmup,
      tokenRate: cfg.tokenRate,
      frameMs: FRAME_MS,
      store: cfg.store,
      sqliteSync: cfg.store === 'sqlite' ? cfg.sqliteSync : null,
      recordAudio: cfg.record,
      userSkipsAudio: cfg.userSkipsAudio,
      userEventsPerSecond: Math.round(m.userEvents / cfg.duration / cfg.sessions),
      userEventKbps: Math.round((m.userEventBytes * 8) / 1000 / cfg.duration / cfg.sessions),
      relayCpuPerSessionPct: cpuPerSession ?? null,
      harnessCpuPct: harnessCpu ?? null,
      addedP99Ms: added ?? null,
      node: process.version,
      cpus: cpus().length,
      loadAvg1m: loadAtStart,
    },
    results,
    baselines,
    ratios: base ? ratiosOf('rtp_latency', results['rtp_latency'], base) : {},
    integrity,
  };
  const curves: BenchRun['curves'] = { relay: { rtp_latency: m.rtp.curve(), timeline_latency: m.timeline.curve() } };
  if (baseline) curves['werift-direct'] = { rtp_latency: baseline.rtp.curve() };
  const run: BenchRun = {
    json,
    curves,
    series: ['relay', ...(baseline ? ['werift-direct'] : [])],
    ok: !ctx.signal.aborted && integrity.sent > 0 && lost === 0,
    notes,
  };
  m.destroy();
  baseline?.destroy();
  return run;
}

export const audioScenario: Scenario = {
  name: 'audio',
  summary: 'N full-duplex voice sessions (20 ms Opus both ways + tokens) through the relay vs direct werift RTP',
  configure(cmd: Command) {
    cmd
      .option('--sessions <n>', 'voice sessions (a user and an agent each, both on WebRTC)', whole(1, 1000), 10)
      .option('--duration <s>', 'measured seconds', decimal(0.1, 3600), 10)
      .option('--warmup <s>', 'seconds sent but not measured, first', decimal(0, 600), 2)
      .option('--drain <s>', 'longest wait for undelivered frames at the end', decimal(0.1, 120), 3)
      .option('--token-rate <n>', 'agent text tokens per second per session', decimal(0, 1000), 20)
      .option('--no-baseline', 'skip the werift-direct baseline')
      .option('--no-record', 'sessions do not record audio (forwarded live only; no timeline_latency)')
      .option('--user-skips-audio', "user devices read every event kind but audio.frame (hello.kinds), as a client that plays the agent from RTP would")
      .addOption(new Option('--store <kind>', 'relay store').choices(['sqlite', 'memory']).default('sqlite'))
      .addOption(new Option('--sqlite-sync <mode>', 'SQLite fsync policy of the relay').choices(['full', 'normal']).default('normal'))
      .option('--cpu-prof <dir>', "write the relay child's CPU profile (node --cpu-prof) to <dir>");
  },
  run(options, ctx) {
    return runAudio(
      {
        sessions: options['sessions'] as number,
        duration: options['duration'] as number,
        warmup: options['warmup'] as number,
        drain: options['drain'] as number,
        tokenRate: options['tokenRate'] as number,
        store: options['store'] as StoreKind,
        sqliteSync: options['sqliteSync'] as 'full' | 'normal',
        baseline: options['baseline'] !== false,
        record: options['record'] !== false,
        userSkipsAudio: options['userSkipsAudio'] === true,
        cpuProf: typeof options['cpuProf'] === 'string' ? options['cpuProf'] : undefined,
      },
      ctx,
    );
  },
};
