import { Emitter } from '../emitter.js';
import type { LifelineSession } from '../session.js';
import { SPEECH_ACTIONS, asPlaybackReport, controlAction, turnOf } from './control.js';
import type { PlaybackReport } from './control.js';
import { AudioPublisher } from './publisher.js';
import type { AudioPublisherOptions } from './publisher.js';

/** What speakPcm needs of an encoder (OpusEncoder from ./opus.js fits). */
export interface PcmEncoder {
  readonly frameMs: number;
  encodeAll(pcm: Int16Array): Uint8Array[];
}

export interface SpokenTurn {
  turn: string;
  interrupted: boolean;
  /** Milliseconds of the turn that left this agent (what devices may have played at most). */
  sentMs: number;
}

interface SpeakerEvents {
  /** Someone interrupted the turn being spoken (it has been stopped). */
  interrupted: (turn: string) => void;
  /** A device reported its playback (started, stopped, or cleared after playing `playedMs`). */
  playback: (report: PlaybackReport) => void;
}

function randomTurn(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return 't-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * An agent's voice: speaks turns of Opus audio, paced in real time, each framed by
 * `speech.started` / `speech.stopped` control events; stops at once when anyone in the session
 * sends an `interrupt`, and relays the devices' playback reports so the agent can truncate its
 * context to what the user actually heard.
 */
export class AgentSpeaker {
  readonly publisher: AudioPublisher;
  readonly #session: LifelineSession;
  readonly #emitter = new Emitter<SpeakerEvents>();
  readonly #offs: (() => void)[] = [];
  #speaking: { turn: string; finish: (interrupted: boolean) => void } | undefined;

  constructor(session: LifelineSession, opts: AudioPublisherOptions = {}) {
    this.#session = session;
    this.publisher = new AudioPublisher(session, { track: 'speech', ...opts });
    this.#offs.push(
      session.on('event', (e) => {
        const report = asPlaybackReport(e);
        if (report) {
          this.#emitter.emit('playback', report);
          return;
        }
        if (controlAction(e) !== SPEECH_ACTIONS.interrupt) return;
        const turn = turnOf(e);
        const speaking = this.#speaking;
        if (speaking && (!turn || turn === speaking.turn)) speaking.finish(true);
      }),
    );
  }

  on<K extends keyof SpeakerEvents>(name: K, listener: SpeakerEvents[K]): () => void {
    return this.#emitter.on(name, listener);
  }

  /** The turn being spoken, if any. */
  get speaking(): string | undefined {
    return this.#speaking?.turn;
  }

  /**
   * Speaks one turn of Opus packets (`frameMs` each). Resolves when the last frame has left, or
   * at once when the turn is interrupted.
   */
  async speak(packets: readonly Uint8Array[], opts: { turn?: string; frameMs?: number } = {}): Promise<SpokenTurn> {
    if (this.#speaking) this.#speaking.finish(true);
    const turn = opts.turn ?? randomTurn();
    // Committed before the first frame leaves: every device sees the turn begin before its audio.
    await this.#session.append('control', { action: SPEECH_ACTIONS.started, turn });
    const frameMs = opts.frameMs ?? 20;
    const totalMs = packets.length * frameMs;
    return new Promise<SpokenTurn>((resolve) => {
      let done = false;
      const finish = (interrupted: boolean): void => {
        if (done) return;
        done = true;
        if (this.#speaking?.turn === turn) this.#speaking = undefined;
        const unsent = interrupted ? this.publisher.clear() : 0;
        const sentMs = totalMs - unsent;
        const data = { action: SPEECH_ACTIONS.stopped, turn, reason: interrupted ? 'interrupted' : 'done', sentMs };
        this.#session.append('control', data).catch(() => undefined);
        if (interrupted) this.#emitter.emit('interrupted', turn);
        resolve({ turn, interrupted, sentMs });
      };
      this.#speaking = { turn, finish };
      this.publisher.pushAll(packets, frameMs);
      void this.publisher.drained().then(() => finish(false));
    });
  }

  /**
   * Speaks one turn of 16-bit mono PCM (at the encoder's rate; 20 ms frames by default),
   * encoded to Opus as it is queued. Resolves like speak().
   */
  speakPcm(pcm: Int16Array, encoder: PcmEncoder, opts: { turn?: string } = {}): Promise<SpokenTurn> {
    return this.speak(encoder.encodeAll(pcm), { ...opts, frameMs: encoder.frameMs });
  }

  close(): void {
    this.#speaking?.finish(true);
    for (const off of this.#offs.splice(0)) off();
    this.publisher.close();
    this.#emitter.clear();
  }
}
