import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ConnectionObserver, RtcTransport } from '../transport/index.js';
import type { StreamObserver } from '../transport/http/index.js';
import type { Timeline, TimelineObserver } from '../timeline/index.js';

/** The relay's Prometheus metrics (text format at /metrics), one registry per relay. */
export class RelayMetrics {
  readonly registry = new Registry();
  readonly #connections: Gauge;
  readonly #framesIn: Counter<'type'>;
  readonly #bytesIn: Counter;
  readonly #eventsOut: Counter;
  readonly #errors: Counter<'code'>;
  readonly #appends: Counter<'result'>;
  readonly #batch: Histogram;
  readonly #commitSeconds: Histogram;
  readonly #expired: Counter;
  readonly #restarts: Histogram;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'lifeline_' });
    this.#connections = new Gauge({ name: 'lifeline_connections', help: 'Open protocol connections', registers });
    this.#framesIn = new Counter({ name: 'lifeline_frames_in_total', help: 'Frames received, by type', labelNames: ['type'], registers });
    this.#bytesIn = new Counter({ name: 'lifeline_frame_bytes_in_total', help: 'Bytes of frames received', registers });
    this.#eventsOut = new Counter({ name: 'lifeline_events_out_total', help: 'Events delivered to readers', registers });
    this.#errors = new Counter({ name: 'lifeline_errors_total', help: 'Error frames sent, by code', labelNames: ['code'], registers });
    this.#appends = new Counter({ name: 'lifeline_appends_total', help: 'Append outcomes', labelNames: ['result'], registers });
    this.#batch = new Histogram({
      name: 'lifeline_commit_batch_entries',
      help: 'Entries per group commit',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.#commitSeconds = new Histogram({
      name: 'lifeline_commit_seconds',
      help: 'Store commit duration',
      buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers,
    });
    this.#expired = new Counter({ name: 'lifeline_sessions_expired_total', help: 'Sessions reclaimed after their TTL', registers });
    this.#restarts = new Histogram({
      name: 'lifeline_ice_restart_signaling_seconds',
      help: 'Time the relay took to answer an ICE restart offer',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
  }

  iceRestarted(ms: number): void {
    this.#restarts.observe(ms / 1000);
  }

  /** RTP through the relay: packets accepted, dropped by reason, forwarded, recorded. */
  mediaObserver(): NonNullable<NonNullable<ConstructorParameters<typeof RtcTransport>[0]['media']>['observer']> {
    const registers = [this.registry];
    const packets = new Counter({ name: 'lifeline_rtp_packets_total', help: 'RTP packets accepted, by kind', labelNames: ['kind'], registers });
    const dropped = new Counter({
      name: 'lifeline_rtp_dropped_total',
      help: 'RTP packets dropped (unknown payload type, unsupported codec, oversized, malformed, duplicate, too old), by reason and kind',
      labelNames: ['reason', 'kind'],
      registers,
    });
    const forwarded = new Counter({ name: 'lifeline_rtp_forwarded_total', help: 'RTP packet copies forwarded to peers, by kind', labelNames: ['kind'], registers });
    const recorded = new Counter({ name: 'lifeline_audio_frames_recorded_total', help: 'Audio frames committed to timelines', registers });
    const failed = new Counter({ name: 'lifeline_audio_frames_not_recorded_total', help: 'Audio frames the timeline refused or failed to commit', registers });
    const missing = new Counter({ name: 'lifeline_rtp_missing_total', help: 'RTP packets found missing (sequence gaps) and asked for again with NACK, by kind', labelNames: ['kind'], registers });
    const lost = new Counter({ name: 'lifeline_rtp_lost_total', help: 'Missing RTP packets that never came after every NACK, by kind', labelNames: ['kind'], registers });
    return {
      received: (kind) => packets.inc({ kind }),
      dropped: (reason, kind) => dropped.inc({ reason, kind }),
      forwarded: (kind, n) => forwarded.inc({ kind }, n),
      recorded: () => recorded.inc(),
      recordFailed: () => failed.inc(),
      missing: (kind, n) => missing.inc({ kind }, n),
      lost: (kind, n) => lost.inc({ kind }, n),
    };
  }

  watchRtc(rtc: RtcTransport): void {
    new Gauge({
      name: 'lifeline_rtc_peers',
      help: 'Open WebRTC peer connections',
      registers: [this.registry],
      collect() {
        this.set(rtc.peers.size);
      },
    });
  }

  /** The Durable Streams HTTP API: answers by method and status, appended body bytes, live readers. */
  streamObserver(): StreamObserver {
    const registers = [this.registry];
    const answered = new Counter({
      name: 'lifeline_http_stream_requests_total',
      help: 'Durable Streams requests answered, by method and status (SSE counted when the stream ends)',
      labelNames: ['method', 'status'],
      registers,
    });
    const bytes = new Counter({ name: 'lifeline_http_stream_appended_bytes_total', help: 'Bytes of request bodies appended to streams', registers });
    const live = new Gauge({ name: 'lifeline_http_stream_live_readers', help: 'Open long-polls and SSE streams, by mode', labelNames: ['mode'], registers });
    live.set({ mode: 'sse' }, 0);
    live.set({ mode: 'long-poll' }, 0);
    return {
      answered: (method, status) => answered.inc({ method, status: String(status) }),
      bodyBytes: (n) => bytes.inc(n),
      liveReaders: (mode, delta) => live.inc({ mode }, delta),
    };
  }

  /** Gauges read from the timeline at scrape time. */
  watch(timeline: Timeline): void {
    const registers = [this.registry];
    new Gauge({
      name: 'lifeline_commit_backlog',
      help: 'Appends waiting for a commit',
      registers,
      collect() {
        this.set(timeline.backlog);
      },
    });
    new Gauge({
      name: 'lifeline_live_sessions',
      help: 'Sessions with at least one reader',
      registers,
      collect() {
        this.set(timeline.liveSessions);
      },
    });
  }

  timelineObserver(): TimelineObserver {
    return {
      committed: (entries, appended, ms) => {
        this.#batch.observe(entries);
        this.#commitSeconds.observe(ms / 1000);
        this.#appends.inc({ result: 'appended' }, appended);
        if (entries > appended) this.#appends.inc({ result: 'not-appended' }, entries - appended);
      },
      rejected: (code) => this.#appends.inc({ result: code }),
      sessionsExpired: (n) => this.#expired.inc(n),
    };
  }

  connectionObserver(): ConnectionObserver {
    return {
      opened: () => this.#connections.inc(),
      closed: () => this.#connections.dec(),
      frameIn: (type, bytes) => {
        this.#framesIn.inc({ type });
        this.#bytesIn.inc(bytes);
      },
      eventsOut: (n) => this.#eventsOut.inc(n),
      error: (code) => this.#errors.inc({ code }),
    };
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
