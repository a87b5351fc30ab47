import type { EventKind, Json, Origin, ProducerRef, ProducerState } from '../protocol/index.js';

/** A session as stored. Times are milliseconds since the epoch. */
export interface SessionRecord {
  id: string;
  createdAt: number;
  /** When the session and its timeline may be reclaimed; null for never. */
  expiresAt: number | null;
  /** Reclaimed after this long without a new event (ms); absent or null for never. */
  idleTtlMs?: number | null;
  /** Time of the newest event (or of creation); kept by the store. */
  lastActiveAt?: number;
  metadata: Record<string, Json>;
  /**
   * Durable Streams content type of a stream created over HTTP (`text/plain`, `application/json`, …);
   * absent or null for sessions made by the session API (read over HTTP as JSON events).
   */
  contentType?: string | null;
  /** The session this one was forked from (copy of its history up to an offset); null otherwise. */
  forkedFrom?: string | null;
  /** Kept by the store: the timeline is closed and refuses appends (STREAM_CLOSED). */
  closed?: boolean;
  /**
   * Kept by the store: when the session was deleted while forks still named it as their source
   * (`tombstoneSession`). Its timeline is gone; the record stays so the id is not reused.
   */
  deletedAt?: number | null;
}

/** An event as the store keeps it: the timeline's sequence number instead of the wire offset. */
export interface StoredEvent {
  seq: number;
  ts: number;
  from: Origin;
  kind: EventKind;
  track?: string | undefined;
  data: Json;
  bin?: Uint8Array | undefined;
}

export interface AppendEntry {
  sessionId: string;
  /** Idempotent-producer coordinates. Absent only for events the relay itself writes. */
  producer?: ProducerRef | undefined;
  event: Omit<StoredEvent, 'seq'>;
  /**
   * Durable Streams writer coordination (`Stream-Seq`): must sort (by UTF-16 code units, i.e.
   * byte order for ASCII) after the last streamSeq accepted for this session, else the entry is
   * rejected with STREAM_SEQ_CONFLICT. Checked after the producer rules, so a producer's retry is
   * still answered `duplicate`.
   */
  streamSeq?: string | undefined;
  /** Close the timeline in the same transaction, right after this entry's event. */
  close?: boolean | undefined;
}

export type RejectCode = 'STALE_EPOCH' | 'SEQUENCE_GAP' | 'BAD_EPOCH_START' | 'SESSION_NOT_FOUND' | 'STREAM_CLOSED' | 'STREAM_SEQ_CONFLICT';

export type AppendOutcome =
  | { status: 'appended'; seq: number }
  /** A retry of an append already committed: `seq` is the original event's. */
  | { status: 'duplicate'; seq: number }
  | { status: 'rejected'; code: RejectCode; current?: ProducerState | undefined };

/**
 * The durable part of an agent lease: who holds a session's role, at which epoch. Claiming bumps
 * the epoch and, in the same transaction, fences the role's producer (`@<role>`): appends of any
 * older epoch are refused with STALE_EPOCH from then on. Liveness (expiry) is the relay's.
 */
export interface LeaseRecord {
  sessionId: string;
  role: string;
  /** Participant holding the lease; null after a release (the epoch is kept). */
  holder: string | null;
  epoch: number;
}

/** The producer id of a role's lease holder: one producer per role, fenced by lease epochs. */
export function leaseProducerId(role: string): string {
  return `@${role}`;
}

/**
 * The storage contract every backend meets (memory, sqlite, nats). All methods are async so that
 * networked backends fit without changing callers. Callers get a backend from `openStore()` and
 * never look at its class.
 */
export interface Store {
  /** A short name for logs and metrics: "memory", "sqlite", … */
  readonly kind: string;

  /** Creates a session with an empty timeline. Throws LifelineError(SESSION_EXISTS). */
  createSession(record: SessionRecord): Promise<void>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  /** Sessions in id order, after `after` (exclusive), at most `limit`. */
  listSessions(after: string | undefined, limit: number): Promise<SessionRecord[]>;
  /** Deletes a session, its timeline and its producer state. Returns false if it did not exist. */
  deleteSession(id: string): Promise<boolean>;
  /**
   * Ids of sessions whose expiresAt is at or before `now`, or idle longer than their idleTtlMs,
   * at most `limit`.
   */
  expiredSessions(now: number, limit: number): Promise<string[]>;

  /**
   * Appends a batch atomically (group commit: one transaction, at most one fsync). Entries are applied in
   * order; each is checked against producer state as left by the entries before it, and the
   * producer state commits together with the event. Returns one outcome per entry.
   */
  append(entries: readonly AppendEntry[]): Promise<AppendOutcome[]>;
  /** Events with seq > afterSeq, in order, at most `limit`. Empty for unknown sessions. */
  read(sessionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]>;
  /** Sequence number of the newest event (0 when empty). Undefined for unknown sessions. */
  head(sessionId: string): Promise<number | undefined>;
  producer(sessionId: string, producerId: string): Promise<ProducerState | undefined>;

  /** The lease of a session's role, if one was ever claimed. */
  lease(sessionId: string, role: string): Promise<LeaseRecord | undefined>;
  /**
   * Grants the role's lease to `holder` at epoch + 1 when `expectedEpoch` is the current epoch
   * (0 if never claimed), and sets producer `@<role>` to that epoch with seq -1, atomically.
   * Returns the new record, or undefined when the epoch moved (someone else claimed first) or
   * the session does not exist.
   */
  claimLease(sessionId: string, role: string, holder: string, expectedEpoch: number): Promise<LeaseRecord | undefined>;
  /** Clears the holder if it still holds `epoch`; the epoch stays. Returns false otherwise. */
  releaseLease(sessionId: string, role: string, holder: string, epoch: number): Promise<boolean>;

  /**
   * Closes the timeline without an event (a Durable Streams close-only POST), atomically with the
   * producer's state when `producer` is given. Order of checks as in `append`: producer rules
   * first (a retry is `duplicate`, a stale epoch `rejected`), then an already closed timeline:
   * `duplicate` without a producer (closing is idempotent), STREAM_CLOSED with one. The outcome's
   * seq is the head. Counts as activity (lastActiveAt). A retried close-only producer write is
   * answered with the head, since nothing can follow a close.
   */
  closeSession(sessionId: string, producer: ProducerRef | undefined, at: number): Promise<AppendOutcome>;
  /**
   * Creates `record` (a fork of `sourceId`) whose timeline starts as a copy of the source's events
   * 1..uptoSeq (same seqs, ts, origins, data), followed by `tail` as event uptoSeq + 1 when given
   * (a part of the source's next event: a fork inside an append). Producer state, cursors and
   * leases are not copied; the fork is open. Throws SESSION_EXISTS, SESSION_NOT_FOUND (no source,
   * or a tombstone), OFFSET_OUT_OF_RANGE (uptoSeq beyond the source's head).
   */
  forkSession(record: SessionRecord, sourceId: string, uptoSeq: number, tail?: Omit<StoredEvent, 'seq'>): Promise<void>;
  /** Number of sessions (tombstones included) whose forkedFrom is `id`. */
  forkCount(id: string): Promise<number>;
  /**
   * Deletes the session's timeline, producers, leases and cursors but keeps its record with
   * `deletedAt` set (the Durable Streams soft delete of a stream that forks still name). Appends
   * are refused with SESSION_NOT_FOUND. Returns false if the session did not exist.
   */
  tombstoneSession(id: string, at: number): Promise<boolean>;
  /** Records activity without an event (a read renews an idle TTL). No-op for unknown sessions. */
  touchSession(id: string, at: number): Promise<void>;

  /** Records that `consumer` has fully handled everything up to `seq` (never moves back). */
  commitCursor(sessionId: string, consumer: string, seq: number): Promise<void>;
  /** The committed position of `consumer` (0 if none). */
  cursor(sessionId: string, consumer: string): Promise<number>;

  close(): Promise<void>;
}
