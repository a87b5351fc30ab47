import { EVENT_KINDS, KindFilterSchema, LifelineError, NOW_OFFSET, START_OFFSET, formatOffset, parseOffset } from '../protocol/index.js';
import type { ClientFrame, EventKind, TimelineEvent } from '../protocol/index.js';

/** A kind filter as the relay will take it (deduplicated), or BAD_REQUEST. */
function checkedKinds(kinds: readonly string[] | undefined): EventKind[] | undefined {
  if (kinds === undefined) return undefined;
  const parsed = KindFilterSchema.safeParse([...new Set(kinds)]);
  if (!parsed.success) throw new LifelineError('BAD_REQUEST', `kinds: 1 to ${EVENT_KINDS.length} of ${EVENT_KINDS.join(', ')}, or none given for all`);
  return parsed.data;
}

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
  /** The relay answers `subscribe` with `subscribed` (welcome.features); older relays do not. */
  #answered = false;

  constructor(host: ReadPositionHost, opts: { kinds?: readonly EventKind[] | undefined; ackDelayMs?: number | undefined } = {}) {
    this.#host = host;
    this.#ackDelayMs = opts.ackDelayMs ?? 50;
    this.#kinds = checkedKinds(opts.kinds);
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

  /**
   * After a welcome: whether this relay answers moves (if not, nothing is waited for), and a filter
   * changed after the link's hello went out is sent now.
   */
  welcomed(features: readonly string[] | undefined): void {
    this.#answered = features?.includes('subscribed') === true;
    if (!this.#answered) this.#moving = 0;
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

  /**
   * The relay answered a `subscribe`: after the last answer, what arrives is the moved stream,
   * which starts after `from` (`now` resolved to the head).
   */
  subscribed(from: string): void {
    if (this.#moving === 0) return;
    this.#moving--;
    const seq = parseOffset(from);
    if (this.#moving === 0 && seq !== undefined) {
      this.#position = seq;
      this.#acked = seq;
    }
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
    this.#kinds = checkedKinds(kinds);
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
    if (this.#answered) this.#moving++;
    this.#host.send({ type: 'subscribe', from, ...(kinds ? { kinds } : {}) });
  }
}
