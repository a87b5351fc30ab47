import { LifelineError } from '../protocol/index.js';
import type { ProducerRef, ProducerState } from '../protocol/index.js';
import { judgeProducer } from './producer-rules.js';
import { leaseProducerId } from './store.js';
import type { AppendEntry, AppendOutcome, LeaseRecord, SessionRecord, Store, StoredEvent } from './store.js';

interface MemorySession {
  record: SessionRecord;
  leases: Map<string, LeaseRecord>;
  cursors: Map<string, number>;
  events: StoredEvent[];
  producers: Map<string, ProducerState>;
  /** producerId/epoch/seq → event seq, for answering retries with the original offset. */
  origins: Map<string, number>;
  /** Last accepted Durable Streams `Stream-Seq`. */
  streamSeq?: string;
}

/**
 * A copy of an event (without its payload) that shares nothing mutable with the caller's object.
 * Cheaper than structuredClone of the whole event: only a JSON object or array in `data` needs a
 * deep copy (appends are the hot path).
 */
function copyEvent(e: Omit<StoredEvent, 'seq' | 'bin'>): Omit<StoredEvent, 'seq' | 'bin'> {
  const data = e.data !== null && typeof e.data === 'object' ? structuredClone(e.data) : e.data;
  return { ts: e.ts, from: { participant: e.from.participant, device: e.from.device, role: e.from.role }, kind: e.kind, ...(e.track !== undefined ? { track: e.track } : {}), data };
}

/** A private copy of a payload, without zero-filling memory that is overwritten at once. */
function copyBytes(bin: Uint8Array): Uint8Array {
  const raw = Buffer.allocUnsafeSlow(bin.byteLength);
  const copy = new Uint8Array(raw.buffer, raw.byteOffset, bin.byteLength);
  copy.set(bin);
  return copy;
}

/** Keeps everything in process memory. For tests and throwaway relays; nothing survives a restart. */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  readonly #sessions = new Map<string, MemorySession>();

  async createSession(record: SessionRecord): Promise<void> {
    if (this.#sessions.has(record.id)) throw new LifelineError('SESSION_EXISTS');
    this.#sessions.set(record.id, this.#fresh(record));
  }

  #fresh(record: SessionRecord): MemorySession {
    // closed and deletedAt are the store's to keep: whatever the caller passed is dropped.
    const { closed: _closed, deletedAt: _deletedAt, ...given } = structuredClone(record);
    const r: SessionRecord = { ...given, idleTtlMs: record.idleTtlMs ?? null, lastActiveAt: record.createdAt };
    if (r.contentType == null) delete r.contentType;
    if (r.forkedFrom == null) delete r.forkedFrom;
    return { record: r, events: [], producers: new Map(), origins: new Map(), leases: new Map(), cursors: new Map() };
  }

  /** A live (not tombstoned) session. */
  #live(id: string): MemorySession | undefined {
    const s = this.#sessions.get(id);
    return s && !s.record.deletedAt ? s : undefined;
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const s = this.#sessions.get(id);
    return s ? structuredClone(s.record) : undefined;
  }

  async listSessions(after: string | undefined, limit: number): Promise<SessionRecord[]> {
    return [...this.#sessions.keys()]
      .filter((id) => after === undefined || id > after)
      .sort()
      .slice(0, limit)
      .map((id) => structuredClone(this.#sessions.get(id)!.record));
  }

  async deleteSession(id: string): Promise<boolean> {
    return this.#sessions.delete(id);
  }

  async expiredSessions(now: number, limit: number): Promise<string[]> {
    const out: string[] = [];
    for (const s of this.#sessions.values()) {
      if (out.length >= limit) break;
      const idle = s.record.idleTtlMs != null && (s.record.lastActiveAt ?? s.record.createdAt) + s.record.idleTtlMs <= now;
      if ((s.record.expiresAt !== null && s.record.expiresAt <= now) || idle) out.push(s.record.id);
    }
    return out;
  }

  async append(entries: readonly AppendEntry[]): Promise<AppendOutcome[]> {
    return entries.map((entry) => this.#appendOne(entry));
  }

  #appendOne(entry: AppendEntry): AppendOutcome {
    const s = this.#live(entry.sessionId);
    if (!s) return { status: 'rejected', code: 'SESSION_NOT_FOUND' };
    const ref = entry.producer;
    if (ref) {
      const early = this.#judge(s, ref);
      if (early) return early;
    }
    if (s.record.closed) return { status: 'rejected', code: 'STREAM_CLOSED' };
    if (entry.streamSeq !== undefined) {
      if (s.streamSeq !== undefined && entry.streamSeq <= s.streamSeq) return { status: 'rejected', code: 'STREAM_SEQ_CONFLICT' };
      s.streamSeq = entry.streamSeq;
    }
    if (entry.close) s.record.closed = true;
    const seq = s.events.length + 1;
    s.record.lastActiveAt = entry.event.ts;
    const { bin, ...rest } = entry.event;
    s.events.push({ ...copyEvent(rest), ...(bin ? { bin: copyBytes(bin) } : {}), seq });
    if (ref) {
      s.producers.set(ref.id, { id: ref.id, epoch: ref.epoch, seq: ref.seq });
      s.origins.set(`${ref.id}\u0000${ref.epoch}\u0000${ref.seq}`, seq);
    }
    return { status: 'appended', seq };
  }

  /** Producer rules: an outcome for a rejected or retried write, undefined when it may go ahead. */
  #judge(s: MemorySession, ref: ProducerRef): AppendOutcome | undefined {
    const current = s.producers.get(ref.id);
    const verdict = judgeProducer(current, ref);
    if (verdict.action === 'reject') return { status: 'rejected', code: verdict.code, current: current && { ...current } };
    if (verdict.action === 'duplicate') {
      const seq = s.origins.get(`${ref.id}\u0000${ref.epoch}\u0000${ref.seq}`);
      if (seq === undefined) throw new LifelineError('INTERNAL', 'retried append has no recorded origin');
      return { status: 'duplicate', seq };
    }
    return undefined;
  }

  async closeSession(sessionId: string, producer: ProducerRef | undefined, at: number): Promise<AppendOutcome> {
    const s = this.#live(sessionId);
    if (!s) return { status: 'rejected', code: 'SESSION_NOT_FOUND' };
    const head = s.events.length;
    if (producer) {
      const early = this.#judge(s, producer);
      if (early) return early;
      if (s.record.closed) return { status: 'rejected', code: 'STREAM_CLOSED' };
      s.producers.set(producer.id, { id: producer.id, epoch: producer.epoch, seq: producer.seq });
      s.origins.set(`${producer.id}\u0000${producer.epoch}\u0000${producer.seq}`, head);
    } else if (s.record.closed) {
      return { status: 'duplicate', seq: head };
    }
    s.record.closed = true;
    s.record.lastActiveAt = at;
    return { status: 'appended', seq: head };
  }

  async forkSession(record: SessionRecord, sourceId: string, uptoSeq: number, tail?: Omit<StoredEvent, 'seq'>): Promise<void> {
    if (this.#sessions.has(record.id)) throw new LifelineError('SESSION_EXISTS');
    const source = this.#live(sourceId);
    if (!source) throw new LifelineError('SESSION_NOT_FOUND', `no session ${sourceId}`);
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < 0 || uptoSeq > source.events.length) throw new LifelineError('OFFSET_OUT_OF_RANGE');
    const fork = this.#fresh({ ...record, forkedFrom: sourceId });
    // Stored events are never mutated, so the fork may share them with its source.
    fork.events = source.events.slice(0, uptoSeq);
    if (tail) {
      const { bin, ...rest } = tail;
      fork.events.push({ ...copyEvent(rest), ...(bin ? { bin: copyBytes(bin) } : {}), seq: uptoSeq + 1 });
    }
    this.#sessions.set(record.id, fork);
  }

  async forkCount(id: string): Promise<number> {
    let n = 0;
    for (const s of this.#sessions.values()) if (s.record.forkedFrom === id) n++;
    return n;
  }

  async tombstoneSession(id: string, at: number): Promise<boolean> {
    const s = this.#live(id);
    if (!s) return false;
    s.events = [];
    s.producers.clear();
    s.origins.clear();
    s.leases.clear();
    s.cursors.clear();
    s.record.deletedAt = at;
    return true;
  }

  async touchSession(id: string, at: number): Promise<void> {
    const s = this.#live(id);
    if (s) s.record.lastActiveAt = Math.max(at, s.record.lastActiveAt ?? 0);
  }

  async read(sessionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const s = this.#sessions.get(sessionId);
    if (!s) return [];
    // seq n lives at index n - 1
    return s.events.slice(Math.max(0, afterSeq), Math.max(0, afterSeq) + limit);
  }

  async head(sessionId: string): Promise<number | undefined> {
    return this.#sessions.get(sessionId)?.events.length;
  }

  async producer(sessionId: string, producerId: string): Promise<ProducerState | undefined> {
    const p = this.#sessions.get(sessionId)?.producers.get(producerId);
    return p && { ...p };
  }

  async lease(sessionId: string, role: string): Promise<LeaseRecord | undefined> {
    const l = this.#sessions.get(sessionId)?.leases.get(role);
    return l && { ...l };
  }

  async claimLease(sessionId: string, role: string, holder: string, expectedEpoch: number): Promise<LeaseRecord | undefined> {
    const s = this.#sessions.get(sessionId);
    if (!s) return undefined;
    const current = s.leases.get(role)?.epoch ?? 0;
    if (current !== expectedEpoch) return undefined;
    const lease: LeaseRecord = { sessionId, role, holder, epoch: current + 1 };
    s.leases.set(role, lease);
    const producer = leaseProducerId(role);
    s.producers.set(producer, { id: producer, epoch: lease.epoch, seq: -1 });
    return { ...lease };
  }

  async releaseLease(sessionId: string, role: string, holder: string, epoch: number): Promise<boolean> {
    const l = this.#sessions.get(sessionId)?.leases.get(role);
    if (!l || l.holder !== holder || l.epoch !== epoch) return false;
    l.holder = null;
    return true;
  }

  async commitCursor(sessionId: string, consumer: string, seq: number): Promise<void> {
    const s = this.#sessions.get(sessionId);
    if (!s) return;
    s.cursors.set(consumer, Math.max(seq, s.cursors.get(consumer) ?? 0));
  }

  async cursor(sessionId: string, consumer: string): Promise<number> {
    return this.#sessions.get(sessionId)?.cursors.get(consumer) ?? 0;
  }

  async close(): Promise<void> {
    this.#sessions.clear();
  }
}
