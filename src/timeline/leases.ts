import { LifelineError, formatOffset } from '../protocol/index.js';
import { leaseProducerId } from '../store/index.js';
import type { LeaseRecord, Store } from '../store/index.js';
import { hasClusterLiveness } from './store-capabilities.js';

/** The live-record scope of a session's role lease. */
function leaseScope(sessionId: string, role: string): string {
  return `lease/${sessionId}/${role}`;
}

export interface LeaseOptions {
  /** How long a lease outlives its holder's connection going silent or away (ms). */
  ttlMs: number;
  /** A lease expired (its holder vanished): the relay hands the session to another worker. */
  onExpired?: (lease: LeaseRecord) => void;
}

interface LiveLease {
  record: LeaseRecord;
  /** The connection holding it now; undefined once it expired. */
  conn: object | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Expired: the holder cannot re-attach at this epoch; only a fresh claim (epoch + 1) can. */
  expired: boolean;
}

export interface Grant {
  lease: LeaseRecord;
  /** Offset after which the holder should read: everything its predecessors committed. */
  cursor: string;
}

/**
 * Agent leases: one holder per role per session, with an epoch. The durable part (holder, epoch,
 * fencing of the role's producer, the committed cursor) lives in the store; liveness lives here:
 * a lease lasts while its holder's connection is live, and `ttlMs` after it goes silent or away.
 * Then it expires, and the next claim gets epoch + 1 — the old holder's appends are refused from
 * that moment, whether or not it ever comes back.
 */
export class LeaseManager {
  readonly #store: Store;
  readonly #opts: LeaseOptions;
  readonly #live = new Map<string, LiveLease>();
  /** Claims of one session's role run one at a time: check-then-claim is not atomic otherwise. */
  readonly #queues = new Map<string, Promise<unknown>>();
  #closed = false;

  constructor(store: Store, opts: LeaseOptions) {
    this.#store = store;
    this.#opts = opts;
  }

  /**
   * Claims `role` for `holder` on connection `conn`. With `epoch`, re-attaches the holder to the
   * lease it already has (after a reconnect) — refused with STALE_EPOCH if the lease moved on.
   * Throws LEASE_HELD while another live connection holds it.
   */
  claim(sessionId: string, role: string, holder: string, conn: object, epoch?: number): Promise<Grant> {
    const key = `${sessionId}\u0000${role}`;
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.#claim(key, sessionId, role, holder, conn, epoch));
    this.#queues.set(key, run);
    void run.finally(() => {
      if (this.#queues.get(key) === run) this.#queues.delete(key);
    }).catch(() => undefined);
    return run;
  }

  async #claim(key: string, sessionId: string, role: string, holder: string, conn: object, epoch: number | undefined): Promise<Grant> {
    if (this.#closed) throw new LifelineError('SHUTTING_DOWN');
    const live = this.#live.get(key);
    if (epoch !== undefined && live?.expired && live.record.epoch === epoch) {
      throw new LifelineError('STALE_EPOCH', `the lease of ${role} at epoch ${epoch} expired`);
    }
    if (live?.conn && live.conn !== conn) {
      const sameHolder = live.record.holder === holder && epoch === live.record.epoch;
      if (!sameHolder) throw new LifelineError('LEASE_HELD', `role ${role} is held by ${live.record.holder ?? 'nobody'} at epoch ${live.record.epoch}`);
    }
    const stored = await this.#store.lease(sessionId, role);
    let record: LeaseRecord;
    if (epoch !== undefined) {
      if (!stored || stored.holder !== holder || stored.epoch !== epoch) {
        throw new LifelineError('STALE_EPOCH', `the lease of ${role} moved on from epoch ${epoch}`);
      }
      record = stored;
    } else {
      // Held by a live connection on another relay node (a cluster store knows): held.
      if (stored?.holder && stored.holder !== holder && hasClusterLiveness(this.#store)) {
        const elsewhere = await this.#store.liveElsewhere(leaseScope(sessionId, role));
        if (elsewhere.some((r) => (r.value as { epoch?: unknown } | null)?.epoch === stored.epoch)) {
          throw new LifelineError('LEASE_HELD', `role ${role} is held by ${stored.holder} at epoch ${stored.epoch} on another relay node`);
        }
      }
      const granted = await this.#store.claimLease(sessionId, role, holder, stored?.epoch ?? 0);
      if (!granted) throw new LifelineError('LEASE_HELD', `role ${role} was claimed concurrently`);
      record = granted;
    }
    const current = this.#live.get(key);
    clearTimeout(current?.timer);
    this.#live.set(key, { record, conn, timer: undefined, expired: false });
    this.#announce(record, true);
    const cursor = await this.#store.cursor(sessionId, leaseProducerId(role));
    return { lease: { ...record }, cursor: formatOffset(cursor) };
  }

  /** The lease `conn` holds for `role`, if it does. */
  held(sessionId: string, role: string, conn: object): LeaseRecord | undefined {
    const live = this.#live.get(`${sessionId}\u0000${role}`);
    return live?.conn === conn ? { ...live.record } : undefined;
  }

  /** How many live leases a participant holds (a worker's load). */
  heldBy(holder: string): number {
    let n = 0;
    for (const l of this.#live.values()) if (l.conn && l.record.holder === holder) n++;
    return n;
  }

  /** The holder's connection went silent or away: its leases expire in ttlMs unless it returns. */
  lost(conn: object): void {
    for (const live of this.#live.values()) {
      if (live.conn !== conn || live.timer) continue;
      live.timer = setTimeout(() => this.#expire(live), this.#opts.ttlMs);
      live.timer.unref();
    }
  }

  /** The holder's connection is live again. */
  alive(conn: object): void {
    for (const live of this.#live.values()) {
      if (live.conn !== conn) continue;
      clearTimeout(live.timer);
      live.timer = undefined;
    }
  }

  /** With a cluster store: tells the other relay nodes whether this node holds the lease live. */
  #announce(record: LeaseRecord, held: boolean): void {
    if (!hasClusterLiveness(this.#store)) return;
    this.#store.setLive(leaseScope(record.sessionId, record.role), held ? { holder: record.holder, epoch: record.epoch } : undefined);
  }

  #expire(live: LiveLease): void {
    this.#announce(live.record, false);
    live.timer = undefined;
    live.conn = undefined;
    live.expired = true;
    if (!this.#closed) this.#opts.onExpired?.({ ...live.record });
  }

  /** Gives the lease up (done, or handing off). The epoch stays; the next claim fences this one. */
  async release(sessionId: string, role: string, conn: object): Promise<LeaseRecord> {
    const key = `${sessionId}\u0000${role}`;
    const live = this.#live.get(key);
    if (!live || live.conn !== conn) throw new LifelineError('NOT_LEASE_HOLDER', `this connection does not hold ${role}`);
    clearTimeout(live.timer);
    this.#live.delete(key);
    this.#announce(live.record, false);
    await this.#store.releaseLease(sessionId, role, live.record.holder ?? '', live.record.epoch);
    return { ...live.record };
  }

  /** The holder has handled everything up to `seq`. */
  async commit(sessionId: string, role: string, conn: object, seq: number): Promise<void> {
    if (!this.held(sessionId, role, conn)) throw new LifelineError('NOT_LEASE_HOLDER', `this connection does not hold ${role}`);
    await this.#store.commitCursor(sessionId, leaseProducerId(role), seq);
  }

  /** Forgets a session's leases (deleted or expired session). */
  forget(sessionId: string): void {
    for (const [key, live] of this.#live) {
      if (!key.startsWith(`${sessionId}\u0000`)) continue;
      clearTimeout(live.timer);
      this.#live.delete(key);
      this.#announce(live.record, false);
    }
  }

  close(): void {
    this.#closed = true;
    for (const live of this.#live.values()) clearTimeout(live.timer);
    this.#live.clear();
  }
}
