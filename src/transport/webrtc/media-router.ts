import type { Json, Origin } from '../../protocol/index.js';
import type { Timeline } from '../../timeline/index.js';
import { CARRIED_CODECS } from '../../werift/media.js';
import type { MediaKind, MediaPacket, NegotiatedCodec, PeerMedia } from '../../werift/media.js';
import { ArrivalClock, SEQUENCE_WINDOW, SequenceTracker, opusPacketDurationMs } from './rtp-checks.js';
import type { RtpDropReason } from './rtp-checks.js';

export interface MediaLimits {
  /** Largest audio RTP payload accepted, bytes (default 1500). */
  maxAudioPayloadBytes: number;
  /** Largest video RTP payload accepted, bytes (default 1500). */
  maxVideoPayloadBytes: number;
  /** How long a session's per-source state (duplicate detection) outlives its last peer (default 30 s). */
  sourceGraceMs: number;
  /** A packet arriving this much later than its timestamp allows is `late` (default 200 ms). */
  lateAfterMs: number;
}

export const DEFAULT_MEDIA_LIMITS: MediaLimits = {
  maxAudioPayloadBytes: 1500,
  maxVideoPayloadBytes: 1500,
  sourceGraceMs: 30_000,
  lateAfterMs: 200,
};

/** Hooks for metrics; every method optional. */
export interface MediaObserver {
  /** A packet passed the checks. */
  received?(kind: MediaKind): void;
  dropped?(reason: RtpDropReason, kind: MediaKind | 'unknown'): void;
  /** Packets found missing (a gap in sequence numbers) and asked for again (NACK). */
  missing?(kind: MediaKind, count: number): void;
  /** Missing packets that never came, after every retry. */
  lost?(kind: MediaKind, count: number): void;
  forwarded?(kind: MediaKind, copies: number): void;
  recorded?(kind: MediaKind): void;
  recordFailed?(err: unknown): void;
}

/** One peer connection of a session, as the router sees it. */
export interface MediaEndpoint {
  readonly sessionId: string;
  readonly origin: Origin;
  readonly media: PeerMedia;
}

/** Timeline track names of recorded audio: what users say, what agents say. */
export const AUDIO_TRACKS = { user: 'mic', agent: 'speech', system: 'relay' } as const;

/**
 * Session metadata keys that control recording: `recordAudio` (default true): audio frames are
 * committed to the timeline; `false`: forwarded live only. `recordVideo` is reserved (video is
 * never recorded by this version).
 */
export const RECORDING_KEYS = { audio: 'recordAudio', video: 'recordVideo' } as const;

/** A gap is asked for this long after it is seen (a reordered packet fills it sooner). */
const NACK_DELAY_MS = 20;
/** Then again every NACK_RETRY_MS, at most NACK_TRIES times in all. */
const NACK_RETRY_MS = 40;
const NACK_TRIES = 3;
/** Longest gap asked for: werift senders keep their last 128 packets. */
const NACK_MAX_GAP = 100;
/** RTP sources remembered per device and kind: each reconnect of a browser brings a new one. */
const MAX_SOURCES_PER_DEVICE = 4;

interface Source {
  seq: SequenceTracker;
  clock: ArrivalClock;
  /** Missing extended sequence numbers, with the NACKs sent for each so far. */
  missing: Map<number, number>;
  nackTimer: NodeJS.Timeout | undefined;
  /** Where the source's packets last came from (NACKs go back there). */
  from: MediaEndpoint;
  ssrc: number;
  /** RTP timestamp of the highest sequence number, and the timestamp step per packet then. */
  lastTimestamp: number;
  timestampStep: number;
}

interface SessionMedia {
  endpoints: Set<MediaEndpoint>;
  /**
   * Per RTP source (participant/device/kind/SSRC): sequence numbers seen, arrival times, gaps.
   * A device's new peer connection brings a new SSRC. Browsers also start a new random sequence
   * and timestamp: a new source. The Node SDK's publisher carries its numbering on across
   * connections (and resends what a blip may have lost): the new SSRC continues the device's
   * last source, so resent frames are still recognised (see #continues).
   */
  sources: Map<string, Source>;
  recordAudio: boolean;
  grace: NodeJS.Timeout | undefined;
}

/**
 * Routes RTP between the peer connections of each session, without transcoding: audio from a
 * user's device goes to every agent's connection, audio from an agent to every user device;
 * video from users goes to agents, with keyframe requests (PLI) from agents passed back to the
 * users' devices. Every accepted audio packet is also committed to the timeline as an
 * `audio.frame` event (unless the session turned recording off); commits join the timeline's
 * group commit, so a relay carrying many voice sessions writes one transaction per event-loop
 * turn, not one per frame. Packets that fail a check are dropped and counted; none can throw
 * out of here.
 */
export class MediaRouter {
  readonly #timeline: Timeline;
  readonly #limits: MediaLimits;
  readonly #observer: MediaObserver;
  readonly #sessions = new Map<string, SessionMedia>();

  constructor(timeline: Timeline, opts: { limits?: Partial<MediaLimits>; observer?: MediaObserver } = {}) {
    this.#timeline = timeline;
    this.#limits = { ...DEFAULT_MEDIA_LIMITS, ...opts.limits };
    this.#observer = opts.observer ?? {};
  }

  /** Sessions with media state (for metrics and tests). */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Adds a peer connection whose origin is known (after its hello). Returns the removal. */
  join(endpoint: MediaEndpoint): () => void {
    let s = this.#sessions.get(endpoint.sessionId);
    if (!s) {
      s = { endpoints: new Set(), sources: new Map(), recordAudio: true, grace: undefined };
      this.#sessions.set(endpoint.sessionId, s);
      const session = s;
      void this.#timeline.session(endpoint.sessionId).then(
        (record) => {
          session.recordAudio = record.metadata[RECORDING_KEYS.audio] !== false;
        },
        () => undefined,
      );
    }
    clearTimeout(s.grace);
    s.grace = undefined;
    s.endpoints.add(endpoint);
    const session = s;
    const offRtp = endpoint.media.onRtp((packet, codec) => this.#safely(() => this.#onRtp(session, endpoint, packet, codec)));
    const offPli =
      endpoint.origin.role === 'agent' ? endpoint.media.onKeyframeRequest(() => this.#safely(() => this.#keyframeWanted(session))) : () => {};
    let left = false;
    return () => {
      if (left) return;
      left = true;
      offRtp();
      offPli();
      session.endpoints.delete(endpoint);
      if (session.endpoints.size === 0) {
        session.grace = setTimeout(() => {
          if (session.endpoints.size === 0 && this.#sessions.get(endpoint.sessionId) === session) this.#dropSession(endpoint.sessionId, session);
        }, this.#limits.sourceGraceMs);
        session.grace.unref();
      }
    };
  }

  /** Forgets a session at once (it was deleted or expired). */
  forget(sessionId: string): void {
    const s = this.#sessions.get(sessionId);
    if (s) this.#dropSession(sessionId, s);
  }

  close(): void {
    for (const [id, s] of [...this.#sessions]) this.#dropSession(id, s);
  }

  #dropSession(id: string, s: SessionMedia): void {
    clearTimeout(s.grace);
    for (const source of s.sources.values()) clearTimeout(source.nackTimer);
    if (this.#sessions.get(id) === s) this.#sessions.delete(id);
  }

  #safely(run: () => void): void {
    try {
      run();
    } catch (err) {
      this.#observer.recordFailed?.(err);
    }
  }

  #drop(reason: RtpDropReason, kind: MediaKind | 'unknown'): void {
    this.#observer.dropped?.(reason, kind);
  }

  #onRtp(s: SessionMedia, from: MediaEndpoint, packet: MediaPacket, codec: NegotiatedCodec | undefined): void {
    if (!codec) return this.#drop('unknown-payload-type', 'unknown');
    const kind = codec.kind;
    if (!CARRIED_CODECS[kind].includes(codec.name)) return this.#drop('unsupported-codec', kind);
    const max = kind === 'audio' ? this.#limits.maxAudioPayloadBytes : this.#limits.maxVideoPayloadBytes;
    if (packet.payload.length > max) return this.#drop('oversized', kind);
    if (packet.payload.length === 0) return this.#drop('malformed', kind);
    let durationMs: number | undefined;
    if (codec.name === 'opus') {
      durationMs = opusPacketDurationMs(packet.payload);
      if (durationMs === undefined) return this.#drop('malformed', kind);
    }
    const device = `${from.origin.participant}/${from.origin.device}/${kind}/`;
    const key = `${device}${packet.ssrc}`;
    let source = s.sources.get(key);
    if (!source) {
      const previous = [...s.sources].reverse().find(([k]) => k.startsWith(device));
      if (previous && this.#continues(previous[1], packet, codec.clockRate)) {
        source = previous[1];
        s.sources.delete(previous[0]);
      } else {
        source = {
          seq: new SequenceTracker(),
          clock: new ArrivalClock(this.#limits.lateAfterMs),
          missing: new Map(),
          nackTimer: undefined,
          from,
          ssrc: packet.ssrc,
          lastTimestamp: packet.timestamp,
          timestampStep: 0,
        };
        this.#forgetOldSources(s, device);
      }
      s.sources.set(key, source);
    }
    const highest = source.seq.highest;
    const verdict = source.seq.accept(packet.sequenceNumber);
    if (!verdict.ok) return this.#drop(verdict.reason, kind);
    source.from = from;
    source.ssrc = packet.ssrc;
    if (highest === undefined || verdict.extended > highest) {
      if (durationMs !== undefined) source.timestampStep = Math.round((durationMs * codec.clockRate) / 1000);
      source.lastTimestamp = packet.timestamp;
    }
    if (kind === 'audio') this.#trackGaps(source, highest, verdict.extended);
    const late = source.clock.judge(packet.timestamp, codec.clockRate, performance.now()).late || verdict.late;
    this.#observer.received?.(kind);
    // Live copies carry live media only: a late packet (a resend after a blip) goes to the
    // timeline, where readers find it in order with a `late` mark.
    if (!late) this.#forward(s, from, kind, packet);
    if (kind === 'audio' && s.recordAudio) this.#record(from, packet, verdict.extended, late, durationMs);
  }

  /**
   * Whether a packet with a new SSRC continues `previous` (the same sender on a new connection):
   * its sequence number within the window of the previous one's highest and its timestamp where
   * that numbering puts it, within a second. A browser's fresh random numbering passes both by
   * chance about once in a million reconnects.
   */
  #continues(previous: Source, packet: MediaPacket, clockRate: number): boolean {
    const highest = previous.seq.highest;
    if (highest === undefined || previous.timestampStep === 0) return false;
    const d = previous.seq.extend(packet.sequenceNumber) - highest;
    if (Math.abs(d) >= SEQUENCE_WINDOW) return false;
    const expected = (previous.lastTimestamp + d * previous.timestampStep) >>> 0;
    return Math.abs((packet.timestamp - expected) | 0) <= clockRate;
  }

  /**
   * Keeps at most MAX_SOURCES_PER_DEVICE sources per device and kind: the oldest go (map order is
   * the order sources appeared in, and a device's newest connection is its live one).
   */
  #forgetOldSources(s: SessionMedia, device: string): void {
    const mine = [...s.sources.keys()].filter((k) => k.startsWith(device));
    for (const k of mine.slice(0, Math.max(0, mine.length - MAX_SOURCES_PER_DEVICE + 1))) {
      clearTimeout(s.sources.get(k)?.nackTimer);
      s.sources.delete(k);
    }
  }

  /**
   * Audio gaps are asked for again with RTCP NACK (werift does this for video only): a packet
   * lost on the network comes back from the sender's history, late but not lost.
   */
  #trackGaps(source: Source, highest: number | undefined, ext: number): void {
    source.missing.delete(ext);
    if (highest !== undefined && ext > highest + 1) {
      const gapFrom = Math.max(highest + 1, ext - NACK_MAX_GAP);
      for (let g = gapFrom; g < ext; g++) source.missing.set(g, 0);
      this.#observer.missing?.('audio', ext - gapFrom);
    }
    if (source.missing.size > 0 && source.nackTimer === undefined) this.#armNack(source, NACK_DELAY_MS);
  }

  #armNack(source: Source, ms: number): void {
    source.nackTimer = setTimeout(() => {
      source.nackTimer = undefined;
      const ask: number[] = [];
      let gaveUp = 0;
      for (const [seq, tries] of source.missing) {
        if (tries >= NACK_TRIES) {
          source.missing.delete(seq);
          gaveUp++;
        } else {
          source.missing.set(seq, tries + 1);
          ask.push(seq);
        }
      }
      if (gaveUp > 0) this.#observer.lost?.('audio', gaveUp);
      if (ask.length > 0) {
        this.#safely(() => source.from.media.requestRetransmission('audio', source.ssrc, ask));
        this.#armNack(source, NACK_RETRY_MS);
      }
    }, ms);
    source.nackTimer.unref();
  }

  #forward(s: SessionMedia, from: MediaEndpoint, kind: MediaKind, packet: MediaPacket): void {
    const role = from.origin.role;
    // Users' media goes to agents; agents' audio goes to users. Video only flows user → agent.
    const to = role === 'user' ? 'agent' : role === 'agent' && kind === 'audio' ? 'user' : undefined;
    if (!to) return;
    let copies = 0;
    for (const e of s.endpoints) {
      if (e === from || e.origin.role !== to) continue;
      if (e.media.send(kind, packet)) copies++;
    }
    if (copies > 0) this.#observer.forwarded?.(kind, copies);
  }

  #record(from: MediaEndpoint, packet: MediaPacket, extended: number, late: boolean, durationMs: number | undefined): void {
    const data: { [k: string]: Json } = { codec: 'opus', rtpSeq: extended, rtpTimestamp: packet.timestamp };
    if (durationMs !== undefined) data['durationMs'] = durationMs;
    if (late) data['late'] = true;
    const track = AUDIO_TRACKS[from.origin.role];
    // Not awaited: the next packet joins the same group commit. Order is kept (commits resolve
    // in submit order), and the frame reaches readers only once committed.
    this.#timeline
      .append(from.sessionId, [{ from: from.origin, kind: 'audio.frame', track, data, bin: packet.payload.slice() }])
      .then(
        ([result]) => {
          if (result?.ok) this.#observer.recorded?.('audio');
          else this.#observer.recordFailed?.(result?.error);
        },
        (err: unknown) => this.#observer.recordFailed?.(err),
      );
  }

  #keyframeWanted(s: SessionMedia): void {
    for (const e of s.endpoints) if (e.origin.role === 'user') e.media.requestKeyframe();
  }
}
