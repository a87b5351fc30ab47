import type { Json } from '../../protocol/index.js';
import type { LifelineSession, StateChange } from '../session.js';
import { OPUS_RTP_CLOCK } from './rtp-clock.js';

/** After a recovery, frames sent around it are sent once more this much later. */
const SECOND_PASS_MS = 400;

export interface AudioPublisherOptions {
  /** Timeline track of frames sent as appends (links without media): `mic` (default) or `speech`. */
  track?: string;
  /** Audio kept after sending, for resending after a blip (default 10 000 ms). */
  historyMs?: number;
  /**
   * Frames sent this long before a loss was noticed are sent again after recovery (default
   * 500 ms: the WebRTC heartbeat notices a dead path after ~250 ms; the relay drops duplicates).
   */
  resendWindowMs?: number;
  /** Frames resent per batch after a recovery, one batch per millisecond (default 16). */
  resendBatch?: number;
  /** Wall clock (ms since the epoch); tests pass their own. */
  now?: () => number;
}

export interface PublisherStats {
  /** Frames published (sent at once, or held in the history while no link was up). */
  sent: number;
  /** Frames sent again after a blip. */
  resent: number;
  /** Frames that left the history before they could be resent (a blip longer than historyMs). */
  expired: number;
}

interface SentFrame {
  seq: number;
  timestamp: number;
  payload: Uint8Array;
  durationMs: number;
  marker: boolean;
  sentAt: number;
  /** Went as an append through the outbox: reliable already, never resent. */
  appended: boolean;
}

interface Queued {
  payload: Uint8Array;
  durationMs: number;
}

/**
 * Publishes Opus audio of this device (a user's microphone, an agent's speech), paced in real
 * time: frames queued faster than real time leave one per frame duration, on a clock that
 * corrects its own drift. Over WebRTC each frame is one RTP packet on the audio track; on links
 * without media (WebSocket) it is an `audio.frame` append (reliable through the outbox).
 *
 * Blips: every frame is kept for `historyMs`. When the session notices a lost path
 * (`reconnecting`) and later recovers (`restarted` or `resumed`), the frames sent from
 * `resendWindowMs` before the loss was noticed up to now are sent again, with their original
 * sequence numbers and timestamps. The relay drops those it already has and records the others
 * as `late`, so the agent hears what was said during the outage, once.
 *
 * Sequence numbers start from the wall clock (one per 20 ms), so a publisher that restarts on the
 * same device continues above its predecessor instead of colliding with its numbers.
 */
export class AudioPublisher {
  readonly stats: PublisherStats = { sent: 0, resent: 0, expired: 0 };
  readonly #session: LifelineSession;
  readonly #track: string;
  readonly #historyMs: number;
  readonly #resendWindowMs: number;
  readonly #resendBatch: number;
  readonly #now: () => number;
  readonly #queue: Queued[] = [];
  readonly #history: SentFrame[] = [];
  #queuedMs = 0;
  #seq: number;
  #timestamp: number;
  /** performance.now() time the next frame is due; undefined while idle. */
  #nextDue: number | undefined;
  /** performance.now() time the last frame sent ends (for timestamp gaps between talk spurts). */
  #lastEnd: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lostAt: number | undefined;
  #secondPass: ReturnType<typeof setTimeout> | undefined;
  /** The next frame starts a talk spurt (RTP marker bit). */
  #startOfSpurt = true;
  #idle: (() => void)[] = [];
  #closed = false;
  readonly #offState: () => void;

  constructor(session: LifelineSession, opts: AudioPublisherOptions = {}) {
    this.#session = session;
    this.#track = opts.track ?? 'mic';
    this.#historyMs = opts.historyMs ?? 10_000;
    this.#resendWindowMs = opts.resendWindowMs ?? 500;
    this.#resendBatch = opts.resendBatch ?? 16;
    this.#now = opts.now ?? Date.now;
    this.#seq = Math.floor(this.#now() / 20) % 32768;
    this.#timestamp = crypto.getRandomValues(new Uint32Array(1))[0]! >>> 1;
    this.#offState = session.on('state', (change) => this.#onState(change));
  }

  /** Sequence number the next frame will carry (extended: never wraps). */
  get nextSeq(): number {
    return this.#seq;
  }

  /** Milliseconds of audio queued and not yet sent. */
  get queuedMs(): number {
    return this.#queuedMs;
  }

  /** Queues one Opus packet of `durationMs` (default 20) for paced sending. */
  push(packet: Uint8Array, durationMs = 20): void {
    if (this.#closed) return;
    this.#queue.push({ payload: packet, durationMs });
    this.#queuedMs += durationMs;
    if (this.#timer === undefined) this.#pump();
  }

  /** Queues several packets (e.g. a sentence from the encoder). */
  pushAll(packets: readonly Uint8Array[], durationMs = 20): void {
    for (const p of packets) this.push(p, durationMs);
  }

  /** Drops everything queued and not yet sent (barge-in); returns the milliseconds dropped. */
  clear(): number {
    const dropped = this.#queuedMs;
    this.#queue.length = 0;
    this.#queuedMs = 0;
    this.#settleIdle();
    return dropped;
  }

  /** Resolves when everything queued so far has been sent. */
  drained(): Promise<void> {
    if (this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#secondPass);
    this.#timer = undefined;
    this.#offState();
    this.#queue.length = 0;
    this.#queuedMs = 0;
    this.#history.length = 0;
    this.#settleIdle();
  }

  #pump(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    const now = performance.now();
    if (this.#nextDue === undefined) {
      // A new talk spurt: the clock starts now, and the RTP timestamp moves on by the silence.
      if (this.#lastEnd !== undefined) this.#timestamp = (this.#timestamp + Math.max(0, Math.round(((now - this.#lastEnd) * OPUS_RTP_CLOCK) / 1000))) >>> 0;
      this.#nextDue = now;
      this.#startOfSpurt = true;
    } else if (this.#nextDue < now - 200) {
      // Far behind (the event loop stalled): what is due goes now, but no debt beyond 200 ms is
      // kept. The audio is continuous, so timestamps go on without a jump.
      this.#nextDue = now - 200;
    }
    while (this.#queue.length > 0 && this.#nextDue <= now + 1) {
      const q = this.#queue.shift()!;
      this.#queuedMs -= q.durationMs;
      this.#sendNew(q);
      this.#nextDue += q.durationMs;
      this.#lastEnd = this.#nextDue;
    }
    if (this.#queue.length > 0) {
      this.#timer = setTimeout(() => this.#pump(), Math.max(0, this.#nextDue - performance.now()));
    } else {
      // The talk spurt ends when its last frame has been played out; a push before then continues it.
      const spurtEnd = this.#nextDue;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        if (this.#queue.length === 0 && this.#nextDue === spurtEnd) this.#nextDue = undefined;
        else if (this.#queue.length > 0) this.#pump();
      }, Math.max(0, spurtEnd - performance.now()) + 1);
      this.#settleIdle();
    }
  }

  #sendNew(q: Queued): void {
    const frame: SentFrame = {
      seq: this.#seq++,
      timestamp: this.#timestamp,
      payload: q.payload,
      durationMs: q.durationMs,
      marker: this.#startOfSpurt,
      sentAt: this.#now(),
      appended: false,
    };
    this.#startOfSpurt = false;
    this.#timestamp = (this.#timestamp + Math.round((q.durationMs * OPUS_RTP_CLOCK) / 1000)) >>> 0;
    this.#remember(frame);
    this.#transmit(frame, false);
    this.stats.sent++;
  }

  /** Sends a frame on the current link; false when there is none right now (it stays in the history). */
  #transmit(frame: SentFrame, late: boolean): boolean {
    const media = this.#session.media;
    if (media) {
      return media.send('audio', { sequenceNumber: frame.seq & 0xffff, timestamp: frame.timestamp, marker: frame.marker, payload: frame.payload });
    }
    const state = this.#session.state;
    if (state === 'connected' || state === 'resumed' || state === 'restarted') {
      // A link without media (WebSocket): the outbox makes the append reliable and exactly-once.
      const data: { [k: string]: Json } = { codec: 'opus', rtpSeq: frame.seq, rtpTimestamp: frame.timestamp, durationMs: frame.durationMs };
      if (late) data['late'] = true;
      frame.appended = true;
      this.#session.append('audio.frame', data, { track: this.#track, bin: frame.payload }).catch(() => undefined);
      return true;
    }
    return false;
  }

  #remember(frame: SentFrame): void {
    this.#history.push(frame);
    const horizon = frame.sentAt - this.#historyMs;
    while (this.#history.length > 0 && this.#history[0]!.sentAt < horizon) {
      const old = this.#history.shift()!;
      if (this.#lostAt !== undefined && old.sentAt >= this.#lostAt - this.#resendWindowMs && !old.appended) this.stats.expired++;
    }
  }

  #onState(change: StateChange): void {
    if (change.state === 'reconnecting') {
      this.#lostAt ??= change.at;
      return;
    }
    if ((change.state === 'restarted' || change.state === 'resumed') && this.#lostAt !== undefined) {
      const from = this.#lostAt - this.#resendWindowMs;
      this.#lostAt = undefined;
      this.#resend(this.#history.filter((f) => f.sentAt >= from && !f.appended));
      // `restarted` is declared on the first frame from the relay, which may be one that was
      // already on its way while werift still re-checks the path (the nominated pair is cleared
      // until a check succeeds): RTP sent in that moment is dropped. A second pass covers it.
      const recoveredAt = change.at;
      clearTimeout(this.#secondPass);
      this.#secondPass = setTimeout(() => {
        this.#resend(this.#history.filter((f) => f.sentAt >= recoveredAt - 100 && !f.appended));
      }, SECOND_PASS_MS);
    }
    if (change.state === 'closed') this.close();
  }

  /** Sends frames again in batches (a synchronous burst of hundreds of datagrams would overflow socket buffers). */
  #resend(frames: SentFrame[]): void {
    let at = 0;
    const batch = (): void => {
      if (this.#closed) return;
      const end = Math.min(frames.length, at + this.#resendBatch);
      for (; at < end; at++) if (this.#transmit(frames[at]!, true)) this.stats.resent++;
      if (at < frames.length) setTimeout(batch, 1);
    };
    batch();
  }

  #settleIdle(): void {
    if (this.#queue.length > 0) return;
    const idle = this.#idle;
    this.#idle = [];
    for (const done of idle) done();
  }
}
