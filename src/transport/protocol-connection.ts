import {
  LifelineError,
  PROTOCOL_VERSION,
  checkEventBody,
  parseMessage,
  validateClientFrame,
  encodeFrame,
  formatOffset,
  isLifelineError,
  parseOffset,
  NOW_OFFSET,
  EVENT_KINDS,
  PROTOCOL_FEATURES,
} from '../protocol/index.js';
import type { AppendFrame, ClientFrame, EventKind, HelloFrame, Json, Origin, ServerFrame, TimelineEvent, TokenClaims } from '../protocol/index.js';
import type { LeaseManager, Timeline, TimelineReader } from '../timeline/index.js';
import type { LeaseRecord } from '../store/index.js';
import type { FrameLink } from './frame-link.js';

export interface ConnectionLimits {
  /** Largest frame accepted, in bytes (default 256 KiB). */
  maxFrameBytes: number;
  /** Default flow-control window in events (the client may ask for another). */
  window: number;
  /** Interval the client is asked to ping at. */
  heartbeatMs: number;
  /** The connection is closed after this long without any frame from the client. */
  idleTimeoutMs: number;
  /** Time allowed for the hello frame after connecting. */
  helloTimeoutMs: number;
  /** Sending pauses while the link buffers more than this many bytes. */
  highWaterBytes: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxFrameBytes: 256 * 1024,
  window: 512,
  heartbeatMs: 1000,
  idleTimeoutMs: 5000,
  helloTimeoutMs: 5000,
  highWaterBytes: 1024 * 1024,
};

/** Hooks for metrics and logs; every method optional. */
export interface ConnectionObserver {
  opened?(c: ProtocolConnection): void;
  /** Hello accepted: the connection's origin (participant, device, role) is known. */
  welcomed?(c: ProtocolConnection): void;
  /** No frame for 2.5 of the client's heartbeat intervals: the link is probably gone. */
  silent?(c: ProtocolConnection): void;
  /** A silent connection sent something again. */
  alive?(c: ProtocolConnection): void;
  closed?(c: ProtocolConnection, code: number, reason: string): void;
  frameIn?(type: string, bytes: number): void;
  eventsOut?(count: number): void;
  error?(code: string): void;
  failed?(err: unknown, c: ProtocolConnection): void;
}

type State = 'awaiting-hello' | 'open' | 'closed';

/** What agent connections can use besides the timeline: leases, and what to do on release. */
export interface ConnectionServices {
  leases?: LeaseManager;
  /** A lease was released by its holder (with a handoff target, if any). */
  released?: (sessionId: string, lease: LeaseRecord, handoff: { to: string; context?: Json | undefined } | undefined) => void;
}

const EVENTS_PER_PULL = 64;

/** A stream's kind filter: undefined when it lets every kind through (no filtering to do). */
function kindFilter(kinds: readonly EventKind[] | undefined): ReadonlySet<EventKind> | undefined {
  const set = kinds ? new Set(kinds) : undefined;
  return set && EVENT_KINDS.some((k) => !set.has(k)) ? set : undefined;
}

/**
 * One client connection speaking the Lifeline protocol over any FrameLink: hello/welcome, appends
 * with acknowledgements, the event stream with flow control (a window of unacknowledged events),
 * ping/pong, typed errors. Knows nothing of the transport beneath it.
 */
export class ProtocolConnection {
  readonly sessionId: string;
  readonly claims: TokenClaims;
  #origin: Origin | undefined;
  #state: State = 'awaiting-hello';
  readonly #link: FrameLink;
  readonly #timeline: Timeline;
  readonly #limits: ConnectionLimits;
  readonly #observer: ConnectionObserver;
  readonly #services: ConnectionServices;
  #reader: TimelineReader | undefined;
  #window = 0;
  #acked = 0;
  /** hello.echo === false: this device's own appends after `#liveFrom` are not sent back to it. */
  #echo = true;
  #liveFrom = 0;
  /** hello/subscribe `kinds`: only events of these kinds are sent. */
  #kinds: ReadonlySet<EventKind> | undefined;
  /** Seq of the last event sent (with a filter on, the events after it were skipped, not sent). */
  #lastSent = 0;
  /** Counts `subscribe`s (see #pump). */
  #moves = 0;
  /** hello.features has `subscribed`: each subscribe is answered. */
  #answersMoves = false;
  /**
   * Seq of the last event the pump has handled (sent or skipped). The reader's cursor runs ahead
   * of it while a batch is in hand; acknowledgements never reach past it.
   */
  #processed = 0;
  #ackWaker: (() => void) | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #lastFrameAt = Date.now();
  #silentAfterMs = Infinity;
  #silent = false;
  #clean = false;
  /** Serializes frame handling so appends are submitted (and acknowledged) in arrival order. */
  #inbox: Promise<void> = Promise.resolve();

  constructor(
    link: FrameLink,
    timeline: Timeline,
    sessionId: string,
    claims: TokenClaims,
    limits: ConnectionLimits,
    observer: ConnectionObserver = {},
    services: ConnectionServices = {},
  ) {
    this.#services = services;
    this.#link = link;
    this.#timeline = timeline;
    this.sessionId = sessionId;
    this.claims = claims;
    this.#limits = limits;
    this.#observer = observer;
    this.#idleTimer = setTimeout(() => this.fail(new LifelineError('HELLO_REQUIRED', 'no hello in time')), limits.helloTimeoutMs);
    observer.opened?.(this);
  }

  get state(): State {
    return this.#state;
  }

  get origin(): Origin | undefined {
    return this.#origin;
  }

  /** True when the connection ended because the client said goodbye (not a lost link). */
  get cleanClose(): boolean {
    return this.#clean;
  }

  /** Feed one raw message from the transport. */
  receive(raw: string | Uint8Array): void {
    if (this.#state === 'closed') return;
    this.#lastFrameAt = Date.now();
    if (this.#silent) {
      this.#silent = false;
      this.#services.leases?.alive(this);
      this.#observer.alive?.(this);
    }
    const bytes = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
    if (bytes > this.#limits.maxFrameBytes) {
      this.#observer.frameIn?.('oversized', bytes);
      this.#sendError(new LifelineError('PAYLOAD_TOO_LARGE', `frame of ${bytes} bytes exceeds ${this.#limits.maxFrameBytes}`));
      return;
    }
    let values: unknown[];
    try {
      values = parseMessage(raw);
    } catch (err) {
      this.#observer.frameIn?.('invalid', bytes);
      this.#sendError(isLifelineError(err) ? err : new LifelineError('BAD_FRAME'));
      return;
    }
    for (const value of values) {
      let frame: ClientFrame;
      try {
        frame = validateClientFrame(value);
      } catch (err) {
        this.#observer.frameIn?.('invalid', bytes);
        const e = isLifelineError(err) ? err : new LifelineError('BAD_FRAME');
        // A subscribe that cannot be applied leaves the client's idea of its stream wrong (it
        // waits for `subscribed`): end the connection; the client resumes on a new one.
        if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'subscribe') {
          this.fail(e);
          return;
        }
        this.#sendError(e);
        continue;
      }
      this.#observer.frameIn?.(frame.type, bytes);
      this.#inbox = this.#inbox.then(() => this.#handle(frame)).catch((err: unknown) => this.fail(err));
    }
  }

  async #handle(frame: ClientFrame): Promise<void> {
    if (this.#state === 'closed') return;
    if (this.#state === 'awaiting-hello') {
      if (frame.type !== 'hello') throw new LifelineError('HELLO_REQUIRED');
      await this.#hello(frame);
      return;
    }
    switch (frame.type) {
      case 'hello':
        this.#sendError(new LifelineError('BAD_FRAME', 'hello was already received'));
        return;
      case 'append':
        await this.#append(frame);
        return;
      case 'ack':
        this.#ack(parseOffset(frame.offset) ?? 0);
        return;
      case 'subscribe':
        await this.#subscribe(frame.from, frame.kinds);
        return;
      case 'ping':
        this.#send({ type: 'pong', id: frame.id, ...(frame.t !== undefined ? { t: frame.t } : {}) });
        return;
      case 'claim':
        await this.#claim(frame.role, frame.epoch);
        return;
      case 'release':
        await this.#release(frame.role, frame.handoff);
        return;
      case 'commit':
        await this.#leases().commit(this.sessionId, frame.role, this, parseOffset(frame.offset) ?? 0);
        return;
      case 'register':
        this.#sendError(new LifelineError('BAD_FRAME', 'register belongs on the worker channel (/v1/workers/ws)'));
        return;
    }
  }

  #leases(): LeaseManager {
    if (!this.#services.leases) throw new LifelineError('BAD_FRAME', 'this relay has no leases');
    if (this.#origin?.role !== 'agent') throw new LifelineError('FORBIDDEN', 'only agents hold leases');
    return this.#services.leases;
  }

  async #claim(role: string, epoch: number | undefined): Promise<void> {
    try {
      const grant = await this.#leases().claim(this.sessionId, role, this.claims.participant, this, epoch);
      this.#send({ type: 'lease', role, holder: this.claims.participant, epoch: grant.lease.epoch, cursor: grant.cursor });
    } catch (err) {
      this.#sendError(isLifelineError(err) ? err : new LifelineError('INTERNAL'));
    }
  }

  async #release(role: string, handoff: { to: string; context?: Json | undefined } | undefined): Promise<void> {
    try {
      const lease = await this.#leases().release(this.sessionId, role, this);
      this.#services.released?.(this.sessionId, lease, handoff);
    } catch (err) {
      this.#sendError(isLifelineError(err) ? err : new LifelineError('INTERNAL'));
    }
  }

  async #hello(hello: HelloFrame): Promise<void> {
    const device = hello.device ?? `d-${crypto.randomUUID().slice(0, 8)}`;
    this.#origin = {
      participant: this.claims.participant,
      device,
      role: this.claims.role === 'admin' ? 'system' : this.claims.role,
    };
    this.#window = hello.window ?? this.#limits.window;
    this.#silentAfterMs = 2.5 * (hello.heartbeatMs ?? this.#limits.heartbeatMs);
    const head = await this.#timeline.head(this.sessionId);
    const producers = [];
    for (const id of hello.producers ?? []) {
      const p = await this.#timeline.producer(this.sessionId, this.#producerKey(id));
      producers.push(p ? { ...p, id } : { id, epoch: 0, seq: -1 });
    }
    this.#echo = hello.echo !== false;
    this.#kinds = kindFilter(hello.kinds);
    this.#answersMoves = hello.features?.includes('subscribed') === true;
    this.#liveFrom = head;
    if (hello.resume !== undefined) {
      const after = hello.resume === NOW_OFFSET ? head : (parseOffset(hello.resume) ?? 0);
      this.#reader = await this.#timeline.reader(this.sessionId, after);
      this.#acked = after;
      this.#lastSent = after;
      this.#processed = after;
    }
    if (this.#state === 'closed') {
      this.#reader?.close();
      return;
    }
    this.#state = 'open';
    this.#send({
      type: 'welcome',
      v: PROTOCOL_VERSION,
      session: this.sessionId,
      participant: this.#origin.participant,
      device,
      role: this.#origin.role,
      head: formatOffset(head),
      producers,
      heartbeatMs: this.#limits.heartbeatMs,
      window: this.#window,
      maxFrameBytes: this.#limits.maxFrameBytes,
      features: [...PROTOCOL_FEATURES],
    });
    this.#armIdleTimer();
    this.#observer.welcomed?.(this);
    if (this.#reader) void this.#pump(this.#reader);
  }

  async #append(frame: AppendFrame): Promise<void> {
    const problem = checkEventBody(frame);
    if (problem) {
      this.#sendError(new LifelineError('BAD_FRAME', problem), frame.producer);
      return;
    }
    if (frame.producer.id.startsWith('@') && !this.#services.leases?.held(this.sessionId, frame.producer.id.slice(1), this)) {
      this.#sendError(new LifelineError('NOT_LEASE_HOLDER', `appending as ${frame.producer.id} needs that role's lease`), frame.producer);
      return;
    }
    if (frame.kind === 'presence' && this.#origin?.role === 'user') {
      this.#sendError(new LifelineError('FORBIDDEN', 'users do not publish presence; the relay derives it'), frame.producer);
      return;
    }
    // Wait for the session check, not for the commit: the next frame's append joins the same
    // group commit. Acknowledgements still leave in order (commits resolve in submit order).
    const pending = this.#timeline.append(this.sessionId, [
      { from: this.#origin!, producer: { ...frame.producer, id: this.#producerKey(frame.producer.id) }, kind: frame.kind, track: frame.track, data: frame.data, bin: frame.bin },
    ]);
    pending.then(
      ([result]) => {
        if (!result) return;
        if (result.ok) this.#send({ type: 'appended', producer: frame.producer, offset: result.offset, duplicate: result.duplicate });
        else this.#sendError(result.error, frame.producer);
      },
      (err: unknown) => this.fail(err),
    );
  }

  /** Producer ids are scoped by participant, so no participant can fence another's producer. */
  #producerKey(id: string): string {
    // `@role` is the role's lease producer, shared by its successive holders (fenced by epoch).
    return id.startsWith('@') ? id : `${this.claims.participant}/${id}`;
  }

  /** Whether some events are skipped rather than sent (hello.echo === false, or a kind filter). */
  get #filtering(): boolean {
    return !this.#echo || this.#kinds !== undefined;
  }

  #ack(seq: number): void {
    // With a filter on, an ack of the last event sent also covers the events skipped after it.
    const through = this.#filtering && seq >= this.#lastSent ? this.#processed : seq;
    if (through > this.#acked) {
      this.#acked = Math.min(through, this.#processed);
      const wake = this.#ackWaker;
      this.#ackWaker = undefined;
      wake?.();
    }
  }

  async #subscribe(from: string, kinds: readonly EventKind[] | undefined): Promise<void> {
    const head = await this.#timeline.head(this.sessionId);
    const after = from === NOW_OFFSET ? head : (parseOffset(from) ?? 0);
    if (after > head) throw new LifelineError('OFFSET_OUT_OF_RANGE', `offset ${from} is beyond the head ${formatOffset(head)}`);
    const started = this.#reader === undefined;
    if (this.#reader) {
      this.#reader.seek(after);
    } else {
      const reader = await this.#timeline.reader(this.sessionId, after);
      if (this.#state !== 'open') {
        reader.close();
        return;
      }
      this.#reader = reader;
    }
    if (kinds) this.#kinds = kindFilter(kinds);
    this.#acked = after;
    this.#lastSent = after;
    this.#processed = after;
    this.#moves++;
    // Before any event of the moved stream: the client drops what arrives until this frame.
    if (this.#answersMoves) this.#send({ type: 'subscribed', from: formatOffset(after) });
    if (started) void this.#pump(this.#reader);
    else this.#ackWaker?.();
  }

  /**
   * Sends the events the filters let through: of the wanted kinds (`kinds`), and not this device's
   * own live appends (hello.echo === false).
   */
  #sendFiltered(events: readonly TimelineEvent[], cursor: number): void {
    const me = this.#origin!;
    const kinds = this.#kinds;
    let sent = 0;
    for (const event of events) {
      if (kinds && !kinds.has(event.kind)) continue;
      const seq = parseOffset(event.offset) ?? 0;
      if (!this.#echo && seq > this.#liveFrom && event.from.device === me.device && event.from.participant === me.participant) continue;
      this.#send({ type: 'event', event });
      this.#lastSent = seq;
      sent++;
    }
    if (sent > 0) this.#observer.eventsOut?.(sent);
    // Skipped events need no acknowledgement: once every event sent is acknowledged, so are they.
    if (this.#acked >= this.#lastSent) this.#acked = cursor;
  }

  /** Sends events while the window and the link allow, pulling from the reader. */
  async #pump(reader: TimelineReader): Promise<void> {
    try {
      while (this.#state === 'open' && !reader.closed) {
        const room = this.#window - (reader.cursor - this.#acked);
        if (room <= 0) {
          await new Promise<void>((resolve) => (this.#ackWaker = resolve));
          continue;
        }
        const moves = this.#moves;
        const events = await reader.next(Math.min(room, EVENTS_PER_PULL));
        if (this.#state !== 'open') return;
        // The stream moved while this batch was read, which may have started before or after the
        // move: read again from where the move put the stream (#processed, which no batch has
        // moved since).
        if (this.#moves !== moves) {
          reader.seek(this.#processed);
          continue;
        }
        if (this.#filtering) {
          this.#sendFiltered(events, reader.cursor);
        } else {
          for (const event of events) this.#send({ type: 'event', event });
          if (events.length > 0) this.#observer.eventsOut?.(events.length);
        }
        this.#processed = reader.cursor;
        if (this.#link.bufferedAmount > this.#limits.highWaterBytes) {
          await this.#link.waitForDrain(this.#limits.highWaterBytes / 4);
        }
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * One timer per connection, set for the next deadline: silence (2.5 heartbeats without a frame:
   * presence turns `reconnecting`) and idleness (idleTimeoutMs: the connection is closed).
   */
  #armIdleTimer(): void {
    clearTimeout(this.#idleTimer);
    const check = (): void => {
      if (this.#state === 'closed') return;
      const idle = Date.now() - this.#lastFrameAt;
      if (idle >= this.#limits.idleTimeoutMs) {
        this.close(4408, 'idle: no frames within the heartbeat timeout');
        return;
      }
      if (!this.#silent && idle >= this.#silentAfterMs) {
        this.#silent = true;
        this.#services.leases?.lost(this);
        this.#observer.silent?.(this);
      }
      const nextSilence = this.#silent ? Infinity : this.#silentAfterMs - idle;
      const next = Math.min(this.#limits.idleTimeoutMs - idle, nextSilence, 100);
      this.#idleTimer = setTimeout(check, Math.max(10, next));
    };
    this.#idleTimer = setTimeout(check, Math.min(this.#limits.idleTimeoutMs, this.#silentAfterMs));
  }

  #send(frame: ServerFrame): void {
    if (this.#state === 'closed') return;
    this.#link.send(encodeFrame(frame));
  }

  #sendError(err: LifelineError, producer?: AppendFrame['producer'], fatal = false): void {
    this.#observer.error?.(err.code);
    this.#send({ type: 'error', code: err.code, message: err.message, ...(producer ? { producer } : {}), fatal });
  }

  /** Asks the client to restart ICE (meaningful on WebRTC links only). */
  requestRestart(reason: string): void {
    if (this.#state === 'open') this.#send({ type: 'restart', reason });
  }

  /** Milliseconds since the client last sent anything. */
  get idleMs(): number {
    return Date.now() - this.#lastFrameAt;
  }

  /** Ends the connection with a typed error frame and the error's close code. */
  fail(err: unknown): void {
    if (this.#state === 'closed') return;
    const e = isLifelineError(err) ? err : new LifelineError('INTERNAL');
    if (!isLifelineError(err)) this.#observer.failed?.(err, this);
    this.#sendError(e, undefined, true);
    this.close(e.closeCode, e.code);
  }

  /** Closes the link and releases everything the connection holds. Idempotent. */
  close(code = 1000, reason = 'closed'): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#idleTimer);
    this.#reader?.close();
    this.#ackWaker?.();
    this.#services.leases?.lost(this);
    this.#link.close(code, reason);
    this.#observer.closed?.(this, code, reason);
  }

  /** The transport reports the link is gone (no close frame can be sent). */
  linkLost(): void {
    this.close(1006, 'link lost');
  }

  /** The client said goodbye (a normal close, or DELETE of its WebRTC connection). */
  ended(reason = 'client closed'): void {
    if (this.#state === 'closed') return;
    this.#clean = true;
    this.close(1000, reason);
  }
}
