import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { LifelineError } from '../protocol/index.js';
import type { EventKind, Json, ProducerRef, ProducerState, Role } from '../protocol/index.js';
import { judgeProducer } from './producer-rules.js';
import { leaseProducerId } from './store.js';
import { WalCheckpointer } from './wal-checkpointer.js';
import type { AppendEntry, AppendOutcome, LeaseRecord, SessionRecord, Store, StoredEvent } from './store.js';

export interface SqliteStoreOptions {
  /**
   * `normal` (default): appends commit without an fsync of their own. A killed process loses
   * nothing (the OS holds every committed page). A power cut or OS crash can lose the appends of
   * the last moments: the background checkpointer fsyncs the WAL every `checkpointIntervalMs`
   * while there are writes, and never more than {@link MAX_UNSYNCED_EVENTS} appended events go
   * without an fsync. After such a loss no offset or producer position is handed out twice (see
   * {@link RECOVERY_SEQ_SKIP}). Sessions, closes, forks, deletes and leases always fsync.
   *
   * `full`: every commit fsyncs; nothing acknowledged is ever lost, at the cost of one fsync in
   * every token's path.
   */
  synchronous?: 'full' | 'normal';
  /**
   * Where WAL checkpoints run. `background` (default for files): on a worker thread with its own
   * connection, so no COMMIT on the event loop ever carries one. `inline`: SQLite's own
   * auto-checkpoint inside the COMMIT that crosses 1,000 WAL pages.
   */
  checkpoints?: 'background' | 'inline';
  /** Background checkpoint period (ms), default 200. */
  checkpointIntervalMs?: number;
  /** The background checkpointer failed; the store went back to inline checkpoints. */
  onCheckpointFailure?: (err: Error) => void;
  /**
   * This machine's boot id (default: Linux's `/proc/sys/kernel/random/boot_id`; null where there
   * is none). A run that stopped without close() lost nothing if the machine did not restart since.
   */
  bootId?: string | null;
}

/**
 * In `normal` mode, the most appended events ever committed without an fsync: the append that
 * would pass it commits with one. This bounds what a power cut can take, in events.
 */
export const MAX_UNSYNCED_EVENTS = 10_000;

/**
 * After a run in `normal` mode ended without close() and the machine restarted since, its last
 * appends may be lost — and readers may have seen them. Every timeline then skips this many
 * sequence numbers (more than {@link MAX_UNSYNCED_EVENTS}), so an offset a reader holds is never
 * given to another event. Producers may continue past the lost positions once.
 */
export const RECOVERY_SEQ_SKIP = 1_000_000;

/**
 * A store that has the file open (table `meta`, key `run:<uuid>`), deleted by close(). A row
 * left from an earlier boot is a run that never closed and may have lost its last appends.
 */
interface RunRecord {
  boot: string | null;
  pid: number;
  synchronous: 'full' | 'normal';
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function currentBootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
  } catch {
    return null;
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  metadata TEXT NOT NULL,
  head INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
  session TEXT NOT NULL,
  seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  participant TEXT NOT NULL,
  device TEXT NOT NULL,
  role TEXT NOT NULL,
  kind TEXT NOT NULL,
  track TEXT,
  data TEXT NOT NULL,
  bin BLOB,
  producer TEXT,
  epoch INTEGER,
  pseq INTEGER,
  PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_origin ON events(session, producer, epoch, pseq) WHERE producer IS NOT NULL;
CREATE TABLE IF NOT EXISTS leases (
  session TEXT NOT NULL,
  role TEXT NOT NULL,
  holder TEXT,
  epoch INTEGER NOT NULL,
  PRIMARY KEY (session, role)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
  session TEXT NOT NULL,
  consumer TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (session, consumer)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS producers (
  session TEXT NOT NULL,
  id TEXT NOT NULL,
  epoch INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (session, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
`;

interface EventRow {
  seq: number;
  ts: number;
  participant: string;
  device: string;
  role: string;
  kind: string;
  track: string | null;
  data: string;
  bin: Buffer | null;
}

interface SessionRow {
  id: string;
  created_at: number;
  expires_at: number | null;
  metadata: string;
  idle_ttl_ms: number | null;
  last_active: number | null;
  content_type: string | null;
  forked_from: string | null;
  closed: number | null;
  deleted_at: number | null;
}

/** A session's append-relevant state inside one append transaction. */
interface AppendState {
  head: number;
  closed: boolean;
  streamSeq: string | null;
}

/** SQLite's own auto-checkpoint threshold (pages), restored when the background checkpointer fails. */
const SQLITE_DEFAULT_CHECKPOINT_PAGES = 1000;
/** Writer's own auto-checkpoint threshold while a background checkpointer runs (pages). */
const BACKSTOP_CHECKPOINT_PAGES = 10_000;

const SESSION_COLUMNS = 'id, created_at, expires_at, metadata, idle_ttl_ms, last_active, content_type, forked_from, closed, deleted_at';

function toRecord(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    metadata: JSON.parse(row.metadata) as Record<string, Json>,
    idleTtlMs: row.idle_ttl_ms,
    lastActiveAt: row.last_active ?? row.created_at,
    // Durable Streams fields only when set, so plain sessions look as they always did.
    ...(row.content_type !== null ? { contentType: row.content_type } : {}),
    ...(row.forked_from !== null ? { forkedFrom: row.forked_from } : {}),
    ...(row.closed === 1 ? { closed: true } : {}),
    ...(row.deleted_at !== null ? { deletedAt: row.deleted_at } : {}),
  };
}

function toEvent(row: EventRow): StoredEvent {
  return {
    seq: row.seq,
    ts: row.ts,
    from: { participant: row.participant, device: row.device, role: row.role as Role },
    kind: row.kind as EventKind,
    ...(row.track !== null ? { track: row.track } : {}),
    data: JSON.parse(row.data) as Json,
    ...(row.bin !== null ? { bin: new Uint8Array(row.bin.buffer, row.bin.byteOffset, row.bin.byteLength) } : {}),
  };
}

/**
 * The embedded default: one SQLite file in WAL mode (better-sqlite3). A batch of appends is one
 * transaction, so group commit costs one fsync. Heads and producer state are read inside the
 * write transaction, so even two processes on one file could not hand out one offset twice.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  readonly #db: Db;
  readonly #checkpointer: WalCheckpointer | undefined;
  readonly #synchronous: 'full' | 'normal';
  /** Events appended since the last commit that fsynced (`normal` mode). */
  #unsynced = 0;
  #forcedSyncs = 0;
  readonly #recovered: boolean;
  readonly #runKey = `run:${randomUUID()}`;
  readonly #stmt: {
    insertSession: Statement;
    getSession: Statement<[string], SessionRow>;
    listSessions: Statement<[string, number], SessionRow>;
    deleteEvents: Statement;
    deleteProducers: Statement;
    deleteSession: Statement;
    expired: Statement<[number, number, number], { id: string }>;
    head: Statement<[string], { head: number }>;
    appendState: Statement<[string], { head: number; closed: number; stream_seq: string | null; deleted_at: number | null }>;
    setHead: Statement;
    setAppendState: Statement;
    close: Statement;
    touch: Statement;
    tombstone: Statement;
    forkCount: Statement<[string], { n: number }>;
    copyEvents: Statement;
    producer: Statement<[string, string], { epoch: number; seq: number; resync: number }>;
    setProducer: Statement;
    origin: Statement<[string, string, number, number], { seq: number }>;
    insertEvent: Statement;
    read: Statement<[string, number, number], EventRow>;
    lease: Statement<[string, string], { holder: string | null; epoch: number }>;
    upsertLease: Statement;
    releaseLease: Statement;
    deleteLeases: Statement;
    cursor: Statement<[string, string], { seq: number }>;
    commitCursor: Statement;
    deleteCursors: Statement;
  };
  readonly #claimTx: (sessionId: string, role: string, holder: string, expectedEpoch: number) => LeaseRecord | undefined;
  readonly #appendTx: (entries: readonly AppendEntry[]) => AppendOutcome[];
  readonly #closeTx: (sessionId: string, producer: ProducerRef | undefined, at: number) => AppendOutcome;
  readonly #forkTx: (record: SessionRecord, sourceId: string, uptoSeq: number, tail: Omit<StoredEvent, 'seq'> | undefined) => void;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#synchronous = opts.synchronous ?? 'normal';
    const synchronous = this.#synchronous === 'normal' ? 'NORMAL' : 'FULL';
    this.#db.pragma(`synchronous = ${synchronous}`);
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(SCHEMA);
    if (path !== ':memory:' && (opts.checkpoints ?? 'background') === 'background') {
      // A backstop, not the rule: under back-to-back commits the worker may never find the WAL
      // fully copied at the moment a commit starts, which is when SQLite reuses it from the start.
      // Then the WAL would grow without end; at 10,000 pages (about 40 MB) the writer checkpoints once.
      this.#db.pragma(`wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_PAGES}`);
      this.#checkpointer = new WalCheckpointer(path, {
        intervalMs: opts.checkpointIntervalMs ?? 200,
        synchronous,
        onFailure: (err) => {
          if (this.#db.open) this.#db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_CHECKPOINT_PAGES}`);
          opts.onCheckpointFailure?.(err);
        },
      });
    }
    // Columns added after the first schema: add them to older files.
    const columnsOf = (table: string): Set<string> =>
      new Set((this.#db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name));
    const columns = columnsOf('sessions');
    if (!columns.has('idle_ttl_ms')) this.#db.exec('ALTER TABLE sessions ADD COLUMN idle_ttl_ms INTEGER');
    if (!columns.has('last_active')) this.#db.exec('ALTER TABLE sessions ADD COLUMN last_active INTEGER');
    // Durable Streams (HTTP transport): content type, forks, closure, soft delete, writer seq.
    if (!columns.has('content_type')) this.#db.exec('ALTER TABLE sessions ADD COLUMN content_type TEXT');
    if (!columns.has('forked_from')) this.#db.exec('ALTER TABLE sessions ADD COLUMN forked_from TEXT');
    if (!columns.has('closed')) this.#db.exec('ALTER TABLE sessions ADD COLUMN closed INTEGER NOT NULL DEFAULT 0');
    if (!columns.has('deleted_at')) this.#db.exec('ALTER TABLE sessions ADD COLUMN deleted_at INTEGER');
    if (!columns.has('stream_seq')) this.#db.exec('ALTER TABLE sessions ADD COLUMN stream_seq TEXT');
    this.#db.exec('CREATE INDEX IF NOT EXISTS sessions_forks ON sessions(forked_from) WHERE forked_from IS NOT NULL');
    // Set on every producer when a run's last appends may have been lost (see RECOVERY_SEQ_SKIP).
    if (!columnsOf('producers').has('resync')) this.#db.exec('ALTER TABLE producers ADD COLUMN resync INTEGER NOT NULL DEFAULT 0');
    const db = this.#db;
    this.#stmt = {
      insertSession: db.prepare(
        'INSERT INTO sessions (id, created_at, expires_at, metadata, idle_ttl_ms, last_active, content_type, forked_from, head) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      getSession: db.prepare(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ?`),
      listSessions: db.prepare(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id > ? ORDER BY id LIMIT ?`),
      deleteEvents: db.prepare('DELETE FROM events WHERE session = ?'),
      deleteProducers: db.prepare('DELETE FROM producers WHERE session = ?'),
      deleteSession: db.prepare('DELETE FROM sessions WHERE id = ?'),
      expired: db.prepare(
        'SELECT id FROM sessions WHERE (expires_at IS NOT NULL AND expires_at <= ?) OR (idle_ttl_ms IS NOT NULL AND coalesce(last_active, created_at) + idle_ttl_ms <= ?) LIMIT ?',
      ),
      head: db.prepare('SELECT head FROM sessions WHERE id = ?'),
      setHead: db.prepare('UPDATE sessions SET head = ?, last_active = ? WHERE id = ?'),
      appendState: db.prepare('SELECT head, closed, stream_seq, deleted_at FROM sessions WHERE id = ?'),
      setAppendState: db.prepare('UPDATE sessions SET head = ?, last_active = ?, closed = ?, stream_seq = ? WHERE id = ?'),
      close: db.prepare('UPDATE sessions SET closed = 1, last_active = max(coalesce(last_active, 0), ?) WHERE id = ?'),
      touch: db.prepare('UPDATE sessions SET last_active = max(coalesce(last_active, 0), ?) WHERE id = ? AND deleted_at IS NULL'),
      tombstone: db.prepare('UPDATE sessions SET deleted_at = ?, head = 0 WHERE id = ? AND deleted_at IS NULL'),
      forkCount: db.prepare('SELECT count(*) AS n FROM sessions WHERE forked_from = ?'),
      copyEvents: db.prepare(
        'INSERT INTO events (session, seq, ts, participant, device, role, kind, track, data, bin) SELECT ?, seq, ts, participant, device, role, kind, track, data, bin FROM events WHERE session = ? AND seq <= ?',
      ),
      producer: db.prepare('SELECT epoch, seq, resync FROM producers WHERE session = ? AND id = ?'),
      setProducer: db.prepare(
        'INSERT INTO producers (session, id, epoch, seq) VALUES (?, ?, ?, ?) ON CONFLICT (session, id) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq, resync = 0',
      ),
      origin: db.prepare('SELECT seq FROM events WHERE session = ? AND producer = ? AND epoch = ? AND pseq = ?'),
      insertEvent: db.prepare(
        'INSERT INTO events (session, seq, ts, participant, device, role, kind, track, data, bin, producer, epoch, pseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      read: db.prepare(
        'SELECT seq, ts, participant, device, role, kind, track, data, bin FROM events WHERE session = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      lease: db.prepare('SELECT holder, epoch FROM leases WHERE session = ? AND role = ?'),
      upsertLease: db.prepare(
        'INSERT INTO leases (session, role, holder, epoch) VALUES (?, ?, ?, ?) ON CONFLICT (session, role) DO UPDATE SET holder = excluded.holder, epoch = excluded.epoch',
      ),
      releaseLease: db.prepare('UPDATE leases SET holder = NULL WHERE session = ? AND role = ? AND holder = ? AND epoch = ?'),
      deleteLeases: db.prepare('DELETE FROM leases WHERE session = ?'),
      cursor: db.prepare('SELECT seq FROM cursors WHERE session = ? AND consumer = ?'),
      commitCursor: db.prepare(
        'INSERT INTO cursors (session, consumer, seq) VALUES (?, ?, ?) ON CONFLICT (session, consumer) DO UPDATE SET seq = max(seq, excluded.seq)',
      ),
      deleteCursors: db.prepare('DELETE FROM cursors WHERE session = ?'),
    };
    this.#claimTx = db.transaction((sessionId: string, role: string, holder: string, expectedEpoch: number): LeaseRecord | undefined => {
      if (this.#stmt.head.get(sessionId) === undefined) return undefined;
      const current = this.#stmt.lease.get(sessionId, role)?.epoch ?? 0;
      if (current !== expectedEpoch) return undefined;
      const epoch = current + 1;
      this.#stmt.upsertLease.run(sessionId, role, holder, epoch);
      this.#stmt.setProducer.run(sessionId, leaseProducerId(role), epoch, -1);
      return { sessionId, role, holder, epoch };
    }).immediate as unknown as (sessionId: string, role: string, holder: string, expectedEpoch: number) => LeaseRecord | undefined;
    this.#appendTx = db.transaction((entries: readonly AppendEntry[]) => {
      const states = new Map<string, AppendState | null>();
      const out = entries.map((entry) => this.#appendOne(entry, states));
      const ts = entries[entries.length - 1]?.event.ts ?? Date.now();
      for (const [id, st] of states) if (st) this.#stmt.setAppendState.run(st.head, ts, st.closed ? 1 : 0, st.streamSeq, id);
      return out;
    }).immediate as unknown as (entries: readonly AppendEntry[]) => AppendOutcome[];
    this.#closeTx = db.transaction((sessionId: string, producer: ProducerRef | undefined, at: number) => this.#close(sessionId, producer, at))
      .immediate as unknown as (sessionId: string, producer: ProducerRef | undefined, at: number) => AppendOutcome;
    this.#forkTx = db.transaction((record: SessionRecord, sourceId: string, uptoSeq: number, tail: Omit<StoredEvent, 'seq'> | undefined) =>
      this.#fork(record, sourceId, uptoSeq, tail),
    ).immediate as unknown as (record: SessionRecord, sourceId: string, uptoSeq: number, tail: Omit<StoredEvent, 'seq'> | undefined) => void;
    this.#recovered = path === ':memory:' ? false : this.#startRun(opts.bootId === undefined ? currentBootId() : opts.bootId);
  }

  /**
   * Records this run in `meta` (with an fsync, which also makes everything an earlier run left in
   * the OS's cache durable) and clears the rows of runs that are gone. A run in `normal` mode left
   * from an earlier boot (or any, when the boot is unknown) may have lost its last appends: every
   * timeline then skips RECOVERY_SEQ_SKIP sequence numbers and every producer may continue past
   * its last durable position once. Returns whether it did.
   */
  #startRun(boot: string | null): boolean {
    const rows = this.#db.prepare("SELECT key, value FROM meta WHERE key >= 'run:' AND key < 'run;'").all() as { key: string; value: string }[];
    let lossPossible = false;
    const gone: string[] = [];
    for (const row of rows) {
      const run = JSON.parse(row.value) as RunRecord;
      if (boot !== null && run.boot === boot) {
        // This boot: the OS still holds whatever that run wrote. Its row stays while it lives.
        if (!processAlive(run.pid)) gone.push(row.key);
        continue;
      }
      if (run.synchronous === 'normal') lossPossible = true;
      gone.push(row.key);
    }
    this.#synced(() =>
      this.#db.transaction(() => {
        if (lossPossible) {
          this.#db.prepare('UPDATE sessions SET head = head + ? WHERE deleted_at IS NULL').run(RECOVERY_SEQ_SKIP);
          this.#db.exec('UPDATE producers SET resync = 1');
        }
        const drop = this.#db.prepare('DELETE FROM meta WHERE key = ?');
        for (const key of gone) drop.run(key);
        const run: RunRecord = { boot, pid: process.pid, synchronous: this.#synchronous };
        this.#db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run(this.#runKey, JSON.stringify(run));
      }).immediate(),
    );
    return lossPossible;
  }

  /** Runs a write that must survive a power cut: in `normal` mode its commit fsyncs (and so makes every earlier commit durable too). */
  #synced<T>(write: () => T): T {
    if (this.#synchronous === 'full') return write();
    this.#db.pragma('synchronous = FULL');
    try {
      const out = write();
      this.#unsynced = 0;
      return out;
    } finally {
      this.#db.pragma('synchronous = NORMAL');
    }
  }

  /** The append state of a session within this transaction; null for unknown or tombstoned ones. */
  #state(sid: string, states: Map<string, AppendState | null>): AppendState | null {
    let st = states.get(sid);
    if (st === undefined) {
      const row = this.#stmt.appendState.get(sid);
      st = row && row.deleted_at === null ? { head: row.head, closed: row.closed === 1, streamSeq: row.stream_seq } : null;
      states.set(sid, st);
    }
    return st;
  }

  /** Producer rules: an outcome for a rejected or retried write, undefined when it may go ahead. */
  #judge(sid: string, ref: ProducerRef, head: number): AppendOutcome | undefined {
    const row = this.#stmt.producer.get(sid, ref.id);
    const current: ProducerState | undefined = row && { id: ref.id, epoch: row.epoch, seq: row.seq };
    // After a possible loss the producer may have been acknowledged past its durable position:
    // its next write in the same epoch continues from wherever it is (once; setProducer clears it).
    if (row?.resync === 1 && ref.epoch === row.epoch && ref.seq > row.seq) return undefined;
    const verdict = judgeProducer(current, ref);
    if (verdict.action === 'reject') return { status: 'rejected', code: verdict.code, current };
    if (verdict.action === 'duplicate') {
      const origin = this.#stmt.origin.get(sid, ref.id, ref.epoch, ref.seq);
      if (origin) return { status: 'duplicate', seq: origin.seq };
      // A close-only write has no event; nothing can follow a close, so its position is the head.
      if (this.#stmt.appendState.get(sid)?.closed === 1) return { status: 'duplicate', seq: head };
      throw new LifelineError('INTERNAL', 'retried append has no recorded origin');
    }
    return undefined;
  }

  #close(sessionId: string, producer: ProducerRef | undefined, at: number): AppendOutcome {
    const row = this.#stmt.appendState.get(sessionId);
    if (!row || row.deleted_at !== null) return { status: 'rejected', code: 'SESSION_NOT_FOUND' };
    if (producer) {
      const early = this.#judge(sessionId, producer, row.head);
      if (early) return early;
      if (row.closed === 1) return { status: 'rejected', code: 'STREAM_CLOSED' };
      this.#stmt.setProducer.run(sessionId, producer.id, producer.epoch, producer.seq);
    } else if (row.closed === 1) {
      return { status: 'duplicate', seq: row.head };
    }
    this.#stmt.close.run(at, sessionId);
    return { status: 'appended', seq: row.head };
  }

  #fork(record: SessionRecord, sourceId: string, uptoSeq: number, tail: Omit<StoredEvent, 'seq'> | undefined): void {
    const source = this.#stmt.appendState.get(sourceId);
    if (!source || source.deleted_at !== null) throw new LifelineError('SESSION_NOT_FOUND', `no session ${sourceId}`);
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < 0 || uptoSeq > source.head) throw new LifelineError('OFFSET_OUT_OF_RANGE');
    try {
      this.#insertSession({ ...record, forkedFrom: sourceId }, uptoSeq + (tail ? 1 : 0));
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new LifelineError('SESSION_EXISTS');
      throw err;
    }
    this.#stmt.copyEvents.run(record.id, sourceId, uptoSeq);
    if (tail) {
      this.#stmt.insertEvent.run(
        record.id,
        uptoSeq + 1,
        tail.ts,
        tail.from.participant,
        tail.from.device,
        tail.from.role,
        tail.kind,
        tail.track ?? null,
        JSON.stringify(tail.data),
        tail.bin ?? null,
        null,
        null,
        null,
      );
    }
  }

  #appendOne(entry: AppendEntry, states: Map<string, AppendState | null>): AppendOutcome {
    const { sessionId: sid, producer: ref, event } = entry;
    const st = this.#state(sid, states);
    if (!st) return { status: 'rejected', code: 'SESSION_NOT_FOUND' };
    if (ref) {
      const early = this.#judge(sid, ref, st.head);
      if (early) return early;
    }
    if (st.closed) return { status: 'rejected', code: 'STREAM_CLOSED' };
    if (entry.streamSeq !== undefined) {
      if (st.streamSeq !== null && entry.streamSeq <= st.streamSeq) return { status: 'rejected', code: 'STREAM_SEQ_CONFLICT' };
      st.streamSeq = entry.streamSeq;
    }
    if (ref) this.#stmt.setProducer.run(sid, ref.id, ref.epoch, ref.seq);
    if (entry.close) st.closed = true;
    const head = st.head;
    const seq = head + 1;
    this.#stmt.insertEvent.run(
      sid,
      seq,
      event.ts,
      event.from.participant,
      event.from.device,
      event.from.role,
      event.kind,
      event.track ?? null,
      JSON.stringify(event.data),
      event.bin ?? null,
      ref?.id ?? null,
      ref?.epoch ?? null,
      ref?.seq ?? null,
    );
    st.head = seq;
    return { status: 'appended', seq };
  }

  async createSession(record: SessionRecord): Promise<void> {
    try {
      this.#synced(() => this.#insertSession(record, 0));
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new LifelineError('SESSION_EXISTS');
      throw err;
    }
  }

  #insertSession(record: SessionRecord, head: number): void {
    this.#stmt.insertSession.run(
      record.id,
      record.createdAt,
      record.expiresAt,
      JSON.stringify(record.metadata),
      record.idleTtlMs ?? null,
      record.createdAt,
      record.contentType ?? null,
      record.forkedFrom ?? null,
      head,
    );
  }

  async closeSession(sessionId: string, producer: ProducerRef | undefined, at: number): Promise<AppendOutcome> {
    return this.#synced(() => this.#closeTx(sessionId, producer, at));
  }

  async forkSession(record: SessionRecord, sourceId: string, uptoSeq: number, tail?: Omit<StoredEvent, 'seq'>): Promise<void> {
    this.#synced(() => this.#forkTx(record, sourceId, uptoSeq, tail));
  }

  async forkCount(id: string): Promise<number> {
    return this.#stmt.forkCount.get(id)?.n ?? 0;
  }

  async tombstoneSession(id: string, at: number): Promise<boolean> {
    return this.#synced(this.#db.transaction(() => {
      this.#stmt.deleteEvents.run(id);
      this.#stmt.deleteProducers.run(id);
      this.#stmt.deleteLeases.run(id);
      this.#stmt.deleteCursors.run(id);
      return this.#stmt.tombstone.run(at, id).changes > 0;
    }));
  }

  async touchSession(id: string, at: number): Promise<void> {
    this.#stmt.touch.run(at, id);
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const row = this.#stmt.getSession.get(id);
    return row ? toRecord(row) : undefined;
  }

  async listSessions(after: string | undefined, limit: number): Promise<SessionRecord[]> {
    return this.#stmt.listSessions.all(after ?? '', limit).map(toRecord);
  }

  async deleteSession(id: string): Promise<boolean> {
    return this.#synced(this.#db.transaction(() => {
      this.#stmt.deleteEvents.run(id);
      this.#stmt.deleteProducers.run(id);
      this.#stmt.deleteLeases.run(id);
      this.#stmt.deleteCursors.run(id);
      return this.#stmt.deleteSession.run(id).changes > 0;
    }));
  }

  async expiredSessions(now: number, limit: number): Promise<string[]> {
    return this.#stmt.expired.all(now, now, limit).map((r) => r.id);
  }

  async append(entries: readonly AppendEntry[]): Promise<AppendOutcome[]> {
    if (entries.length === 0) return [];
    if (this.#synchronous === 'full') return this.#appendTx(entries);
    if (this.#unsynced + entries.length > MAX_UNSYNCED_EVENTS) {
      this.#forcedSyncs++;
      return this.#synced(() => this.#appendTx(entries));
    }
    const outcomes = this.#appendTx(entries);
    this.#unsynced += entries.length;
    return outcomes;
  }

  async read(sessionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    return this.#stmt.read.all(sessionId, afterSeq, limit).map(toEvent);
  }

  async head(sessionId: string): Promise<number | undefined> {
    return this.#stmt.head.get(sessionId)?.head;
  }

  async producer(sessionId: string, producerId: string): Promise<ProducerState | undefined> {
    const row = this.#stmt.producer.get(sessionId, producerId);
    return row && { id: producerId, epoch: row.epoch, seq: row.seq };
  }

  async lease(sessionId: string, role: string): Promise<LeaseRecord | undefined> {
    const row = this.#stmt.lease.get(sessionId, role);
    return row && { sessionId, role, holder: row.holder, epoch: row.epoch };
  }

  async claimLease(sessionId: string, role: string, holder: string, expectedEpoch: number): Promise<LeaseRecord | undefined> {
    return this.#synced(() => this.#claimTx(sessionId, role, holder, expectedEpoch));
  }

  async releaseLease(sessionId: string, role: string, holder: string, epoch: number): Promise<boolean> {
    return this.#synced(() => this.#stmt.releaseLease.run(sessionId, role, holder, epoch).changes > 0);
  }

  async commitCursor(sessionId: string, consumer: string, seq: number): Promise<void> {
    if (this.#stmt.head.get(sessionId) === undefined) return;
    this.#stmt.commitCursor.run(sessionId, consumer, seq);
  }

  async cursor(sessionId: string, consumer: string): Promise<number> {
    return this.#stmt.cursor.get(sessionId, consumer)?.seq ?? 0;
  }

  /** The background checkpointer, when there is one (metrics and tests). */
  get checkpointer(): WalCheckpointer | undefined {
    return this.#checkpointer;
  }

  /** The writer connection's `wal_autocheckpoint` (pages; 10,000 while checkpoints run in the background). */
  get autoCheckpointPages(): number {
    return this.#db.pragma('wal_autocheckpoint', { simple: true }) as number;
  }

  /** This store's `synchronous` level. */
  get synchronous(): 'full' | 'normal' {
    return this.#synchronous;
  }

  /**
   * Whether opening found that the previous run may have lost its last appends (it was in
   * `normal` mode, never closed, and the machine restarted since) and so skipped
   * RECOVERY_SEQ_SKIP offsets on every timeline.
   */
  get recoveredFromPossibleLoss(): boolean {
    return this.#recovered;
  }

  /** Events appended since the last fsync, and how many appends were made to fsync because of MAX_UNSYNCED_EVENTS (`normal` mode). */
  get unsyncedAppends(): { events: number; forcedSyncs: number } {
    return { events: this.#unsynced, forcedSyncs: this.#forcedSyncs };
  }

  async close(): Promise<void> {
    // A clean stop: nothing can be lost now, so the next run has nothing to recover.
    if (this.#db.open && this.path !== ':memory:') this.#synced(() => this.#db.prepare('DELETE FROM meta WHERE key = ?').run(this.#runKey));
    await this.#checkpointer?.close();
    if (this.#db.open) this.#db.close();
  }
}
