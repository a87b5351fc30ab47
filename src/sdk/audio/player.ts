import type { TimelineEvent } from '../../protocol/index.js';
import { Emitter } from '../emitter.js';
import type { LifelineSession } from '../session.js';
import { SPEECH_ACTIONS, controlAction, reportData, turnOf } from './control.js';
import type { PlaybackReport } from './control.js';
import { AudioReceiver } from './receiver.js';
import type { ReceivedAudio } from './receiver.js';

export interface SpeechPlayerOptions {
  /**
   * Blip policy: when more than this much of the agent's speech is waiting (it piled up while the
   * device was cut off, and the timeline delivered it at once after recovery), the oldest part is
   * skipped so playback is live again, and its transcript is delivered instead (`skipped`). Up to
   * this much is replayed, late. Default 2000 ms; 0 always skips to live; Infinity never skips.
   */
  replayUpToMs?: number;
  /** What is kept when skipping: the newest `keepMs` of the backlog (default 60 ms). */
  keepMs?: number;
  /** Report playback (output_audio_buffer.*) as control events (default true). */
  report?: boolean;
}

/** Skips closer together than this are reported as one. */
const SKIP_SETTLE_MS = 100;

/** The part of a turn a device skipped to get back to live, with the words it would have heard. */
export interface SkippedSpeech {
  turn: string;
  frames: number;
  ms: number;
  /** Transcript (the agent's text.delta events) committed alongside the skipped audio. */
  text: string;
}

interface PlayerEvents {
  /** A frame is due now: decode it and hand it to the audio output. */
  play: (frame: ReceivedAudio, turn: string) => void;
  skipped: (skipped: SkippedSpeech) => void;
  /** Playback of a turn stopped early (an interrupt); the report was sent. */
  interrupted: (report: Omit<PlaybackReport, 'device'>) => void;
  /** A turn was played to its end. */
  finished: (report: Omit<PlaybackReport, 'device'>) => void;
}

interface TurnState {
  id: string;
  active: boolean;
  ended: boolean;
  playedFrames: number;
  playedMs: number;
  lastPlayedSeq: number | undefined;
  startedReported: boolean;
}

/**
 * Plays the agent's speech on a user's device: frames of the current turn (between the agent's
 * `speech.started` and its end) come from the timeline and are played in real time; an
 * `interrupt` from anyone stops playback at once on every device, and each device reports how
 * much it actually played (`output_audio_buffer.cleared` with `playedMs`), so the agent can cut
 * its context at the point the user heard. After a blip, the backlog is replayed if it is short,
 * else skipped with its transcript (see `replayUpToMs`).
 *
 * The player does not own a speaker: `play` hands each frame over when it is due; apps decode
 * it (PcmDecoder) and write it to their output.
 */
export class SpeechPlayer {
  /** Frames that arrived after a later frame had already been played (dropped). */
  tooLate = 0;
  readonly #session: LifelineSession;
  readonly #replayUpToMs: number;
  readonly #keepMs: number;
  readonly #report: boolean;
  readonly #emitter = new Emitter<PlayerEvents>();
  readonly #receiver: AudioReceiver;
  readonly #offs: (() => void)[] = [];
  readonly #queue: ReceivedAudio[] = [];
  #queuedMs = 0;
  #turn: TurnState | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #nextDue: number | undefined;
  /** Recent transcript deltas of the agent, by offset (for the text of skipped audio). */
  readonly #transcript: { offset: string; text: string }[] = [];
  #pendingSkip: { turn: string; frames: number; ms: number; from: string; to: string } | undefined;
  #skipTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(session: LifelineSession, opts: SpeechPlayerOptions = {}) {
    this.#session = session;
    this.#replayUpToMs = opts.replayUpToMs ?? 2000;
    this.#keepMs = opts.keepMs ?? 60;
    this.#report = opts.report ?? true;
    this.#receiver = new AudioReceiver(session, { from: 'agent' });
    this.#offs.push(this.#receiver.onFrame((f) => this.#onFrame(f)));
    this.#offs.push(session.on('event', (e) => this.#onEvent(e)));
    this.#offs.push(session.on('state', (c) => c.state === 'closed' && this.close()));
  }

  on<K extends keyof PlayerEvents>(name: K, listener: PlayerEvents[K]): () => void {
    return this.#emitter.on(name, listener);
  }

  /** The turn being played, with what has been played of it so far. */
  get current(): Readonly<Omit<TurnState, 'startedReported'>> | undefined {
    return this.#turn;
  }

  get queuedMs(): number {
    return this.#queuedMs;
  }

  /** Barge-in from this device: every device (this one included) stops the agent's speech. */
  interrupt(reason = 'barge-in'): Promise<string> {
    const data = { action: SPEECH_ACTIONS.interrupt, reason, ...(this.#turn ? { turn: this.#turn.id } : {}) };
    return this.#session.append('control', data);
  }

  #onEvent(e: TimelineEvent): void {
    if (e.kind === 'text.delta' && e.from.role === 'agent') {
      const text = (e.data as { text?: unknown }).text;
      if (typeof text === 'string') {
        this.#transcript.push({ offset: e.offset, text });
        if (this.#transcript.length > 4096) this.#transcript.shift();
      }
      return;
    }
    const action = controlAction(e);
    if (!action) return;
    const turn = turnOf(e);
    if (action === SPEECH_ACTIONS.started && e.from.role === 'agent' && turn) {
      this.#stop('cleared');
      this.#turn = { id: turn, active: true, ended: false, playedFrames: 0, playedMs: 0, lastPlayedSeq: undefined, startedReported: false };
    } else if (action === SPEECH_ACTIONS.interrupt && (!turn || turn === this.#turn?.id)) {
      this.#stop('cleared');
    } else if (action === SPEECH_ACTIONS.stopped && turn && turn === this.#turn?.id) {
      if ((e.data as { reason?: unknown }).reason === 'interrupted') this.#stop('cleared');
      else {
        this.#turn.ended = true;
        this.#maybeFinished();
      }
    }
  }

  #onFrame(f: ReceivedAudio): void {
    const turn = this.#turn;
    if (this.#closed || !turn?.active) return;
    // Too late to be played in order (a resend after a blip of the agent's own link).
    if (turn.lastPlayedSeq !== undefined && f.rtpSeq <= turn.lastPlayedSeq) {
      this.tooLate++;
      return;
    }
    // In order of sequence numbers: a late frame takes its place in the queue.
    let at = this.#queue.length;
    while (at > 0 && this.#queue[at - 1]!.rtpSeq > f.rtpSeq) at--;
    if (this.#queue[at - 1]?.rtpSeq === f.rtpSeq) return;
    this.#queue.splice(at, 0, f);
    this.#queuedMs += f.durationMs;
    if (this.#queuedMs > this.#replayUpToMs + this.#keepMs) this.#skipToLive(turn);
    if (this.#timer === undefined) this.#tick();
  }

  #skipToLive(turn: TurnState): void {
    while (this.#queuedMs > this.#keepMs && this.#queue.length > 1) {
      const f = this.#queue.shift()!;
      this.#queuedMs -= f.durationMs;
      const s = (this.#pendingSkip ??= { turn: turn.id, frames: 0, ms: 0, from: f.offset ?? '', to: f.offset ?? '' });
      s.frames++;
      s.ms += f.durationMs;
      s.to = f.offset ?? s.to;
    }
    // One notice per blip: the backlog arrives in several reads, each may trim it again.
    clearTimeout(this.#skipTimer);
    this.#skipTimer = setTimeout(() => this.#flushSkip(), SKIP_SETTLE_MS);
  }

  #flushSkip(): void {
    clearTimeout(this.#skipTimer);
    const s = this.#pendingSkip;
    if (!s) return;
    this.#pendingSkip = undefined;
    const text = this.#transcript
      .filter((t) => t.offset >= s.from && t.offset <= s.to)
      .map((t) => t.text)
      .join('');
    this.#emitter.emit('skipped', { turn: s.turn, frames: s.frames, ms: s.ms, text });
  }

  #tick(): void {
    this.#timer = undefined;
    const turn = this.#turn;
    if (this.#closed || !turn?.active) return;
    const now = performance.now();
    if (this.#nextDue === undefined || this.#nextDue < now - 60) this.#nextDue = now;
    while (this.#queue.length > 0 && this.#nextDue <= now + 1) {
      const f = this.#queue.shift()!;
      this.#queuedMs -= f.durationMs;
      turn.playedFrames++;
      turn.playedMs += f.durationMs;
      turn.lastPlayedSeq = f.rtpSeq;
      this.#nextDue += f.durationMs;
      if (!turn.startedReported) {
        turn.startedReported = true;
        this.#sendReport(SPEECH_ACTIONS.playbackStarted, turn);
      }
      this.#emitter.emit('play', f, turn.id);
      if (this.#turn !== turn || !turn.active) return; // a listener interrupted
    }
    if (this.#queue.length > 0) this.#timer = setTimeout(() => this.#tick(), Math.max(0, this.#nextDue - performance.now()));
    else this.#maybeFinished();
  }

  #maybeFinished(): void {
    const turn = this.#turn;
    if (!turn?.active || !turn.ended || this.#queue.length > 0) return;
    turn.active = false;
    // The last frame handed over is still sounding until its end: report when it has.
    const report = this.#reportOf(SPEECH_ACTIONS.playbackStopped, turn);
    this.#sendReport(SPEECH_ACTIONS.playbackStopped, turn);
    this.#emitter.emit('finished', report);
  }

  /** Stops the current turn at once (interrupt): nothing more of it is played. */
  #stop(action: 'cleared'): void {
    const turn = this.#turn;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nextDue = undefined;
    this.#queue.length = 0;
    this.#queuedMs = 0;
    this.#flushSkip();
    if (!turn?.active) return;
    turn.active = false;
    if (action === 'cleared') {
      const report = this.#reportOf(SPEECH_ACTIONS.playbackCleared, turn);
      this.#sendReport(SPEECH_ACTIONS.playbackCleared, turn);
      this.#emitter.emit('interrupted', report);
    }
  }

  #reportOf(action: PlaybackReport['action'], turn: TurnState): Omit<PlaybackReport, 'device'> {
    return {
      action,
      turn: turn.id,
      playedMs: turn.playedMs,
      playedFrames: turn.playedFrames,
      ...(turn.lastPlayedSeq !== undefined ? { lastPlayedSeq: turn.lastPlayedSeq } : {}),
    };
  }

  #sendReport(action: PlaybackReport['action'], turn: TurnState): void {
    if (!this.#report || this.#session.state === 'closed') return;
    this.#session.append('control', reportData(this.#reportOf(action, turn))).catch(() => undefined);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#skipTimer);
    this.#timer = undefined;
    for (const off of this.#offs.splice(0)) off();
    this.#receiver.close();
    this.#emitter.clear();
  }
}
