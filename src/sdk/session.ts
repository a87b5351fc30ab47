import {
  LifelineError,
  PROTOCOL_VERSION,
  asPresenceChange,
  checkEventBody,
  parseMessage,
  validateServerFrame,
  encodeFrame,
  isErrorCode,
} from '../protocol/index.js';
import type { ClientFrame, ErrorCode, EventBody, EventKind, Json, PresenceChange, ServerFrame, TimelineEvent, WelcomeFrame } from '../protocol/index.js';
import type { ClientLink, ClientTransport, LinkMedia } from './client-transport.js';
import { Emitter } from './emitter.js';
import { EventStream } from './event-stream.js';
import { Outbox } from './outbox.js';
import { ReadPosition } from './read-position.js';
import { ExponentialBackoff, FINAL_ERRORS } from './reconnect-policy.js';
import type { ReconnectPolicy } from './reconnect-policy.js';
import type { AppendOptions, ConnectionState, LeaseGrant, SessionEvents, SessionOptions, StateChange } from './session-types.js';

export type { AppendOptions, ConnectionState, LeaseGrant, SessionEvents, SessionOptions, StateChange } from './session-types.js';

function randomId(prefix: string): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return prefix + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Reads the session id from a token's claims (no verification: that is the relay's job). */
export function sessionOfToken(token: string): string {
  const part = token.split('.')[1];
  if (!part) throw new LifelineError('UNAUTHORIZED', 'token is not a JWT');
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const sid = (JSON.parse(json) as { sid?: unknown }).sid;
    if (typeof sid === 'string') return sid;
  } catch {
    // fall through
  }
  throw new LifelineError('UNAUTHORIZED', 'token names no session');
}

/**
 * A client's view of one session: the ordered event stream (resumable, each event once), an
 * outbox of idempotent appends that retries until acknowledged, heartbeats, and reconnection with
 * resume. Runs on web-standard APIs; the runtime's link comes from the transport passed in.
 */
export class LifelineSession {
  readonly id: string;
  readonly device: string;
  readonly stream: EventStream;
  readonly #opts: SessionOptions;
  readonly #emitter = new Emitter<SessionEvents>();
  readonly #policy: ReconnectPolicy;
  #outbox: Outbox;
  /** append() calls between their start and their entry in the outbox. */
  #entering = 0;
  /** Roles whose lease this session holds, with their epochs (re-claimed after reconnects). */
  readonly #leases = new Map<string, number>();
  #claiming: { role: string; resolve: (grant: LeaseGrant) => void; reject: (err: LifelineError) => void } | undefined;
  #link: ClientLink | undefined;
  #state: ConnectionState = 'connecting';
  /** What this client has read and acknowledged, its kind filter, and moves of its stream. */
  readonly #read: ReadPosition;
  /**
   * While the outbox holds appends an earlier instance left (SessionOptions.outbox.restore): new
   * appends wait until those are settled (then a new epoch begins). See #placeRestored.
   */
  #restoredSettled: { promise: Promise<void>; resolve: () => void } | undefined;
  #saveQueued = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #lastFrameAt = 0;
  #pingId = 0;
  #welcome: WelcomeFrame | undefined;
  #lostAt = 0;
  #lastError: ErrorCode | undefined;
  #attempt = 0;
  #abort: AbortController | undefined;
  #firstWelcome: { resolve: () => void; reject: (err: unknown) => void } | undefined;
  #rtt: number | undefined;
  /** When a frame last went to the relay (a ping is skipped while other frames flow). */
  #lastSentAt = 0;
  readonly #transports: ClientTransport[];
  #transportIndex = 0;
  #failures = 0;
  /** Index into [url, ...urls] of the relay node tried next. */
  #node = 0;
  #restart: { abort: AbortController; timer: ReturnType<typeof setTimeout> } | undefined;
  #welcomeTimeout: ReturnType<typeof setTimeout> | undefined;
  #lastWelcomedLink: ClientLink | undefined;

  private constructor(opts: SessionOptions) {
    this.#opts = opts;
    this.id = opts.session ?? sessionOfToken(opts.token);
    this.device = opts.device ?? randomId('d-');
    this.#policy = opts.reconnect ?? new ExponentialBackoff();
    this.#transports = Array.isArray(opts.transport) ? [...opts.transport] : [opts.transport];
    if (this.#transports.length === 0) throw new LifelineError('BAD_REQUEST', 'no transport');
    this.#outbox = new Outbox(opts.producer ?? this.device, opts.epoch ?? 0, opts.maxOutbox ?? 4096);
    if (opts.outbox?.restore && opts.epoch === undefined) {
      const onRefused = opts.outbox.onRefused ?? ((err: LifelineError) => setTimeout(() => this.#emitter.emit('error', err), 0));
      this.#outbox.restore(opts.outbox.restore, onRefused);
      if (this.#outbox.size > 0) {
        let resolve = (): void => undefined;
        const promise = new Promise<void>((r) => (resolve = r));
        this.#restoredSettled = { promise, resolve };
      }
    }
    this.#read = new ReadPosition(
      {
        send: (frame) => this.#send(frame),
        hasLink: () => this.#link !== undefined,
        isOpen: () => this.#open,
        isFull: () => this.stream.full,
        window: () => this.#welcome?.window ?? 512,
      },
      { kinds: opts.kinds, ackDelayMs: opts.ackDelayMs },
    );
    this.stream = new EventStream(
      opts.window ?? 512,
      () => this.#read.maybeAck(),
      (from) => this.#read.resumeFrom(from),
      () => this.#emitter.listenerCount('event') > 0,
    );
  }

  /** Connects and resolves once the relay has welcomed us. */
  static async connect(opts: SessionOptions): Promise<LifelineSession> {
    const s = new LifelineSession(opts);
    await new Promise<void>((resolve, reject) => {
      s.#firstWelcome = { resolve, reject };
      s.#emit('connecting');
      void s.#attemptConnect();
    });
    return s;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** A method, not a field read, so TypeScript does not narrow it across awaits. */
  get #closed(): boolean {
    return this.#state === 'closed';
  }

  /** Offset of the newest event this client has received (`-1` before any). */
  get lastOffset(): string {
    return this.#read.lastOffset;
  }

  /** The producer this session appends as: id, epoch and the next seq. */
  get producer(): { id: string; epoch: number; nextSeq: number; pending: number } {
    return { id: this.#outbox.producerId, epoch: this.#outbox.epoch, nextSeq: this.#outbox.nextSeq, pending: this.#outbox.size };
  }

  /** Round-trip time of the last heartbeat ping, in ms (pings pause while events and acknowledgements flow both ways). */
  get rttMs(): number | undefined {
    return this.#rtt;
  }

  /** The transport in use (or being tried). */
  get transport(): string {
    return this.#transport.name;
  }

  get #transport(): ClientTransport {
    return this.#transports[this.#transportIndex]!;
  }

  /** A link the relay has welcomed: frames sent now will be handled (even mid-restart). */
  get #open(): boolean {
    return this.#link !== undefined && this.#link === this.#lastWelcomedLink;
  }

  get welcome(): WelcomeFrame | undefined {
    return this.#welcome;
  }

  /**
   * Media tracks of the current link (WebRTC), while a welcomed link is up (also during an ICE
   * restart, which keeps the link); undefined between links and on links without media.
   */
  get media(): LinkMedia | undefined {
    return this.#open ? this.#link?.media : undefined;
  }

  on<K extends keyof SessionEvents>(name: K, listener: SessionEvents[K]): () => void {
    if (this.#state === 'closed') return () => {};
    const off = this.#emitter.on(name, listener);
    // A first event listener may unblock acknowledgements held for the unclaimed stream.
    if (name === 'event') this.#read.maybeAck();
    return off;
  }

  /**
   * Presence changes the relay derives (a device connected, reconnecting or gone; whether its
   * participant is online), as they reach this client in timeline order. Needs a read stream
   * (`resume`). Returns the unsubscribe.
   */
  onPresenceChange(listener: (change: PresenceChange, event: TimelineEvent) => void): () => void {
    return this.on('event', (event) => {
      if (event.kind !== 'presence' || event.from.role !== 'system') return;
      const change = asPresenceChange(event.data);
      if (change) listener(change, event);
    });
  }

  /**
   * Joins another device (or tab) as the same participant: its own connection, its own producer
   * (exactly-once on its own), its own read position. Nothing is kicked.
   */
  attach(opts: Partial<Omit<SessionOptions, 'url' | 'token' | 'session'>> = {}): Promise<LifelineSession> {
    return LifelineSession.connect({
      ...this.#opts,
      producer: undefined,
      epoch: undefined,
      device: undefined,
      resume: undefined,
      outbox: undefined,
      ...opts,
      session: this.id,
    });
  }

  // ---- agent leases ----------------------------------------------------------------------

  /**
   * Claims the lease of an agent role in this session: from now on this session appends as the
   * role's producer (`@<role>`) at the granted epoch, and every earlier holder is fenced (its
   * appends are refused with STALE_EPOCH). Only agents can claim; nothing may be pending.
   * After a reconnect the lease is re-claimed at the same epoch automatically.
   */
  async claim(role: string): Promise<LeaseGrant> {
    if (!this.#open) throw new LifelineError('CONNECTION_CLOSED', 'not connected');
    if (this.#claiming) throw new LifelineError('BAD_REQUEST', 'a claim is already under way');
    await this.flush();
    const grant = await new Promise<LeaseGrant>((resolve, reject) => {
      this.#claiming = { role, resolve, reject };
      this.#send({ type: 'claim', role });
    });
    this.#leases.set(role, grant.epoch);
    this.#outbox = new Outbox(`@${role}`, grant.epoch, this.#opts.maxOutbox ?? 4096);
    this.#outbox.continueFrom(grant.epoch, -1);
    return grant;
  }

  /** Records that this lease holder has fully handled everything up to `offset`. */
  commit(role: string, offset: string): void {
    if (!this.#leases.has(role)) throw new LifelineError('NOT_LEASE_HOLDER', `this session does not hold ${role}`);
    this.#send({ type: 'commit', role, offset });
  }

  /** Gives the lease up once everything appended is acknowledged; `handoff` names the next worker. */
  async release(role: string, handoff?: { to: string; context?: Json }): Promise<void> {
    if (!this.#leases.has(role)) throw new LifelineError('NOT_LEASE_HOLDER', `this session does not hold ${role}`);
    await this.flush();
    this.#leases.delete(role);
    this.#send({ type: 'release', role, ...(handoff ? { handoff } : {}) });
  }

  // ---- appends ---------------------------------------------------------------------------

  /**
   * Appends an event. Resolves with its offset once committed; retried across reconnects until
   * then, exactly once. Waits for room when too many appends are unacknowledged.
   */
  async append(kind: EventBody['kind'], data: Json, opts: AppendOptions = {}): Promise<string> {
    if (this.#state === 'closed') throw new LifelineError('CONNECTION_CLOSED');
    const body: EventBody = { kind, data, track: opts.track, bin: opts.bin };
    const problem = checkEventBody(body);
    if (problem) throw new LifelineError('BAD_FRAME', problem);
    // Counted from the call, not from the outbox: flush() right after a burst of un-awaited
    // appends must wait for those still waiting for room too.
    this.#entering++;
    let added: ReturnType<Outbox['add']>;
    try {
      if (this.#restoredSettled) await this.#restoredSettled.promise;
      await this.#outbox.waitForRoom();
      if (this.#closed) throw new LifelineError('CONNECTION_CLOSED');
      added = this.#outbox.add(body);
    } finally {
      this.#entering--;
    }
    this.#scheduleSave();
    if (this.#open) this.#send(added.frame);
    return added.offset;
  }

  /**
   * Publishes this agent's own state (e.g. `listening`, `thinking`, `speaking`) as a presence
   * event in the timeline. Users' presence is the relay's to derive: it refuses theirs.
   */
  setPresence(state: string, extra: Record<string, Json> = {}): Promise<string> {
    return this.append('presence', { ...extra, state });
  }

  sendText(text: string, opts: { id?: string; track?: string } = {}): Promise<string> {
    return this.append('text.delta', opts.id !== undefined ? { text, id: opts.id } : { text }, opts);
  }

  sendTextDone(opts: { id?: string; text?: string; track?: string } = {}): Promise<string> {
    const data: { [k: string]: Json } = {};
    if (opts.id !== undefined) data['id'] = opts.id;
    if (opts.text !== undefined) data['text'] = opts.text;
    return this.append('text.done', data, opts);
  }

  sendToolCall(call: { id: string; name: string; arguments: Json }): Promise<string> {
    return this.append('tool.call', call);
  }

  sendToolResult(result: { id: string; result?: Json; error?: string }): Promise<string> {
    return this.append('tool.result', result as Json);
  }

  /** Resolves when every append so far has been acknowledged. */
  async flush(): Promise<void> {
    while ((this.#outbox.size > 0 || this.#entering > 0) && this.#state !== 'closed') {
      await new Promise<void>((resolve) => setTimeout(resolve, 5));
    }
  }

  // ---- connection ------------------------------------------------------------------------

  async #attemptConnect(): Promise<void> {
    if (this.#state === 'closed') return;
    const abort = new AbortController();
    this.#abort = abort;
    const timeout = setTimeout(() => abort.abort(), this.#opts.connectTimeoutMs ?? 5000);
    let link: ClientLink;
    try {
      link = await this.#transport.connect({ baseUrl: this.#nodeUrl(), sessionId: this.id, token: this.#opts.token }, abort.signal);
    } catch (err) {
      clearTimeout(timeout);
      this.#failures++;
      this.#node++;
      this.#linkLost(err instanceof LifelineError && err.code !== 'CONNECTION_CLOSED' ? err.code : undefined, 'connect failed');
      return;
    }
    if (this.#closed || abort.signal.aborted) {
      clearTimeout(timeout);
      link.close(1000, 'closed');
      if (!this.#closed) this.#linkLost(undefined, 'connect timed out');
      return;
    }
    this.#link = link;
    this.#lastError = undefined;
    link.onMessage = (data) => this.#receive(link, data);
    link.onClose = () => {
      clearTimeout(timeout);
      if (this.#link !== link) return;
      if (this.#lastWelcomedLink !== link) {
        this.#failures++;
        this.#node++;
      }
      this.#linkLost(this.#lastError, 'link closed');
    };
    abort.signal.addEventListener('abort', () => {
      if (this.#link === link && !this.#welcome) link.close(4000, 'connect timeout');
    });
    this.#welcomeTimeout = timeout;
    this.#sendHello(link);
  }


  /** The relay node to try now: `url`, then each of `urls` in turn after failures. */
  #nodeUrl(): string {
    const all = [this.#opts.url, ...(this.#opts.urls ?? []).filter((u) => u !== this.#opts.url)];
    return all[this.#node % all.length]!;
  }

  #sendHello(link: ClientLink): void {
    const hello: ClientFrame = {
      type: 'hello',
      v: PROTOCOL_VERSION,
      device: this.device,
      ...this.#read.hello(this.#opts.resume),
      features: ['subscribed'],
      producers: [this.#outbox.producerId],
      ...(this.#opts.window !== undefined ? { window: this.#opts.window } : {}),
      ...(this.#heartbeatWish() !== undefined ? { heartbeatMs: this.#heartbeatWish() } : {}),
      ...(this.#opts.echo === false ? { echo: false } : {}),
    };
    link.send(encodeFrame(hello));
  }

  #receive(link: ClientLink, raw: string | Uint8Array): void {
    if (this.#link !== link) return;
    this.#lastFrameAt = Date.now();
    let values: unknown[];
    try {
      values = parseMessage(raw);
    } catch (err) {
      this.#emitter.emit('error', err instanceof LifelineError ? err : new LifelineError('BAD_FRAME'));
      return;
    }
    this.#process(link, values);
  }

  /**
   * Frames that arrive right after the first welcome (often in the same read) wait one turn of
   * the event loop: `await connect()` resolves on the welcome, and the app's code after it (its
   * `on('event')` listeners) must run before those events are dispatched.
   */
  #held: { link: ClientLink; values: unknown[] } | undefined;

  #process(link: ClientLink, values: unknown[]): void {
    if (this.#held) {
      this.#held.values.push(...values);
      return;
    }
    for (let i = 0; i < values.length; i++) {
      const value = values[i];
      let frame: ServerFrame;
      try {
        frame = validateServerFrame(value);
      } catch (err) {
        this.#emitter.emit('error', err instanceof LifelineError ? err : new LifelineError('BAD_FRAME'));
        continue;
      }
      if (this.#link !== link) return;
      if (this.#restart) this.#restarted();
      const first = frame.type === 'welcome' && this.#welcome === undefined;
      this.#onFrame(frame);
      if (first) {
        const held = { link, values: values.slice(i + 1) };
        this.#held = held;
        setTimeout(() => {
          this.#held = undefined;
          if (this.#link === held.link) this.#process(held.link, held.values);
        }, 0);
        return;
      }
    }
  }

  #onFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'welcome':
        this.#onWelcome(frame);
        return;
      case 'event':
        this.#onEvent(frame.event);
        return;
      case 'appended':
        this.#outbox.acknowledged(frame.producer.epoch, frame.producer.seq, frame.offset);
        this.#settleRestored(true);
        this.#scheduleSave();
        return;
      case 'pong':
        if (frame.t !== undefined) this.#rtt = Date.now() - frame.t;
        return;
      case 'error': {
        const err = new LifelineError(frame.code, frame.message);
        if (frame.producer) {
          this.#outbox.refused(frame.producer.epoch, frame.producer.seq, err);
          this.#settleRestored(true);
          this.#scheduleSave();
        }
        else if (this.#claiming && ['LEASE_HELD', 'STALE_EPOCH', 'FORBIDDEN', 'BAD_FRAME', 'NOT_LEASE_HOLDER'].includes(frame.code)) {
          this.#claiming.reject(err);
          this.#claiming = undefined;
          return;
        } else if (frame.code === 'STALE_EPOCH' && this.#leases.size > 0) {
          // A re-claim after reconnecting was refused: another holder took over. We are fenced.
          this.#leases.clear();
          this.#outbox.failAll(err);
          this.#scheduleSave();
        }
        if (frame.fatal) this.#lastError = frame.code;
        else this.#emitter.emit('error', err);
        if (frame.code === 'STALE_EPOCH') this.#emitter.emit('error', err);
        return;
      }
      case 'lease': {
        const claim = this.#claiming;
        if (claim && claim.role === frame.role) {
          this.#claiming = undefined;
          claim.resolve({ role: frame.role, epoch: frame.epoch, cursor: frame.cursor });
        }
        return;
      }
      case 'assign':
        return;
      case 'restart':
        if (this.#link?.restart && !this.#restart) this.#startRestart(this.#link, `relay asked: ${frame.reason}`);
        return;
      case 'subscribed':
        this.#read.subscribed(frame.from);
        return;
    }
  }

  #onWelcome(w: WelcomeFrame): void {
    clearTimeout(this.#welcomeTimeout);
    const first = this.#welcome === undefined;
    this.#welcome = w;
    if (first) {
      const known = w.producers.find((p) => p.id === this.#outbox.producerId);
      // Nothing can have settled them before the first welcome.
      if (this.#restoredSettled) {
        this.#placeRestored(known);
      } else if (this.#opts.epoch !== undefined) {
        if (known && known.epoch === this.#opts.epoch && known.seq >= 0) this.#outbox.continueFrom(known.epoch, known.seq);
      } else if (known && known.seq >= 0) {
        this.#outbox.bumpEpoch(known.epoch + 1);
      }
      this.#read.start(this.#opts.resume, w.head);
    }
    this.#attempt = 0;
    this.#failures = 0;
    this.#lastWelcomedLink = this.#link;
    const downMs = first ? undefined : Date.now() - this.#lostAt;
    this.#emit(first ? 'connected' : 'resumed', downMs !== undefined ? { downMs } : {});
    this.#read.welcomed(w.features);
    // Leases first: the relay handles frames in order, so the re-claim precedes the appends.
    for (const [role, epoch] of this.#leases) this.#send({ type: 'claim', role, epoch });
    for (const frame of this.#outbox.unacknowledged()) this.#send(frame);
    this.#startHeartbeat(this.#opts.heartbeatMs ?? this.#transport.heartbeatMs ?? w.heartbeatMs);
    if (first) {
      this.#firstWelcome?.resolve();
      this.#firstWelcome = undefined;
    }
  }

  /**
   * Appends restored from an earlier instance are sent again under its epoch and seqs when they
   * continue the relay's record of the producer (its epoch, no gap before them) or start a newer
   * epoch: the relay commits those it lacks and answers the rest as retries. Otherwise they are
   * refused here: a newer epoch means another instance took over (they may or may not have been
   * committed before it did), a gap means the relay lacks the appends before them.
   */
  #placeRestored(known: { epoch: number; seq: number } | undefined): void {
    const current = known && known.seq >= 0 ? known : undefined;
    const epoch = this.#outbox.epoch;
    const first = this.#outbox.firstPendingSeq ?? 0;
    const placed = current ? (current.epoch === epoch ? first <= current.seq + 1 : current.epoch < epoch && first === 0) : first === 0;
    if (placed) return;
    const err = current && current.epoch > epoch
      ? new LifelineError('STALE_EPOCH', `another instance of producer ${this.#outbox.producerId} took over (epoch ${current.epoch}); this append may have been committed before it did`)
      : new LifelineError('SEQUENCE_GAP', `the relay does not have the appends before the restored ones of producer ${this.#outbox.producerId}`);
    this.#outbox.discard(err);
    this.#outbox.bumpEpoch(current ? Math.max(current.epoch, epoch) + 1 : epoch + 1);
    this.#settleRestored(false);
    this.#scheduleSave();
  }

  /**
   * Once every restored append is settled, new appends go ahead, in a new epoch (`bump`): the
   * instance that left them may still be alive (a duplicated tab), and sharing its epoch would make
   * its next appends and ours collide on seqs. The new epoch fences it instead.
   */
  #settleRestored(bump: boolean): void {
    const held = this.#restoredSettled;
    if (!held || this.#outbox.size > 0) return;
    this.#restoredSettled = undefined;
    if (bump && !this.#closed) this.#outbox.bumpEpoch(this.#outbox.epoch + 1);
    held.resolve();
  }

  /** Hands the pending appends to SessionOptions.outbox.save, once per turn. */
  #scheduleSave(): void {
    const save = this.#opts.outbox?.save;
    if (!save || this.#saveQueued || this.#closed) return;
    this.#saveQueued = true;
    queueMicrotask(() => {
      this.#saveQueued = false;
      if (!this.#closed) save(this.#outbox.snapshot());
    });
  }

  #onEvent(event: TimelineEvent): void {
    if (!this.#read.accept(event)) return;
    this.#emitter.emit('event', event);
    this.stream.push(event);
    this.#read.maybeAck();
  }

  /** The kinds of event this session reads (undefined: all). */
  get kinds(): readonly EventKind[] | undefined {
    return this.#read.kinds;
  }

  /**
   * Changes which kinds of event this session reads (undefined: all), from the newest event it has
   * received on: events of a newly wanted kind after that point arrive, the others are skipped.
   * Kept across reconnects.
   */
  setKinds(kinds: readonly EventKind[] | undefined): void {
    if (this.#closed) return;
    this.#read.setKinds(kinds);
  }

  /**
   * Pings every `intervalMs` and checks every 20 ms (at most half an interval) whether the relay
   * has gone silent for `misses` intervals. Silence means the path is gone: repair in place if the link can, else
   * reconnect.
   */
  /** The ping interval this client will use, if it has its own wish (else the relay's). */
  #heartbeatWish(): number | undefined {
    return this.#opts.heartbeatMs ?? this.#transport.heartbeatMs;
  }

  #startHeartbeat(intervalMs: number): void {
    clearInterval(this.#heartbeat);
    const lossAfterMs = intervalMs * (this.#opts.heartbeatMisses ?? 2.5);
    this.#lastFrameAt = Date.now();
    let lastPing = 0;
    this.#heartbeat = setInterval(() => {
      const link = this.#link;
      if (!link) return;
      const now = Date.now();
      if (!this.#restart && now - this.#lastFrameAt > lossAfterMs) {
        if (link.restart) {
          this.#startRestart(link, 'heartbeat');
        } else {
          this.#linkLost(undefined, 'heartbeat');
          link.close(4000, 'heartbeat timeout');
          return;
        }
      }
      if (now - lastPing >= intervalMs - 1) {
        lastPing = now;
        // A link busy both ways within the interval (events down, acknowledgements up) is its own
        // heartbeat: a ping would only add a message in each direction.
        if (now - this.#lastSentAt >= intervalMs || now - this.#lastFrameAt >= intervalMs) this.#send({ type: 'ping', id: ++this.#pingId, t: now });
      }
    }, Math.max(10, Math.min(intervalMs / 2, 20)));
  }

  /** Repairs the living link (ICE restart); a full reconnect if it has not healed in time. */
  #startRestart(link: ClientLink, reason: string): void {
    this.#lostAt = Date.now();
    const abort = new AbortController();
    const fail = (why: string): void => {
      if (this.#restart?.abort !== abort) return;
      this.#clearRestart();
      if (this.#link !== link) return;
      this.#linkLost(undefined, why);
      link.close(4000, why);
    };
    const timer = setTimeout(() => fail('restart timed out'), this.#opts.restartTimeoutMs ?? 2000);
    this.#restart = { abort, timer };
    this.#emit('reconnecting', { mode: 'restart', reason });
    link.restart!(abort.signal).then(
      () => {
        // Prod the association: a few frames in separate packets make the far side report any
        // gap at once (fast retransmit) instead of waiting for SCTP's 1 s retransmission timer.
        for (let i = 0; i < 4; i++) {
          setTimeout(() => {
            if (this.#link === link) this.#send({ type: 'ping', id: ++this.#pingId, t: Date.now() });
          }, i * 5);
        }
      },
      () => fail('restart failed'),
    );
  }

  /**
   * Frames flow again. Signaling still under way is left to finish (it is aborted only when the
   * link is given up): cut short, it would leave the peer connection with an unanswered offer,
   * and a restart the relay asked for (its path changed) would never happen.
   */
  #restarted(): void {
    if (!this.#restart) return;
    clearTimeout(this.#restart.timer);
    this.#signaling = this.#restart.abort;
    this.#restart = undefined;
    this.#emit('restarted', { downMs: Date.now() - this.#lostAt });
  }

  /** The signaling of a restart that healed before it finished (see #restarted). */
  #signaling: AbortController | undefined;

  #clearRestart(): void {
    this.#signaling?.abort();
    this.#signaling = undefined;
    if (!this.#restart) return;
    clearTimeout(this.#restart.timer);
    this.#restart.abort.abort();
    this.#restart = undefined;
  }

  #send(frame: ClientFrame): void {
    if (!this.#link) return;
    this.#lastSentAt = Date.now();
    this.#link.send(encodeFrame(frame));
  }

  #linkLost(error: ErrorCode | undefined, reason: string): void {
    if (this.#state === 'closed') return;
    this.#clearRestart();
    const link = this.#link;
    this.#link = undefined;
    if (link) {
      link.onMessage = undefined;
      link.onClose = undefined;
    }
    clearInterval(this.#heartbeat);
    this.#read.linkLost(this.#state !== 'connecting');
    clearTimeout(this.#welcomeTimeout);
    if (this.#state === 'connected' || this.#state === 'resumed' || this.#state === 'restarted') this.#lostAt = Date.now();
    const elapsedMs = this.#state === 'connecting' ? 0 : Date.now() - this.#lostAt;
    const delay = this.#policy.nextRetryDelayMs({ attempt: this.#attempt, elapsedMs, errorCode: error });
    if (delay === null) {
      const err = new LifelineError(error ?? 'CONNECTION_CLOSED', error ? undefined : 'gave up reconnecting');
      this.#shutdown(err);
      return;
    }
    const fallbackAfter = this.#opts.fallbackAfterFailures ?? 2;
    if (this.#failures >= fallbackAfter && this.#transportIndex < this.#transports.length - 1) {
      this.#transportIndex++;
      this.#failures = 0;
      this.#emit('fallback', { reason: `${fallbackAfter} failed attempts` });
    }
    if (this.#welcome) this.#emit('reconnecting', { mode: 'reconnect', reason, attempt: this.#attempt, delayMs: delay, ...(error ? { error } : {}) });
    this.#attempt++;
    this.#retryTimer = setTimeout(() => void this.#attemptConnect(), delay);
  }

  #emit(state: ConnectionState, extra: Partial<StateChange> = {}): void {
    this.#state = state;
    this.#emitter.emit('state', { state, transport: this.#transport.name, at: Date.now(), ...extra });
  }

  #shutdown(err: LifelineError | undefined): void {
    if (this.#state === 'closed') return;
    this.#clearRestart();
    clearInterval(this.#heartbeat);
    this.#read.dispose();
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#welcomeTimeout);
    this.#abort?.abort();
    const link = this.#link;
    this.#link = undefined;
    if (link) {
      link.onMessage = undefined;
      link.onClose = undefined;
      link.close(1000, 'closed');
    }
    this.#emit('closed', err ? { error: err.code } : {});
    const kept = this.#opts.outbox?.save ? '; it stays in the saved outbox, and an instance that restores that sends it' : '';
    this.#outbox.failAll(err ?? new LifelineError('CONNECTION_CLOSED', `closed before the append was acknowledged${kept}`));
    this.#restoredSettled?.resolve();
    this.#restoredSettled = undefined;
    this.#claiming?.reject(err ?? new LifelineError('CONNECTION_CLOSED'));
    this.#claiming = undefined;
    this.stream.end();
    this.#firstWelcome?.reject(err ?? new LifelineError('CONNECTION_CLOSED'));
    this.#firstWelcome = undefined;
    this.#emitter.clear();
  }

  /**
   * Starts recovery now instead of waiting for the heartbeat: an in-place repair (ICE restart)
   * where the link can, else a reconnect. Call it on network-change events (online, a new
   * interface); a no-op while a repair is already running or the session is not connected.
   */
  recover(reason = 'app asked'): void {
    const link = this.#link;
    if (!link || !this.#open || this.#restart) return;
    if (link.restart) {
      this.#startRestart(link, reason);
    } else {
      this.#linkLost(undefined, reason);
      link.close(4000, reason);
    }
  }

  /**
   * Closes the session's link for good; pending appends are rejected with CONNECTION_CLOSED (with
   * `outbox.save`, the record saved last still holds them: a next instance that restores it sends
   * them; save an empty one, or clear your storage, to drop them).
   */
  close(): void {
    if (this.#state === 'closed') return;
    this.#read.ackNow();
    this.#shutdown(undefined);
  }
}

export function isFinalError(code: string): boolean {
  return isErrorCode(code) && FINAL_ERRORS.has(code);
}
