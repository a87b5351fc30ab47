import { LifelineError } from '../protocol/index.js';
import type { ProducerState } from '../protocol/index.js';
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
}

/** Keeps everything in process memory. For tests and throwaway relays; nothing survives a restart. */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  readonly #sessions = new Map<string, MemorySession>();

  async createSession(record: SessionRecord): Promise<void> {
    if (this.#sessions.has(record.id)) throw new LifelineError('SESSION_EXISTS');
    this.#sessions.set(record.id, { record: { ...structuredClone(record), idleTtlMs: record.idleTtlMs ?? null, lastActiveAt: record.createdAt }, events: [], producers: new Map(), origins: new Map(), leases: new Map(), cursors: new Map() });
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
    const s = this.#sessions.get(entry.sessionId);
    if (!s) return { status: 'rejected', code: 'SESSION_NOT_FOUND' };
    const ref = entry.producer;
    if (ref) {
      const current = s.producers.get(ref.id);
      const verdict = judgeProducer(current, ref);
      if (verdict.action === 'reject') return { status: 'rejected', code: verdict.code, current: current && { ...current } };
      if (verdict.action === 'duplicate') {
        const seq = s.origins.get(`${ref.id}\u0000${ref.epoch}\u0000${ref.seq}`);
        if (seq === undefined) throw new LifelineError('INTERNAL', 'retried append has no recorded origin');
        return { status: 'duplicate', seq };
      }
    }
    const seq = s.events.length + 1;
    s.record.lastActiveAt = entry.event.ts;
    const { bin, ...rest } = entry.event;
    s.events.push({ ...structuredClone(rest), ...(bin ? { bin: new Uint8Array(bin) } : {}), seq });
    if (ref) {
      s.producers.set(ref.id, { id: ref.id, epoch: ref.epoch, seq: ref.seq });
      s.origins.set(`${ref.id}\u0000${ref.epoch}\u0000${ref.seq}`, seq);
    }
    return { status: 'appended', seq };
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
