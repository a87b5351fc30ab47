import { LifelineError, formatOffset } from '../protocol/index.js';
import type { EventBody, Json, Origin, ProducerRef, ProducerState, TimelineEvent } from '../protocol/index.js';
import type { AppendEntry, AppendOutcome, SessionRecord, Store } from '../store/index.js';
import { GroupCommitter } from './group-commit.js';
import { LiveSession } from './live-session.js';
import { TimelineReader, sessionEndedError, toTimelineEvent } from './reader.js';
import { hasCommittedWatch } from './store-capabilities.js';
import type { WatchHandle } from './store-capabilities.js';

export interface TimelineOptions {
  /** Events kept in memory per session that someone is reading (default 1024). */
  ringSize?: number;
  /** Most entries committed in one transaction (default 1024). */
  maxBatch?: number;
  /** Most appends waiting for a commit before new ones are refused with OUTBOX_FULL (default 65536). */
  maxBacklog?: number;
  /** Clock, milliseconds since the epoch (tests pass their own). */
  now?: () => number;
  observer?: TimelineObserver;
}

/** Hooks for metrics; every method optional. */
export interface TimelineObserver {
  committed?(entries: number, appended: number, ms: number): void;
  rejected?(code: string): void;
  sessionsExpired?(count: number): void;
  /** A session ended (deleted or expired): whatever is kept per session elsewhere can go. */
  sessionEnded?(id: string, why: 'deleted' | 'expired'): void;
}

export interface CreateSessionOptions {
  id?: string;
  /** Lifetime from creation, in seconds; absent for no expiry. */
  ttlSeconds?: number;
  /** Reclaimed after this long without a new event, in seconds; absent for never. */
  idleTtlSeconds?: number;
  metadata?: Record<string, Json>;
  /** Absolute expiry (ms since the epoch); overrides ttlSeconds. */
  expiresAt?: number;
  /** Durable Streams content type of a stream created over HTTP. */
  contentType?: string;
}

export interface AppendInput extends EventBody {
  from: Origin;
  producer?: ProducerRef | undefined;
  /** Durable Streams `Stream-Seq` (writer coordination); see AppendEntry.streamSeq. */
  streamSeq?: string | undefined;
  /** Close the timeline atomically right after this event. */
  close?: boolean | undefined;
}

/** The outcome of closing a timeline (see Store.closeSession). */
export type CloseResult =
  | { ok: true; head: number; duplicate: boolean }
  | { ok: false; error: LifelineError; current?: ProducerState | undefined };

export type AppendResult =
  | { ok: true; offset: string; duplicate: boolean; event?: TimelineEvent }
  | { ok: false; error: LifelineError; current?: ProducerState | undefined };

export interface SessionInfo extends SessionRecord {
  head: string;
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/**
 * The domain of Lifeline: sessions and their ordered, durable timelines. Appends go through group
 * commit and are delivered to readers only after the store has committed them. Transports never
 * touch the store; they come here.
 */
export class Timeline {
  readonly store: Store;
  readonly #ringSize: number;
  readonly #maxBacklog: number;
  readonly #now: () => number;
  readonly #observer: TimelineObserver;
  readonly #committer: GroupCommitter;
  readonly #live = new Map<string, LiveSession>();
  readonly #records = new Map<string, SessionRecord>();
  readonly #watches = new Map<LiveSession, WatchHandle>();
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(store: Store, opts: TimelineOptions = {}) {
    this.store = store;
    this.#ringSize = opts.ringSize ?? 1024;
    this.#maxBacklog = opts.maxBacklog ?? 65536;
    this.#now = opts.now ?? Date.now;
    this.#observer = opts.observer ?? {};
    this.#committer = new GroupCommitter(store, opts.maxBatch ?? 1024, (entries, outcomes, ms) =>
      this.#published(entries, outcomes, ms),
    );
  }

  /** Entries waiting for a commit right now. */
  get backlog(): number {
    return this.#committer.backlog;
  }

  /** Sessions held live (with at least one reader). */
  get liveSessions(): number {
    return this.#live.size;
  }

  async createSession(opts: CreateSessionOptions = {}): Promise<SessionRecord> {
    this.#assertOpen();
    const now = this.#now();
    const record: SessionRecord = {
      id: opts.id ?? randomId(),
      createdAt: now,
      expiresAt: opts.expiresAt ?? (opts.ttlSeconds !== undefined ? now + Math.round(opts.ttlSeconds * 1000) : null),
      idleTtlMs: opts.idleTtlSeconds !== undefined ? Math.round(opts.idleTtlSeconds * 1000) : null,
      metadata: opts.metadata ?? {},
      ...(opts.contentType !== undefined ? { contentType: opts.contentType } : {}),
    };
    await this.store.createSession(record);
    this.#records.set(record.id, record);
    return record;
  }

  /**
   * Creates a session whose timeline starts as a copy of `sourceId`'s events up to `uptoSeq`,
   * plus `tail` (part of the next event) when given: a branch of the conversation ("regenerate
   * from here"). See Store.forkSession.
   */
  async forkSession(opts: CreateSessionOptions & { id: string }, sourceId: string, uptoSeq: number, tail?: EventBody & { from: Origin; ts: number }): Promise<SessionRecord> {
    this.#assertOpen();
    const now = this.#now();
    const record: SessionRecord = {
      id: opts.id,
      createdAt: now,
      expiresAt: opts.expiresAt ?? (opts.ttlSeconds !== undefined ? now + Math.round(opts.ttlSeconds * 1000) : null),
      idleTtlMs: opts.idleTtlSeconds !== undefined ? Math.round(opts.idleTtlSeconds * 1000) : null,
      metadata: opts.metadata ?? {},
      forkedFrom: sourceId,
      ...(opts.contentType !== undefined ? { contentType: opts.contentType } : {}),
    };
    await this.store.forkSession(record, sourceId, uptoSeq, tail);
    return record;
  }

  /**
   * The session's record as the store has it now (closed, last activity, tombstone), undefined if
   * it does not exist. Unlike session(), neither cached nor checked for expiry.
   */
  storedSession(id: string): Promise<SessionRecord | undefined> {
    return this.store.getSession(id);
  }

  /** Events after `afterSeq`, at most `limit`, straight from the store (a catch-up read). */
  async read(sessionId: string, afterSeq: number, limit: number): Promise<TimelineEvent[]> {
    return (await this.store.read(sessionId, afterSeq, limit)).map(toTimelineEvent);
  }

  /** A read counts as activity: it renews an idle TTL. */
  touch(id: string): Promise<void> {
    return this.store.touchSession(id, this.#now());
  }

  /** Number of sessions forked from this one (tombstones included). */
  forkCount(id: string): Promise<number> {
    return this.store.forkCount(id);
  }

  /**
   * Closes the timeline (no event): later appends are refused with STREAM_CLOSED and readers
   * caught up at the head learn that nothing more will come.
   */
  async closeSession(sessionId: string, producer?: ProducerRef): Promise<CloseResult> {
    this.#assertOpen();
    await this.session(sessionId);
    await this.#committer.drain(); // appends submitted before the close commit before it
    const o = await this.store.closeSession(sessionId, producer, this.#now());
    if (o.status === 'rejected') {
      this.#observe(() => this.#observer.rejected?.(o.code));
      return { ok: false, error: new LifelineError(o.code, undefined, { session: sessionId }), current: o.current };
    }
    this.#live.get(sessionId)?.markClosed();
    return { ok: true, head: o.seq, duplicate: o.status === 'duplicate' };
  }

  /**
   * Deletes the timeline but keeps the record as a tombstone (forks still name it): every later
   * use of the id gets SESSION_GONE. Returns false if the session did not exist.
   */
  async tombstoneSession(id: string): Promise<boolean> {
    this.#end(id, new LifelineError('SESSION_GONE', `session ${id} was deleted`));
    this.#observe(() => this.#observer.sessionEnded?.(id, 'deleted'));
    return this.store.tombstoneSession(id, this.#now());
  }

  /** The session's record; throws SESSION_NOT_FOUND or SESSION_EXPIRED. */
  async session(id: string): Promise<SessionRecord> {
    let record = this.#records.get(id);
    if (!record) {
      record = await this.store.getSession(id);
      if (!record) throw new LifelineError('SESSION_NOT_FOUND', `no session ${id}`);
      if (record.deletedAt) throw new LifelineError('SESSION_GONE', `session ${id} was deleted`);
      this.#records.set(id, record);
    }
    if (record.expiresAt !== null && record.expiresAt <= this.#now()) throw sessionEndedError(id, 'expired');
    return record;
  }

  async describe(id: string): Promise<SessionInfo> {
    const record = await this.session(id);
    // Fresh from the store: it keeps the last activity, which the cached record does not.
    const stored = await this.store.getSession(id);
    return { ...record, ...stored, head: formatOffset(await this.head(id)) };
  }

  async head(id: string): Promise<number> {
    const live = this.#live.get(id);
    const stored = await this.store.head(id);
    if (stored === undefined) throw new LifelineError('SESSION_NOT_FOUND', `no session ${id}`);
    return Math.max(stored, live?.head ?? 0);
  }

  async producer(sessionId: string, producerId: string): Promise<ProducerState | undefined> {
    return this.store.producer(sessionId, producerId);
  }

  /** Sessions in id order after `after`, at most `limit` (for listing; heads not included). */
  listSessions(after: string | undefined, limit: number): Promise<SessionRecord[]> {
    return this.store.listSessions(after, limit);
  }

  async deleteSession(id: string): Promise<boolean> {
    this.#end(id, sessionEndedError(id, 'deleted'));
    this.#observe(() => this.#observer.sessionEnded?.(id, 'deleted'));
    return this.store.deleteSession(id);
  }

  /**
   * Appends events (group-committed with whatever else arrives now). Results come back in input
   * order; a rejected entry writes nothing and does not affect the others.
   */
  async append(sessionId: string, inputs: readonly AppendInput[]): Promise<AppendResult[]> {
    this.#assertOpen();
    // With the record cached this runs synchronously up to submit(), so appends made in order
    // are committed in order without waiting for each other.
    const record = this.#records.get(sessionId);
    if (!record) {
      await this.session(sessionId);
      this.#assertOpen(); // close() may have drained the committer while we looked the session up
    } else if (record.expiresAt !== null && record.expiresAt <= this.#now()) throw sessionEndedError(sessionId, 'expired');
    if (this.#committer.backlog + inputs.length > this.#maxBacklog) {
      return inputs.map(() => ({ ok: false, error: new LifelineError('OUTBOX_FULL', 'relay commit backlog is full') }));
    }
    const ts = this.#now();
    const entries: AppendEntry[] = inputs.map((i) => ({
      sessionId,
      producer: i.producer,
      event: { ts, from: i.from, kind: i.kind, track: i.track, data: i.data, bin: i.bin },
      ...(i.streamSeq !== undefined ? { streamSeq: i.streamSeq } : {}),
      ...(i.close ? { close: true } : {}),
    }));
    const outcomes = await this.#committer.submit(entries);
    return outcomes.map((o) => this.#result(sessionId, o));
  }

  #result(sessionId: string, o: AppendOutcome): AppendResult {
    if (o.status === 'rejected') {
      this.#observe(() => this.#observer.rejected?.(o.code));
      return { ok: false, error: new LifelineError(o.code, undefined, { session: sessionId }), current: o.current };
    }
    return { ok: true, offset: formatOffset(o.seq), duplicate: o.status === 'duplicate' };
  }

  #published(entries: readonly AppendEntry[], outcomes: AppendOutcome[], ms: number): void {
    let appended = 0;
    for (let i = 0; i < entries.length; i++) {
      const o = outcomes[i]!;
      if (o.status !== 'appended') continue;
      appended++;
      const entry = entries[i]!;
      const live = this.#live.get(entry.sessionId);
      if (!live) continue;
      const { event } = entry;
      live.publish(o.seq, {
        offset: formatOffset(o.seq),
        ts: event.ts,
        from: event.from,
        kind: event.kind,
        ...(event.track !== undefined ? { track: event.track } : {}),
        data: event.data,
        ...(event.bin !== undefined ? { bin: event.bin } : {}),
      });
      if (entry.close) live.markClosed();
    }
    this.#observe(() => this.#observer.committed?.(entries.length, appended, ms));
  }

  /**
   * A reader of the session's events after `afterSeq` (0 = from the start). Close it when done.
   * Throws OFFSET_OUT_OF_RANGE when afterSeq is beyond the head.
   */
  async reader(sessionId: string, afterSeq: number): Promise<TimelineReader> {
    this.#assertOpen();
    await this.session(sessionId);
    const live = await this.#hold(sessionId);
    // close(), deleteSession() or the sweeper may have ended the session while we were opening its
    // live side: that live session would never be ended, and its reader would wait forever.
    if (this.#closed || !this.#records.has(sessionId)) {
      this.#releaseLive(live);
      throw this.#closed ? new LifelineError('SHUTTING_DOWN') : new LifelineError('SESSION_NOT_FOUND', `session ${sessionId} has ended`);
    }
    if (afterSeq > live.head) {
      const head = await this.head(sessionId);
      if (afterSeq > head) {
        this.#releaseLive(live);
        throw new LifelineError('OFFSET_OUT_OF_RANGE', `offset ${formatOffset(afterSeq)} is beyond the head ${formatOffset(head)}`);
      }
    }
    return new TimelineReader(sessionId, afterSeq, this.store, live, () => this.#releaseLive(live));
  }

  async #hold(id: string): Promise<LiveSession> {
    let live = this.#live.get(id);
    if (!live) {
      const head = (await this.store.head(id)) ?? 0;
      const existing = this.#live.get(id);
      live = existing ?? new LiveSession(id, head, this.#ringSize);
      this.#live.set(id, live);
      if (!existing) this.#watch(live);
      // A close committed before this live side existed was never announced to it.
      if ((await this.store.getSession(id))?.closed) live.markClosed();
    }
    live.readers++;
    return live;
  }

  #releaseLive(live: LiveSession): void {
    live.readers--;
    if (live.readers <= 0 && this.#live.get(live.id) === live) {
      this.#live.delete(live.id);
      this.#unwatch(live);
    }
  }

  /**
   * With a store shared by several relay nodes (one that can watch committed events), the live
   * side also receives what other nodes commit — only once committed, in order; events this node
   * already published are skipped by seq.
   */
  #watch(live: LiveSession): void {
    if (!hasCommittedWatch(this.store)) return;
    const handle = this.store.watchCommitted(
      live.id,
      live.head,
      (events) => {
        for (const e of events) live.publish(e.seq, toTimelineEvent(e));
      },
      undefined,
      () => live.markClosed(),
    );
    this.#watches.set(live, handle);
  }

  #unwatch(live: LiveSession): void {
    this.#watches.get(live)?.stop();
    this.#watches.delete(live);
  }

  #end(id: string, reason: LifelineError): void {
    this.#records.delete(id);
    const live = this.#live.get(id);
    if (live) {
      this.#live.delete(id);
      this.#unwatch(live);
      live.close(reason);
    }
  }

  /** Deletes sessions whose TTL has passed; their readers end with SESSION_EXPIRED. */
  async sweepExpired(limit = 500): Promise<number> {
    const ids = await this.store.expiredSessions(this.#now(), limit);
    for (const id of ids) {
      this.#end(id, sessionEndedError(id, 'expired'));
      this.#observe(() => this.#observer.sessionEnded?.(id, 'expired'));
      await this.store.deleteSession(id);
    }
    if (ids.length > 0) this.#observe(() => this.#observer.sessionsExpired?.(ids.length));
    return ids.length;
  }

  /** Sweeps expired sessions every `intervalMs` until close(). */
  startSweeper(intervalMs: number, onError: (err: unknown) => void): void {
    if (this.#closed) return; // close() would never clear it
    this.#sweeper ??= setInterval(() => {
      this.sweepExpired().catch(onError);
    }, intervalMs);
    this.#sweeper.unref();
  }

  /** Waits for pending commits, ends every reader, and closes the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    await this.#committer.drain();
    for (const id of [...this.#live.keys()]) this.#end(id, new LifelineError('SHUTTING_DOWN'));
    await this.store.close();
  }

  /** Observers are metrics: one that throws must never wedge a commit or lose an acknowledgement. */
  #observe(call: () => void): void {
    try {
      call();
    } catch {
      // ignored on purpose
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new LifelineError('SHUTTING_DOWN');
  }
}
