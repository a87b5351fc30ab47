import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { LifelineError } from '../protocol/index.js';
import type { EventKind, Json, ProducerState, Role } from '../protocol/index.js';
import { judgeProducer } from './producer-rules.js';
import { leaseProducerId } from './store.js';
import type { AppendEntry, AppendOutcome, LeaseRecord, SessionRecord, Store, StoredEvent } from './store.js';

export interface SqliteStoreOptions {
  /**
   * `full` (default) fsyncs the WAL on every commit: nothing acknowledged is lost even if the
   * machine loses power. `normal` survives a killed process but not a power cut; it is faster.
   */
  synchronous?: 'full' | 'normal';
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
}

function toRecord(row: SessionRow): SessionRecord {
  return {
    id: row.id,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    metadata: JSON.parse(row.metadata) as Record<string, Json>,
    idleTtlMs: row.idle_ttl_ms,
    lastActiveAt: row.last_active ?? row.created_at,
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
  readonly #stmt: {
    insertSession: Statement;
    getSession: Statement<[string], SessionRow>;
    listSessions: Statement<[string, number], SessionRow>;
    deleteEvents: Statement;
    deleteProducers: Statement;
    deleteSession: Statement;
    expired: Statement<[number, number, number], { id: string }>;
    head: Statement<[string], { head: number }>;
    setHead: Statement;
    producer: Statement<[string, string], { epoch: number; seq: number }>;
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

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(SCHEMA);
    // Columns added after the first schema: add them to older files.
    const columns = new Set((this.#db.prepare('PRAGMA table_info(sessions)').all() as { name: string }[]).map((c) => c.name));
    if (!columns.has('idle_ttl_ms')) this.#db.exec('ALTER TABLE sessions ADD COLUMN idle_ttl_ms INTEGER');
    if (!columns.has('last_active')) this.#db.exec('ALTER TABLE sessions ADD COLUMN last_active INTEGER');
    const db = this.#db;
    this.#stmt = {
      insertSession: db.prepare('INSERT INTO sessions (id, created_at, expires_at, metadata, idle_ttl_ms, last_active) VALUES (?, ?, ?, ?, ?, ?)'),
      getSession: db.prepare('SELECT id, created_at, expires_at, metadata, idle_ttl_ms, last_active FROM sessions WHERE id = ?'),
      listSessions: db.prepare('SELECT id, created_at, expires_at, metadata, idle_ttl_ms, last_active FROM sessions WHERE id > ? ORDER BY id LIMIT ?'),
      deleteEvents: db.prepare('DELETE FROM events WHERE session = ?'),
      deleteProducers: db.prepare('DELETE FROM producers WHERE session = ?'),
      deleteSession: db.prepare('DELETE FROM sessions WHERE id = ?'),
      expired: db.prepare(
        'SELECT id FROM sessions WHERE (expires_at IS NOT NULL AND expires_at <= ?) OR (idle_ttl_ms IS NOT NULL AND coalesce(last_active, created_at) + idle_ttl_ms <= ?) LIMIT ?',
      ),
      head: db.prepare('SELECT head FROM sessions WHERE id = ?'),
      setHead: db.prepare('UPDATE sessions SET head = ?, last_active = ? WHERE id = ?'),
      producer: db.prepare('SELECT epoch, seq FROM producers WHERE session = ? AND id = ?'),
      setProducer: db.prepare(
        'INSERT INTO producers (session, id, epoch, seq) VALUES (?, ?, ?, ?) ON CONFLICT (session, id) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq',
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
      const heads = new Map<string, number>();
      const out = entries.map((entry) => this.#appendOne(entry, heads));
      const ts = entries[entries.length - 1]?.event.ts ?? Date.now();
      for (const [id, head] of heads) this.#stmt.setHead.run(head, ts, id);
      return out;
    }).immediate as unknown as (entries: readonly AppendEntry[]) => AppendOutcome[];
  }

  #appendOne(entry: AppendEntry, heads: Map<string, number>): AppendOutcome {
    const { sessionId: sid, producer: ref, event } = entry;
    let head = heads.get(sid);
    if (head === undefined) {
      head = this.#stmt.head.get(sid)?.head;
      if (head === undefined) return { status: 'rejected', code: 'SESSION_NOT_FOUND' };
    }
    if (ref) {
      const row = this.#stmt.producer.get(sid, ref.id);
      const current: ProducerState | undefined = row && { id: ref.id, epoch: row.epoch, seq: row.seq };
      const verdict = judgeProducer(current, ref);
      if (verdict.action === 'reject') return { status: 'rejected', code: verdict.code, current };
      if (verdict.action === 'duplicate') {
        const origin = this.#stmt.origin.get(sid, ref.id, ref.epoch, ref.seq);
        if (!origin) throw new LifelineError('INTERNAL', 'retried append has no recorded origin');
        return { status: 'duplicate', seq: origin.seq };
      }
      this.#stmt.setProducer.run(sid, ref.id, ref.epoch, ref.seq);
    }
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
    heads.set(sid, seq);
    return { status: 'appended', seq };
  }

  async createSession(record: SessionRecord): Promise<void> {
    try {
      this.#stmt.insertSession.run(record.id, record.createdAt, record.expiresAt, JSON.stringify(record.metadata), record.idleTtlMs ?? null, record.createdAt);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new LifelineError('SESSION_EXISTS');
      throw err;
    }
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const row = this.#stmt.getSession.get(id);
    return row ? toRecord(row) : undefined;
  }

  async listSessions(after: string | undefined, limit: number): Promise<SessionRecord[]> {
    return this.#stmt.listSessions.all(after ?? '', limit).map(toRecord);
  }

  async deleteSession(id: string): Promise<boolean> {
    return this.#db.transaction(() => {
      this.#stmt.deleteEvents.run(id);
      this.#stmt.deleteProducers.run(id);
      this.#stmt.deleteLeases.run(id);
      this.#stmt.deleteCursors.run(id);
      return this.#stmt.deleteSession.run(id).changes > 0;
    })();
  }

  async expiredSessions(now: number, limit: number): Promise<string[]> {
    return this.#stmt.expired.all(now, now, limit).map((r) => r.id);
  }

  async append(entries: readonly AppendEntry[]): Promise<AppendOutcome[]> {
    if (entries.length === 0) return [];
    return this.#appendTx(entries);
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
    return this.#claimTx(sessionId, role, holder, expectedEpoch);
  }

  async releaseLease(sessionId: string, role: string, holder: string, epoch: number): Promise<boolean> {
    return this.#stmt.releaseLease.run(sessionId, role, holder, epoch).changes > 0;
  }

  async commitCursor(sessionId: string, consumer: string, seq: number): Promise<void> {
    if (this.#stmt.head.get(sessionId) === undefined) return;
    this.#stmt.commitCursor.run(sessionId, consumer, seq);
  }

  async cursor(sessionId: string, consumer: string): Promise<number> {
    return this.#stmt.cursor.get(sessionId, consumer)?.seq ?? 0;
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
