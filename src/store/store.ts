import type { EventKind, Json, Origin, ProducerRef, ProducerState } from '../protocol/index.js';

/** A session as stored. Times are milliseconds since the epoch. */
export interface SessionRecord {
  id: string;
  createdAt: number;
  /** When the session and its timeline may be reclaimed; null for never. */
  expiresAt: number | null;
  metadata: Record<string, Json>;
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
}

export type RejectCode = 'STALE_EPOCH' | 'SEQUENCE_GAP' | 'BAD_EPOCH_START' | 'SESSION_NOT_FOUND';

export type AppendOutcome =
  | { status: 'appended'; seq: number }
  /** A retry of an append already committed: `seq` is the original event's. */
  | { status: 'duplicate'; seq: number }
  | { status: 'rejected'; code: RejectCode; current?: ProducerState | undefined };

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
  /** Deletes a session, its timeline and its producer state. Returns false if it did not exist. */
  deleteSession(id: string): Promise<boolean>;
  /** Ids of sessions whose expiresAt is at or before `now`, at most `limit`. */
  expiredSessions(now: number, limit: number): Promise<string[]>;

  /**
   * Appends a batch atomically (group commit: one transaction, one fsync). Entries are applied in
   * order; each is checked against producer state as left by the entries before it, and the
   * producer state commits together with the event. Returns one outcome per entry.
   */
  append(entries: readonly AppendEntry[]): Promise<AppendOutcome[]>;
  /** Events with seq > afterSeq, in order, at most `limit`. Empty for unknown sessions. */
  read(sessionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]>;
  /** Sequence number of the newest event (0 when empty). Undefined for unknown sessions. */
  head(sessionId: string): Promise<number | undefined>;
  producer(sessionId: string, producerId: string): Promise<ProducerState | undefined>;

  close(): Promise<void>;
}
