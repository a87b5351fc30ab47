import type { Origin, Role, TimelineEvent } from '../../protocol/index.js';
import type { LinkMedia } from '../client-transport.js';
import { Emitter } from '../emitter.js';
import type { LifelineSession } from '../session.js';

/** One Opus frame as an app receives it. */
export interface ReceivedAudio {
  payload: Uint8Array;
  /** RTP sequence number: extended (never wraps) from the timeline, 16-bit from live RTP. */
  rtpSeq: number;
  rtpTimestamp: number;
  durationMs: number;
  /** Arrived after its time (sent again after a blip). */
  late: boolean;
  /** Who said it (timeline source only). */
  from?: Origin;
  /** Its timeline offset (timeline source only): commit up to here once handled. */
  offset?: string;
  track?: string;
}

export interface AudioReceiverOptions {
  /**
   * Whose audio: `user` (an agent listening to its user), `agent` (a device playing the agent's
   * speech), or `any`.
   */
  from: Role | 'any';
  /**
   * `timeline` (default): audio.frame events of the session's stream: complete, in commit order,
   * replayable from any offset, also over WebSocket; needs recording on and a read stream.
   * `rtp`: the live RTP track of a WebRTC link: the lowest latency, but what a blip loses is gone
   * (the only way when the session does not record audio).
   */
  source?: 'timeline' | 'rtp';
}

interface ReceiverEvents {
  frame: (frame: ReceivedAudio) => void;
}

/** Receives Opus audio of the session, from its timeline or from the live RTP track. */
export class AudioReceiver {
  readonly #session: LifelineSession;
  readonly #opts: Required<AudioReceiverOptions>;
  readonly #emitter = new Emitter<ReceiverEvents>();
  readonly #offs: (() => void)[] = [];
  #boundMedia: LinkMedia | undefined;
  #offMedia: () => void = () => {};
  #closed = false;

  constructor(session: LifelineSession, opts: AudioReceiverOptions) {
    this.#session = session;
    this.#opts = { source: 'timeline', ...opts };
    if (this.#opts.source === 'timeline') {
      this.#offs.push(session.on('event', (e) => this.#onEvent(e)));
    } else {
      this.#bindMedia();
      this.#offs.push(session.on('state', () => this.#bindMedia()));
    }
    this.#offs.push(session.on('state', (c) => c.state === 'closed' && this.close()));
  }

  /** Each frame as it arrives; returns the unsubscribe. */
  onFrame(listener: (frame: ReceivedAudio) => void): () => void {
    return this.#emitter.on('frame', listener);
  }

  /**
   * Each frame decoded to 16-bit mono PCM at the decoder's rate (PcmDecoder from ./opus.js);
   * returns the unsubscribe.
   */
  onPcm(decoder: { decode(packet: Uint8Array): Int16Array }, listener: (pcm: Int16Array, frame: ReceivedAudio) => void): () => void {
    return this.#emitter.on('frame', (frame) => listener(decoder.decode(frame.payload), frame));
  }

  #wanted(role: Role): boolean {
    return this.#opts.from === 'any' || this.#opts.from === role;
  }

  #onEvent(e: TimelineEvent): void {
    if (e.kind !== 'audio.frame' || !e.bin || !this.#wanted(e.from.role)) return;
    const d = e.data as { rtpSeq?: number; rtpTimestamp?: number; durationMs?: number; late?: boolean };
    this.#emitter.emit('frame', {
      payload: e.bin,
      rtpSeq: d.rtpSeq ?? 0,
      rtpTimestamp: d.rtpTimestamp ?? 0,
      durationMs: d.durationMs ?? 20,
      late: d.late === true,
      from: e.from,
      offset: e.offset,
      ...(e.track !== undefined ? { track: e.track } : {}),
    });
  }

  /** (Re)subscribes to the current link's media; a new link after a reconnect has new tracks. */
  #bindMedia(): void {
    if (this.#closed) return;
    const media = this.#session.media;
    if (media === this.#boundMedia) return;
    this.#offMedia();
    this.#boundMedia = media;
    this.#offMedia = media
      ? media.onPacket((kind, p) => {
          if (kind !== 'audio') return;
          this.#emitter.emit('frame', { payload: p.payload, rtpSeq: p.sequenceNumber, rtpTimestamp: p.timestamp, durationMs: 20, late: false });
        })
      : () => {};
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#offs.splice(0)) off();
    this.#offMedia();
    this.#emitter.clear();
  }
}
