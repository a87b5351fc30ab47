import { EVENT_KINDS, LifelineError, NOW_OFFSET, START_OFFSET, formatOffset, parseOffset } from '../protocol/index.js';
import type { ClientFrame, EventKind, TimelineEvent } from '../protocol/index.js';

/** What a ReadPosition needs from the session that owns it. */
export interface ReadPositionHost {
  /** Sends a frame on the current link; dropped when there is none. */
  send(frame: ClientFrame): void;
  /** There is a link (frames sent now go out on it). */
  hasLink(): boolean;
  /** The link was welcomed (frames sent now will be handled). */
  isOpen(): boolean;
  /** The app's iterators are full: hold acknowledgements, so the relay stops sending. */
  isFull(): boolean;
  /** The flow-control window the relay granted (welcome), or the default. */
  window(): number;
}

/**
 * What a client has read of its session's timeline and told the relay about it: the newest offset
 * delivered (the resume point), the newest acknowledged, the kind filter, and the moves of the
 * stream (`subscribe`) the relay has not answered yet, during which arriving events belong to the
 * old stream and are dropped.
 */
export class ReadPosition {
  readonly #host: ReadPositionHost;
  readonly #ackDelayMs: number;
  /** Seq of the newest event delivered; undefined until the first welcome. */
  #position: number | undefined;
  #acked = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** The kind filter (undefined: all kinds); `#kindsUnsent` while the relay has an older one. */
  #kinds: EventKind[] | undefined;
  #kindsUnsent = false;
  /** `subscribe`s sent on this link and not yet answered. */
  #moving = 0;

  constructor(host: ReadPositionHost, opts: { kinds?: readonly EventKind[] | undefined; ackDelayMs?: number | undefined } = {}) {
    if (opts.kinds?.length === 0) throw new LifelineError('BAD_REQUEST', 'kinds: at least one kind, or none given for all');
    this.#host = host;
    this.#ackDelayMs = opts.ackDelayMs ?? 50;
    this.#kinds = opts.kinds ? [...new Set(opts.kinds)] : undefined;
  }

  /** Offset of the newest event delivered (`-1` before any). */
  get lastOffset(): string {
    return formatOffset(this.#position ?? 0);
  }

  get kinds(): readonly EventKind[] | undefined {
    return this.#kinds;
  }

  /**
   * The read part of a `hello` on a new link: resume after the newest event delivered (before the
   * first welcome: where the app asked), with the current filter. The new link's stream starts
   * there, so nothing of an older stream arrives on it.
   */
  hello(resume: string | undefined): { resume: string; kinds?: EventKind[] } {
    this.#kindsUnsent = false;
    this.#moving = 0;
    return {
      resume: this.#position !== undefined ? formatOffset(this.#position) : (resume ?? START_OFFSET),
      ...(this.#kinds ? { kinds: [...this.#kinds] } : {}),
    };
  }

  /** The first welcome makes the resume point concrete (`now` is the head it names). */
  start(resume: string | undefined, head: string): void {
    const r = resume ?? START_OFFSET;
    this.#position = r === NOW_OFFSET ? (parseOffset(head) ?? 0) : (parseOffset(r) ?? 0);
    this.#acked = this.#position;
  }

  /** After a welcome: a filter changed after that link's hello went out is sent now. */
  welcomed(): void {
    if (this.#kindsUnsent) this.#sendKinds();
  }

  /** The link is gone: the next one resumes after the newest event delivered. */
  linkLost(connected: boolean): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (connected) this.#acked = this.#position ?? 0;
  }

  /** An event from the relay: true when it is new and in order (the caller delivers it). */
  accept(event: TimelineEvent): boolean {
    // Sent before the relay moved the stream (resume, setKinds): it comes again if wanted.
    if (this.#moving > 0) return false;
    const seq = parseOffset(event.offset);
    if (seq === undefined || this.#position === undefined || seq <= this.#position) return false; // duplicate
    this.#position = seq;
    return true;
  }

  /** The relay answered a `subscribe`: what arrives from now on is the moved stream. */
  subscribed(): void {
    if (this.#moving > 0) this.#moving--;
  }

  /** Acknowledges a quarter window at once, less after `ackDelayMs`; never while the app is full. */
  maybeAck(): void {
    if (this.#position === undefined || this.#position <= this.#acked || this.#host.isFull()) return;
    if (this.#position - this.#acked >= Math.max(1, this.#host.window() >> 2)) {
      this.ackNow();
      return;
    }
    this.#ackTimer ??= setTimeout(() => {
      this.#ackTimer = undefined;
      if (!this.#host.isFull()) this.ackNow();
    }, this.#ackDelayMs);
  }

  /** Acknowledges everything delivered, if the link is open. */
  ackNow(): void {
    if (this.#position === undefined || this.#position <= this.#acked) return;
    if (!this.#host.isOpen()) return;
    this.#acked = this.#position;
    this.#host.send({ type: 'ack', offset: formatOffset(this.#position) });
  }

  /** See LifelineSession.setKinds. */
  setKinds(kinds: readonly EventKind[] | undefined): void {
    if (kinds !== undefined && kinds.length === 0) throw new LifelineError('BAD_REQUEST', 'kinds: at least one kind, or undefined for all');
    this.#kinds = kinds ? [...new Set(kinds)] : undefined;
    this.#kindsUnsent = true;
    if (this.#host.isOpen()) this.#sendKinds();
  }

  /** Moves the stream to after `from` (stream.resume): events from there on, each once. */
  resumeFrom(from: string): void {
    const seq = from === NOW_OFFSET ? undefined : parseOffset(from);
    if (from !== NOW_OFFSET && seq === undefined) throw new LifelineError('BAD_REQUEST', `not an offset: ${from}`);
    if (seq !== undefined) {
      this.#position = seq;
      this.#acked = seq;
    }
    this.#subscribe(from);
  }

  dispose(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  /** Tells the relay the current filter, from the newest event delivered on. */
  #sendKinds(): void {
    if (this.#position === undefined) return;
    this.#kindsUnsent = false;
    this.#subscribe(formatOffset(this.#position), this.#kinds ? [...this.#kinds] : [...EVENT_KINDS]);
  }

  /** Moves the relay's stream; what arrives until it answers belongs to the old one. */
  #subscribe(from: string, kinds?: EventKind[]): void {
    if (!this.#host.hasLink()) return;
    this.#moving++;
    this.#host.send({ type: 'subscribe', from, ...(kinds ? { kinds } : {}) });
  }
}
