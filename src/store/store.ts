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

  /** Records that `consumer` has fully handled everything up to `seq` (never moves back). */
  commitCursor(sessionId: string, consumer: string, seq: number): Promise<void>;
  /** The committed position of `consumer` (0 if none). */
  cursor(sessionId: string, consumer: string): Promise<number>;

  close(): Promise<void>;
}
