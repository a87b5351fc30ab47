import { DeliverPolicy, JetStreamApiError, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { KV } from '@nats-io/kv';
import { headers } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { LifelineError } from '../../protocol/index.js';
import type { Json, ProducerRef, ProducerState } from '../../protocol/index.js';
import { judgeProducer } from '../producer-rules.js';
import type { AppendEntry, AppendOutcome, LeaseRecord, SessionRecord, Store, StoredEvent } from '../store.js';
import { META_HEADER, decodeEvents, encodeEvents, eventSize, sessionIdFromKey, sessionKey } from './codec.js';
import type { BatchMeta, LeaseOp, ProducerMark } from './codec.js';
import { SessionState } from './session-state.js';

export interface NatsStoreOptions {
  /** Server URLs, e.g. ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223']. */
  servers: string[];
  /** Names the stream (`<prefix>_events`) and the KV buckets; several deployments can share a cluster. */
  prefix?: string;
  /** Replicas of the stream and buckets (default 3 when the server is in a cluster, else 1). */
  replicas?: number;
  /**
   * A session whose pending appends are all `audio.frame` waits until this long after its previous
   * publish, so that frames ride together (default 40 ms: at 50 frames/s, 2 frames per publish).
   * 0 publishes every frame as soon as the previous publish is acknowledged.
   */
  audioLingerMs?: number;
  /** How long one append keeps retrying through a NATS failover before it fails (default 30 s). */
  publishDeadlineMs?: number;
  /** JetStream's duplicate window for a newly created stream (default 2 min; tests shorten it). */
  duplicateWindowMs?: number;
}

/** The stored session record: the contract's, plus the incarnation that names its subject. */
interface NatsSessionRecord extends SessionRecord {
  gen: string;
}

interface Plan {
  outcomes: AppendOutcome[];
  events: StoredEvent[];
  marks: ProducerMark[];
  closed: boolean;
  writerSeq?: string;
}

interface LastMessage {
  seq: number;
  meta: BatchMeta;
}

interface PendingAppend {
  entries: AppendEntry[];
  resolve: (outcomes: AppendOutcome[]) => void;
  reject: (err: unknown) => void;
}

/** Per-session write queue: one publish in flight per session, everything queued meanwhile rides the next. */
interface SessionWriter {
  queue: PendingAppend[];
  running: boolean;
  lastPublishAt: number;
  wake: (() => void) | undefined;
}

/** Messages kept well under the server's default max_payload (1 MiB). */
const MAX_MESSAGE_BYTES = 768 * 1024;
const MAX_MESSAGE_EVENTS = 4096;
/** Sessions whose folded state is kept in memory. */
const MAX_CACHED_SESSIONS = 20_000;
/** A scan that sees no message for this long gives up (the subject was purged under it). */
const SCAN_STALL_MS = 5000;
const API_TIMEOUT_MS = 2000;
/** Live records (lease holders, connected devices) outlive their last renewal this long. */
const LIVE_TTL_MS = 6000;
const LIVE_RENEW_MS = 2000;
/** A watch that received nothing this long checks whether it fell behind. */
const WATCH_QUIET_MS = 4000;

const NOT_FOUND: AppendOutcome = { status: 'rejected', code: 'SESSION_NOT_FOUND' };

/** A scope ("lease/<session>/<role>", "presence/<session>") as KV key tokens. */
function liveScopeKey(scope: string): string {
  return scope
    .split('/')
    .map((part) => sessionKey(part))
    .join('.');
}

/** A session incarnation: names its subject, so a re-created session never sees the old one's messages. */
function newGen(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString('hex');
}

function nonce(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(12))).toString('base64url');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function parseHeaderBlock(b64: string | undefined, name: string): string | undefined {
  if (!b64) return undefined;
  const lines = Buffer.from(b64, 'base64').toString('utf8').split('\r\n');
  const prefix = `${name.toLowerCase()}:`;
  for (const line of lines) if (line.toLowerCase().startsWith(prefix)) return line.slice(prefix.length).trim();
  return undefined;
}

function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10071 || err.code === 10164);
}

/** Errors worth retrying through a failover: timeouts, no responders, 503s, a reconnecting client. */
function isTransient(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.status === 503 || err.code === 10008;
  return err instanceof Error;
}

/**
 * The Store contract on NATS JetStream (replicated with RAFT): any number of relay nodes share it.
 *
 * - Events: one replicated stream; each session incarnation has its own subject, and each message
 *   on it is one committed batch of that session. Every append is published with
 *   `Nats-Expected-Last-Subject-Sequence` = the stream sequence of the last message this node has
 *   folded for the session, so a batch judged against that state commits only if nobody wrote in
 *   between; otherwise the node folds what it missed and judges again. Offsets are per-session
 *   seqs carried in the message headers: strictly increasing, no two events with one offset.
 * - Idempotent producers: the producer coordinates of every event are in the message that commits
 *   it, so producer state is the fold of the subject — durable for as long as the timeline, not
 *   a duplicate window. Lease claims are messages on the same subject (fencing commits atomically
 *   with the epoch). `Nats-Msg-Id` additionally makes a retried publish after a lost ack idempotent.
 * - Sessions (metadata, TTLs) and cursors: KV buckets, updated with compare-and-set.
 */
export class NatsStore implements Store {
  readonly kind = 'nats';
  /** append() calls may overlap: the store keeps per-session order itself. */
  readonly pipelinedAppends = true;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #sessions: KV;
  readonly #cursors: KV;
  readonly #stream: string;
  readonly #prefix: string;
  readonly #audioLingerMs: number;
  readonly #publishDeadlineMs: number;
  readonly #states = new Map<string, SessionState>();
  readonly #loading = new Map<string, Promise<SessionState | undefined>>();
  readonly #writers = new Map<string, SessionWriter>();
  readonly #watches = new Set<{ stop: () => void }>();
  readonly #live: KV;
  /** This node's live records (scope key → JSON), renewed every LIVE_RENEW_MS until cleared. */
  readonly #liveRecords = new Map<string, string>();
  #liveTimer: NodeJS.Timeout | undefined;
  /** Identifies this relay node in live records. */
  readonly nodeId = nonce();
  #closed = false;
  /** Publishes made (one per committed message), for metrics and the bench. */
  publishes = 0;

  private constructor(nc: NatsConnection, js: JetStreamClient, jsm: JetStreamManager, sessions: KV, cursors: KV, live: KV, prefix: string, opts: NatsStoreOptions) {
    this.#live = live;
    this.#nc = nc;
    this.#js = js;
    this.#jsm = jsm;
    this.#sessions = sessions;
    this.#cursors = cursors;
    this.#prefix = prefix;
    this.#stream = `${prefix}_events`;
    this.#audioLingerMs = opts.audioLingerMs ?? 40;
    this.#publishDeadlineMs = opts.publishDeadlineMs ?? 30_000;
  }

  static async open(opts: NatsStoreOptions): Promise<NatsStore> {
    const prefix = opts.prefix ?? 'lifeline';
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) throw new LifelineError('BAD_REQUEST', `bad NATS prefix "${prefix}"`);
    const nc = await connect({
      servers: opts.servers,
      name: 'lifeline',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      pingInterval: 5000,
    });
    // Setting up goes through JetStream's meta leader: retried through an election (a server of
    // the cluster may just have died), up to the publish deadline.
    const deadline = Date.now() + (opts.publishDeadlineMs ?? 30_000);
    for (let attempt = 0; ; attempt++) {
      try {
        return await NatsStore.#setUp(nc, prefix, opts);
      } catch (err) {
        if (err instanceof LifelineError || Date.now() >= deadline) {
          await nc.close().catch(() => {});
          throw err;
        }
        await sleep(Math.min(1000, 50 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  static async #setUp(nc: NatsConnection, prefix: string, opts: NatsStoreOptions): Promise<NatsStore> {
    const replicas = opts.replicas ?? (nc.info?.cluster ? 3 : 1);
    // API requests time out in 2 s (not 5): one sent to a server or leader that just died is
    // retried sooner; everything retried is idempotent (Msg-Id, compare-and-set, reads).
    const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS });
    const js = jetstream(nc, { timeout: API_TIMEOUT_MS });
    const stream = `${prefix}_events`;
    const config = { name: stream, subjects: [`${prefix}.ev.>`], num_replicas: replicas, duplicate_window: (opts.duplicateWindowMs ?? 120_000) * 1_000_000 };
    try {
      await jsm.streams.info(stream);
    } catch {
      await jsm.streams.add(config);
    }
    const kvm = new Kvm(js);
    // Reads through the stream leader (no direct get from a replica that may lag): a session
    // created or deleted through one node is seen at once through every other.
    const sessions = await kvm.create(`${prefix}-sessions`, { replicas, history: 1, allow_direct: false });
    const cursors = await kvm.create(`${prefix}-cursors`, { replicas, history: 1, allow_direct: false });
    // Live records vanish LIVE_TTL_MS after their last renewal: a dead node's leases and devices go with them.
    const live = await kvm.create(`${prefix}-live`, { replicas, history: 1, ttl: LIVE_TTL_MS });
    return new NatsStore(nc, js, jsm, sessions, cursors, live, prefix, opts);
  }

  /** The stream holding every timeline (for tools and tests). */
  get streamName(): string {
    return this.#stream;
  }

  // ---- sessions ----------------------------------------------------------------------------

  async createSession(record: SessionRecord): Promise<void> {
    const stored = this.#newRecord(record);
    try {
      await this.#sessions.create(sessionKey(record.id), JSON.stringify(stored));
    } catch (err) {
      if (isWrongLastSequence(err)) throw new LifelineError('SESSION_EXISTS');
      throw err;
    }
    this.#forget(record.id);
  }

  #newRecord(record: SessionRecord): NatsSessionRecord {
    // closed and deletedAt are the store's to keep: whatever the caller passed is dropped.
    const { closed: _closed, deletedAt: _deletedAt, ...given } = structuredClone(record);
    const stored: NatsSessionRecord = { ...given, idleTtlMs: record.idleTtlMs ?? null, lastActiveAt: record.createdAt, gen: newGen() };
    if (stored.contentType == null) delete stored.contentType;
    if (stored.forkedFrom == null) delete stored.forkedFrom;
    return stored;
  }

  async getSession(id: string): Promise<SessionRecord | undefined> {
    const rec = await this.#record(id);
    if (!rec) return undefined;
    const state = rec.deletedAt ? undefined : await this.#fresh(id);
    return this.#public(rec, state);
  }

  async listSessions(after: string | undefined, limit: number): Promise<SessionRecord[]> {
    if (limit <= 0) return [];
    const ids: string[] = [];
    for await (const k of await this.#sessions.keys()) ids.push(sessionIdFromKey(k));
    const page = ids
      .filter((id) => after === undefined || id > after)
      .sort()
      .slice(0, limit);
    // A listing reads each session's last message, not its whole fold (its activity and closure
    // could only be off if that last message is a void one, in the instant of a write race).
    const got = await Promise.all(
      page.map(async (id) => {
        const rec = await this.#record(id);
        if (!rec) return undefined;
        const cached = this.#states.get(id);
        if (cached || rec.deletedAt) return this.#public(rec, cached);
        const last = await this.#lastMessage(this.#subject(sessionKey(id), rec.gen));
        const out = this.#public(rec, undefined);
        out.lastActiveAt = Math.max(out.lastActiveAt ?? 0, last?.meta.ts ?? 0);
        if (last?.meta.cl) out.closed = true;
        return out;
      }),
    );
    return got.filter((r): r is SessionRecord => r !== undefined);
  }

  async deleteSession(id: string): Promise<boolean> {
    const key = sessionKey(id);
    const entry = await this.#sessions.get(key);
    if (!entry || entry.operation !== 'PUT') return false;
    const rec = entry.json<NatsSessionRecord>();
    try {
      await this.#sessions.delete(key, { previousSeq: entry.revision });
    } catch (err) {
      if (isWrongLastSequence(err)) return false; // someone else deleted (or re-created) it first
      throw err;
    }
    this.#forget(id);
    if (!rec.deletedAt) await this.#purgeTimeline(key, rec.gen);
    return true;
  }

  async #purgeTimeline(key: string, gen: string): Promise<void> {
    await this.#jsm.streams.purge(this.#stream, { filter: this.#subject(key, gen) });
    const cursorKeys: string[] = [];
    for await (const k of await this.#cursors.keys(`${key}.${gen}.>`)) cursorKeys.push(k);
    await Promise.all(cursorKeys.map((k) => this.#cursors.purge(k)));
  }

  async #allRecords(): Promise<NatsSessionRecord[]> {
    const keys: string[] = [];
    for await (const k of await this.#sessions.keys()) keys.push(k);
    const entries = await Promise.all(keys.map((k) => this.#sessions.get(k)));
    return entries.filter((e) => e?.operation === 'PUT').map((e) => e!.json<NatsSessionRecord>());
  }

  async expiredSessions(now: number, limit: number): Promise<string[]> {
    if (limit <= 0) return [];
    const out: string[] = [];
    for await (const k of await this.#sessions.keys()) {
      if (out.length >= limit) break;
      const id = sessionIdFromKey(k);
      const rec = await this.#record(id);
      if (!rec) continue;
      if (rec.expiresAt !== null && rec.expiresAt <= now) {
        out.push(id);
        continue;
      }
      if (rec.idleTtlMs == null) continue;
      if ((rec.lastActiveAt ?? rec.createdAt) + rec.idleTtlMs > now) continue;
      // Idle by the record: the newest event (kept in the stream, not the record) decides.
      const last = await this.#lastMessage(this.#subject(k, rec.gen));
      const active = Math.max(rec.lastActiveAt ?? rec.createdAt, last?.meta.ts ?? 0);
      if (active + rec.idleTtlMs <= now) out.push(id);
      else await this.#touch(k, active);
    }
    return out;
  }

  // ---- append and read ---------------------------------------------------------------------

  async append(entries: readonly AppendEntry[]): Promise<AppendOutcome[]> {
    if (entries.length === 0) return [];
    this.#assertOpen();
    const out = new Array<AppendOutcome>(entries.length);
    const bySession = new Map<string, number[]>();
    entries.forEach((e, i) => {
      const list = bySession.get(e.sessionId);
      if (list) list.push(i);
      else bySession.set(e.sessionId, [i]);
    });
    await Promise.all(
      [...bySession].map(async ([sessionId, idx]) => {
        // Copies now: the caller may reuse its buffers before the publish goes out.
        const own = idx.map((i) => {
          const e = entries[i]!;
          return e.event.bin ? { ...e, event: { ...e.event, bin: new Uint8Array(e.event.bin) } } : e;
        });
        const outcomes = await this.#submit(sessionId, own);
        idx.forEach((i, k) => {
          out[i] = outcomes[k]!;
        });
      }),
    );
    return out;
  }

  async read(sessionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    if (limit <= 0) return [];
    // Caught up first (one request): the read sees everything committed so far, by any node.
    const state = await this.#fresh(sessionId);
    if (!state || afterSeq >= state.head) return [];
    const from = state.messageOf(Math.max(afterSeq, 0) + 1);
    if (from === undefined) return [];
    const until = state.lastStreamSeq;
    const out: StoredEvent[] = [];
    await this.#scan(state.subject, from, until, false, (m, meta) => {
      const valid = state.fold(meta, m.seq) || state.holdsEvents(m.seq);
      if (!valid || meta.n === 0) return out.length < limit;
      for (const e of decodeEvents(m.data, meta.f)) {
        if (e.seq > afterSeq && out.length < limit) out.push(e);
      }
      return out.length < limit;
    });
    return out;
  }

  async head(sessionId: string): Promise<number | undefined> {
    const rec = await this.#record(sessionId);
    if (!rec) return undefined;
    if (rec.deletedAt) return 0;
    // From the fold, not the last message's header: the last message may be void.
    const state = await this.#fresh(sessionId);
    return state?.head ?? 0;
  }

  async producer(sessionId: string, producerId: string): Promise<ProducerState | undefined> {
    const state = await this.#fresh(sessionId);
    return state?.producer(producerId);
  }

  // ---- Durable Streams: close, forks, tombstones ---------------------------------------------

  async closeSession(sessionId: string, producer: ProducerRef | undefined, at: number): Promise<AppendOutcome> {
    const outcome = await this.#controlOp<AppendOutcome>(sessionId, (state) => {
      const head = state.head;
      if (producer) {
        const current = state.producer(producer.id);
        const verdict = judgeProducer(current, producer);
        if (verdict.action === 'reject') return { result: { status: 'rejected', code: verdict.code, current } };
        if (verdict.action === 'duplicate') {
          const seq = state.origin(producer.id, producer.epoch, producer.seq);
          // Outside the local window: nothing can follow a close, so a retried close is answered with the head.
          return { result: { status: 'duplicate', seq: seq ?? head } };
        }
        if (state.closed) return { result: { status: 'rejected', code: 'STREAM_CLOSED' } };
        return { result: { status: 'appended', seq: head }, meta: { cl: true, ts: at, p: [[producer.id, producer.epoch, producer.seq, head]] } };
      }
      if (state.closed) return { result: { status: 'duplicate', seq: head } };
      return { result: { status: 'appended', seq: head }, meta: { cl: true, ts: at } };
    });
    return outcome ?? NOT_FOUND;
  }

  async forkSession(record: SessionRecord, sourceId: string, uptoSeq: number, tail?: Omit<StoredEvent, 'seq'>): Promise<void> {
    const key = sessionKey(record.id);
    const existing = await this.#sessions.get(key);
    if (existing?.operation === 'PUT') throw new LifelineError('SESSION_EXISTS');
    const source = await this.#fresh(sourceId);
    if (!source) throw new LifelineError('SESSION_NOT_FOUND', `no session ${sourceId}`);
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < 0 || uptoSeq > source.head) throw new LifelineError('OFFSET_OUT_OF_RANGE');
    const events: StoredEvent[] = [];
    while (events.length < uptoSeq) {
      const page = await this.read(sourceId, events.length, Math.min(1024, uptoSeq - events.length));
      if (page.length === 0) throw new LifelineError('INTERNAL', `fork source ${sourceId} ended before ${uptoSeq}`);
      events.push(...page);
    }
    if (tail) events.push({ ...tail, ...(tail.bin ? { bin: new Uint8Array(tail.bin) } : {}), seq: uptoSeq + 1 });
    // The copy goes to the fork's own subject first; the fork exists once its record does.
    const stored = this.#newRecord({ ...record, forkedFrom: sourceId });
    const fork = new SessionState(record.id, key, stored.gen, this.#subject(key, stored.gen));
    let at = 0;
    while (at < events.length) {
      let bytes = 0;
      let end = at;
      while (end < events.length && (end === at || (bytes + eventSize(events[end]!) <= MAX_MESSAGE_BYTES && end - at < MAX_MESSAGE_EVENTS))) {
        bytes += eventSize(events[end]!);
        end++;
      }
      const chunk = events.slice(at, end);
      const meta: Omit<BatchMeta, 'l'> = { h: end, f: at + 1, n: chunk.length, ts: chunk[chunk.length - 1]!.ts, b: nonce() };
      if ((await this.#commitMessage(fork, meta, encodeEvents(chunk))) !== 'committed') throw new LifelineError('INTERNAL', 'fork subject written concurrently');
      at = end;
    }
    try {
      await this.#sessions.create(key, JSON.stringify(stored));
    } catch (err) {
      await this.#jsm.streams.purge(this.#stream, { filter: fork.subject }).catch(() => {});
      if (isWrongLastSequence(err)) throw new LifelineError('SESSION_EXISTS');
      throw err;
    }
    this.#forget(record.id);
  }

  async forkCount(id: string): Promise<number> {
    let n = 0;
    for (const rec of await this.#allRecords()) if (rec.forkedFrom === id) n++;
    return n;
  }

  async tombstoneSession(id: string, at: number): Promise<boolean> {
    const key = sessionKey(id);
    const entry = await this.#sessions.get(key);
    if (!entry || entry.operation !== 'PUT') return false;
    const rec = entry.json<NatsSessionRecord>();
    if (rec.deletedAt) return false;
    try {
      await this.#sessions.update(key, JSON.stringify({ ...rec, deletedAt: at }), entry.revision);
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw err;
    }
    this.#forget(id);
    await this.#purgeTimeline(key, rec.gen);
    return true;
  }

  async touchSession(id: string, at: number): Promise<void> {
    await this.#touch(sessionKey(id), at);
  }

  // ---- leases and cursors ------------------------------------------------------------------

  async lease(sessionId: string, role: string): Promise<LeaseRecord | undefined> {
    const state = await this.#fresh(sessionId);
    const l = state?.leases.get(role);
    return l && { sessionId, role, holder: l.holder, epoch: l.epoch };
  }

  async claimLease(sessionId: string, role: string, holder: string, expectedEpoch: number): Promise<LeaseRecord | undefined> {
    const result = await this.#leaseOp(sessionId, (state) => {
      const current = state.leases.get(role)?.epoch ?? 0;
      return current === expectedEpoch ? { t: 'claim', role, holder, epoch: current + 1 } : undefined;
    });
    return result ? { sessionId, role, holder, epoch: result.epoch } : undefined;
  }

  async releaseLease(sessionId: string, role: string, holder: string, epoch: number): Promise<boolean> {
    const result = await this.#leaseOp(sessionId, (state) => {
      const l = state.leases.get(role);
      return l && l.holder === holder && l.epoch === epoch ? { t: 'release', role, holder, epoch } : undefined;
    });
    return result !== undefined;
  }

  async commitCursor(sessionId: string, consumer: string, seq: number): Promise<void> {
    const rec = await this.#record(sessionId);
    if (!rec) return;
    const key = this.#cursorKey(sessionId, rec.gen, consumer);
    for (let attempt = 0; attempt < 50; attempt++) {
      const entry = await this.#retrying(() => this.#cursors.get(key));
      const current = entry?.operation === 'PUT' ? Number(entry.string()) : 0;
      if (current >= seq) return;
      try {
        if (entry) await this.#cursors.update(key, String(seq), entry.revision);
        else await this.#cursors.create(key, String(seq));
        // nats-server 2.9 may let two compare-and-set writes in flight both succeed: read back
        // and go again until the stored cursor is at least ours (it then only ever grows).
        continue;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new LifelineError('INTERNAL', 'cursor commit kept conflicting');
  }

  async cursor(sessionId: string, consumer: string): Promise<number> {
    const rec = await this.#record(sessionId);
    if (!rec) return 0;
    const entry = await this.#retrying(() => this.#cursors.get(this.#cursorKey(sessionId, rec.gen, consumer)));
    return entry?.operation === 'PUT' ? Number(entry.string()) : 0;
  }

  // ---- cluster hooks -----------------------------------------------------------------------

  /**
   * Calls `onEvents` with the session's events after `afterSeq` as they are committed, by any node
   * (this one included), in order. Delivery comes from a JetStream consumer, which only sees stored
   * (replicated, committed) messages: commit before deliver holds across nodes, with no extra round
   * trip per event. Stops on stop() or close().
   */
  watchCommitted(
    sessionId: string,
    afterSeq: number,
    onEvents: (events: StoredEvent[]) => void,
    onError?: (err: unknown) => void,
    onClosed?: () => void,
  ): { stop: () => void } {
    let stopped = false;
    let stopIter: (() => void) | undefined;
    let delivered = afterSeq;
    const handle = {
      stop: () => {
        stopped = true;
        stopIter?.();
        this.#watches.delete(handle);
      },
    };
    this.#watches.add(handle);
    const run = async (): Promise<void> => {
      for (let attempt = 0; !stopped && !this.#closed; attempt++) {
        try {
          const state = await this.#load(sessionId);
          if (!state) return;
          const start = delivered < state.head ? (state.messageOf(delivered + 1) ?? state.lastStreamSeq + 1) : state.lastStreamSeq + 1;
          const consumer = await this.#js.consumers.get(this.#stream, {
            filter_subjects: state.subject,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: start,
          });
          const iter = await consumer.consume({ max_messages: 512, expires: 5000 });
          stopIter = () => iter.stop();
          if (stopped) iter.stop();
          // Watchdog: a consumer that went quiet while the subject moved on (its server died, a
          // failover left it behind) is replaced, resuming after the last event delivered.
          let lastSeen = start - 1;
          let quietSince = Date.now();
          let checking = false;
          const dog = setInterval(() => {
            if (checking || Date.now() - quietSince < WATCH_QUIET_MS) return;
            const seenBefore = lastSeen;
            checking = true;
            this.#lastMessage(state.subject)
              .then((last) => {
                // Still nothing received since, while the subject has more: replace the consumer.
                if (last && last.seq > lastSeen && lastSeen === seenBefore) iter.stop();
                else quietSince = Date.now();
              })
              .catch(() => {})
              .finally(() => {
                checking = false;
              });
          }, WATCH_QUIET_MS / 2);
          dog.unref();
          try {
            for await (const m of iter) {
              if (stopped) break;
              attempt = 0;
              lastSeen = m.seq;
              quietSince = Date.now();
              const meta = this.#meta(m);
              if (!meta) continue;
              const valid = state.fold(meta, m.seq) || state.holdsEvents(m.seq);
              if (valid && meta.n === 0 && meta.cl) onClosed?.();
              if (!valid || meta.n === 0) continue;
              const events = decodeEvents(m.data, meta.f).filter((e) => e.seq > delivered);
              if (events.length === 0) continue;
              delivered = events[events.length - 1]!.seq;
              onEvents(events);
              if (meta.cl) onClosed?.();
            }
          } finally {
            clearInterval(dog);
          }
          if (stopped) return;
        } catch (err) {
          if (stopped || this.#closed) return;
          onError?.(err);
        }
        await sleep(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)));
      }
    };
    void run();
    return handle;
  }

  // ---- cluster liveness ----------------------------------------------------------------------

  setLive(scope: string, value: Json | undefined): void {
    const key = `${liveScopeKey(scope)}.${this.nodeId}`;
    if (value === undefined) {
      if (!this.#liveRecords.delete(key)) return;
      this.#live.purge(key).catch(() => {});
    } else {
      const body = JSON.stringify(value);
      if (this.#liveRecords.get(key) === body) return;
      this.#liveRecords.set(key, body);
      this.#live.put(key, body).catch(() => {});
    }
    if (this.#liveRecords.size > 0 && !this.#liveTimer) {
      this.#liveTimer = setInterval(() => {
        for (const [k, v] of this.#liveRecords) this.#live.put(k, v).catch(() => {});
      }, LIVE_RENEW_MS);
      this.#liveTimer.unref();
    } else if (this.#liveRecords.size === 0 && this.#liveTimer) {
      clearInterval(this.#liveTimer);
      this.#liveTimer = undefined;
    }
  }

  async liveElsewhere(scope: string): Promise<{ node: string; value: Json }[]> {
    const prefix = `${liveScopeKey(scope)}.`;
    const keys: string[] = [];
    for await (const k of await this.#live.keys(`${prefix}*`)) keys.push(k);
    const out: { node: string; value: Json }[] = [];
    const entries = await Promise.all(keys.filter((k) => !k.endsWith(`.${this.nodeId}`)).map((k) => this.#live.get(k)));
    for (const e of entries) {
      if (!e || e.operation !== 'PUT') continue;
      // The bucket's TTL removes stale records; this also skips one not yet removed.
      if (Date.now() - e.created.getTime() > LIVE_TTL_MS) continue;
      out.push({ node: e.key.slice(prefix.length), value: e.json<Json>() });
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Let queued appends finish: they were accepted by the caller.
    while ([...this.#writers.values()].some((w) => w.running || w.queue.length > 0)) await sleep(5);
    this.#closed = true;
    if (this.#liveTimer) clearInterval(this.#liveTimer);
    await Promise.all([...this.#liveRecords.keys()].map((k) => this.#live.purge(k).catch(() => {})));
    this.#liveRecords.clear();
    for (const w of [...this.#watches]) w.stop();
    await this.#nc.drain().catch(() => this.#nc.close());
  }

  // ---- internals: writes -------------------------------------------------------------------

  #submit(sessionId: string, entries: AppendEntry[]): Promise<AppendOutcome[]> {
    let w = this.#writers.get(sessionId);
    if (!w) {
      w = { queue: [], running: false, lastPublishAt: 0, wake: undefined };
      this.#writers.set(sessionId, w);
    }
    const writer = w;
    return new Promise((resolve, reject) => {
      writer.queue.push({ entries, resolve, reject });
      if (entries.some((e) => e.event.kind !== 'audio.frame')) writer.wake?.();
      if (!writer.running) void this.#runWriter(sessionId, writer);
    });
  }

  async #runWriter(sessionId: string, w: SessionWriter): Promise<void> {
    w.running = true;
    try {
      while (w.queue.length > 0) {
        const wait = this.#lingerFor(w);
        if (wait > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, wait);
            w.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          w.wake = undefined;
        }
        const batch: PendingAppend[] = [];
        let bytes = 0;
        let count = 0;
        while (w.queue.length > 0) {
          const next = w.queue[0]!;
          const size = next.entries.reduce((n, e) => n + eventSize(e.event), 0);
          if (batch.length > 0 && (bytes + size > MAX_MESSAGE_BYTES || count + next.entries.length > MAX_MESSAGE_EVENTS)) break;
          batch.push(next);
          w.queue.shift();
          bytes += size;
          count += next.entries.length;
        }
        try {
          const outcomes = await this.#commit(
            sessionId,
            batch.flatMap((p) => p.entries),
          );
          let at = 0;
          for (const p of batch) {
            p.resolve(outcomes.slice(at, at + p.entries.length));
            at += p.entries.length;
          }
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
        w.lastPublishAt = performance.now();
      }
    } finally {
      w.running = false;
      // The writer stays (its lastPublishAt paces the audio linger); idle ones are pruned.
      if (this.#writers.size > MAX_CACHED_SESSIONS) this.#pruneWriters();
    }
  }

  #pruneWriters(): void {
    const idleSince = performance.now() - 10_000;
    for (const [id, w] of this.#writers) if (!w.running && w.queue.length === 0 && w.lastPublishAt < idleSince) this.#writers.delete(id);
  }

  /** Milliseconds to hold a session's queue so that audio frames share a publish; 0 to go now. */
  #lingerFor(w: SessionWriter): number {
    if (this.#audioLingerMs <= 0 || w.lastPublishAt === 0) return 0;
    if (!w.queue.every((p) => p.entries.every((e) => e.event.kind === 'audio.frame'))) return 0;
    return Math.max(0, w.lastPublishAt + this.#audioLingerMs - performance.now());
  }

  /** Judges and publishes one session's batch as one message; retries until it commits or fails. */
  async #commit(sessionId: string, entries: AppendEntry[]): Promise<AppendOutcome[]> {
    let state = await this.#load(sessionId);
    if (!state) return entries.map(() => NOT_FOUND);
    for (;;) {
      const plan = await this.#plan(state, entries);
      if (plan.events.length === 0) return plan.outcomes;
      const meta: Omit<BatchMeta, 'l'> = {
        h: state.head + plan.events.length,
        f: state.head + 1,
        n: plan.events.length,
        ts: plan.events[plan.events.length - 1]!.ts,
        b: nonce(),
        ...(plan.marks.length > 0 ? { p: plan.marks } : {}),
        ...(plan.closed ? { cl: true as const } : {}),
        ...(plan.writerSeq !== undefined ? { ss: plan.writerSeq } : {}),
      };
      const result = await this.#commitMessage(state, meta, encodeEvents(plan.events));
      if (result === 'committed') return plan.outcomes;
      if (result === 'gone') {
        state = await this.#load(sessionId, true);
        if (!state) return entries.map(() => NOT_FOUND);
      }
    }
  }

  async #plan(state: SessionState, entries: AppendEntry[]): Promise<Plan> {
    const outcomes: AppendOutcome[] = [];
    const events: StoredEvent[] = [];
    const marks: ProducerMark[] = [];
    const overlay = new Map<string, ProducerState>();
    const batchOrigins = new Map<string, number>();
    let next = state.head + 1;
    let closed = state.closed;
    let writerSeq = state.lastWriterSeq;
    let acceptedWriterSeq: string | undefined;
    for (const entry of entries) {
      const ref = entry.producer;
      if (ref) {
        const current = overlay.get(ref.id) ?? state.producer(ref.id);
        const verdict = judgeProducer(current, ref);
        if (verdict.action === 'reject') {
          outcomes.push({ status: 'rejected', code: verdict.code, current: current && { ...current } });
          continue;
        }
        if (verdict.action === 'duplicate') {
          const key = `${ref.id}\u0000${ref.epoch}\u0000${ref.seq}`;
          const seq = batchOrigins.get(key) ?? state.origin(ref.id, ref.epoch, ref.seq) ?? (await this.#findOrigin(state, ref.id, ref.epoch, ref.seq));
          outcomes.push({ status: 'duplicate', seq });
          continue;
        }
      }
      if (closed) {
        outcomes.push({ status: 'rejected', code: 'STREAM_CLOSED' });
        continue;
      }
      if (entry.streamSeq !== undefined) {
        if (writerSeq !== undefined && entry.streamSeq <= writerSeq) {
          outcomes.push({ status: 'rejected', code: 'STREAM_SEQ_CONFLICT' });
          continue;
        }
        writerSeq = acceptedWriterSeq = entry.streamSeq;
      }
      if (ref) {
        overlay.set(ref.id, { id: ref.id, epoch: ref.epoch, seq: ref.seq });
        batchOrigins.set(`${ref.id}\u0000${ref.epoch}\u0000${ref.seq}`, next);
        marks.push([ref.id, ref.epoch, ref.seq, next]);
      }
      if (entry.close) closed = true;
      events.push({ ...entry.event, seq: next });
      outcomes.push({ status: 'appended', seq: next });
      next++;
    }
    return { outcomes, events, marks, closed, ...(acceptedWriterSeq !== undefined ? { writerSeq: acceptedWriterSeq } : {}) };
  }

  /** A retry older than the local window: find the original in the stream's headers. */
  async #findOrigin(state: SessionState, id: string, epoch: number, seq: number): Promise<number> {
    let found: number | undefined;
    if (state.lastStreamSeq > 0) {
      // Folded afresh: marks of void messages do not count.
      const replay = new SessionState(state.id, state.key, state.gen, state.subject);
      await this.#scan(state.subject, 1, state.lastStreamSeq, true, (m, meta) => {
        if (!replay.fold(meta, m.seq)) return true;
        for (const [pid, pe, ps, es] of meta.p ?? []) if (pid === id && pe === epoch && ps === seq) found = es;
        return found === undefined;
      });
    }
    if (found === undefined) throw new LifelineError('INTERNAL', 'retried append has no recorded origin');
    return found;
  }

  /**
   * Publishes one message judged against `state` and settles it: 'committed' once it is stored and
   * valid (folded into state), 'retry' when another writer got in first (state is caught up: judge
   * again), 'gone' when the subject no longer matches the state (the session was deleted).
   *
   * The publish carries `Nats-Expected-Last-Subject-Sequence`, which rejects most conflicts at
   * once; but nats-server 2.9 does not enforce it between two proposals in flight at the same time
   * (both can be stored). So after the ack this node reads the first message after its base: if
   * it is its own, nothing got in between; otherwise it folds the interlopers, and its own message
   * is void unless they all were. One request per commit buys correctness on every server version.
   */
  async #commitMessage(state: SessionState, body: Omit<BatchMeta, 'l'>, payload: Uint8Array): Promise<'committed' | 'retry' | 'gone'> {
    const meta: BatchMeta = { ...body, l: state.lastValidSeq };
    const h = headers();
    h.set(META_HEADER, JSON.stringify(meta));
    const deadline = Date.now() + this.#publishDeadlineMs;
    for (let attempt = 0; ; attempt++) {
      this.#assertConnected();
      try {
        const ack = await this.#js.publish(state.subject, payload, {
          msgID: meta.b,
          expect: { lastSubjectSequence: state.lastStreamSeq },
          headers: h,
          // Short: a publish to a leader that just died is retried (same Msg-Id, same expectation).
          timeout: 2000,
        });
        this.publishes++;
        if (!(await this.#settle(state, ack.seq))) return 'gone';
        return state.hasNonce(meta.b) ? 'committed' : 'retry';
      } catch (err) {
        if (isWrongLastSequence(err)) {
          // Someone wrote first — or this very message did, and its ack was lost.
          if (!(await this.#catchUp(state))) return 'gone';
          return state.hasNonce(meta.b) ? 'committed' : 'retry';
        }
        if (!isTransient(err) || Date.now() >= deadline) throw err;
        await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
      }
    }
  }

  /** Folds every message on the subject up to and including `upto`. False if they are gone (purged). */
  async #settle(state: SessionState, upto: number): Promise<boolean> {
    while (state.lastStreamSeq < upto) {
      const next = await this.#nextMessage(state.subject, state.lastStreamSeq + 1);
      if (!next || next.seq > upto) return false;
      state.fold(next.meta, next.seq);
    }
    return true;
  }

  async #leaseOp(sessionId: string, decide: (state: SessionState) => LeaseOp | undefined): Promise<LeaseOp | undefined> {
    return this.#controlOp(sessionId, (state) => {
      const op = decide(state);
      return op ? { result: op, meta: { op, ...(state.closed ? { cl: true as const } : {}) } } : { result: undefined };
    });
  }

  /**
   * A write without events (a lease operation, a close): decided against the caught-up state,
   * published with the same compare-and-set as appends, decided again after a conflict.
   */
  async #controlOp<T>(
    sessionId: string,
    decide: (state: SessionState) => { result: T; meta?: Omit<BatchMeta, 'h' | 'f' | 'n' | 'b' | 'l'> },
  ): Promise<T | undefined> {
    let state = await this.#load(sessionId);
    for (;;) {
      if (!state) return undefined;
      if (!(await this.#catchUp(state))) {
        state = await this.#load(sessionId, true);
        continue;
      }
      const decision = decide(state);
      if (!decision.meta) return decision.result;
      const result = await this.#commitMessage(state, { ...decision.meta, h: state.head, f: 0, n: 0, b: nonce() }, new Uint8Array(0));
      if (result === 'committed') return decision.result;
      if (result === 'gone') state = await this.#load(sessionId, true);
    }
  }

  // ---- internals: state --------------------------------------------------------------------

  #subject(key: string, gen: string): string {
    return `${this.#prefix}.ev.${key}.${gen}`;
  }

  #cursorKey(sessionId: string, gen: string, consumer: string): string {
    return `${sessionKey(sessionId)}.${gen}.${sessionKey(consumer)}`;
  }

  async #record(id: string): Promise<NatsSessionRecord | undefined> {
    const entry = await this.#retrying(() => this.#sessions.get(sessionKey(id)));
    if (!entry || entry.operation !== 'PUT') {
      this.#forget(id);
      return undefined;
    }
    const rec = entry.json<NatsSessionRecord>();
    const cached = this.#states.get(id);
    if (cached && cached.gen !== rec.gen) this.#forget(id);
    return rec;
  }

  #public(rec: NatsSessionRecord, state: SessionState | undefined): SessionRecord {
    const { gen: _gen, ...rest } = rec;
    const out: SessionRecord = { ...rest, idleTtlMs: rest.idleTtlMs ?? null, lastActiveAt: Math.max(rest.lastActiveAt ?? rest.createdAt, state?.lastTs ?? 0) };
    if (state?.closed) out.closed = true;
    return out;
  }

  async #touch(key: string, lastActiveAt: number): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const entry = await this.#sessions.get(key);
      if (!entry || entry.operation !== 'PUT') return;
      const rec = entry.json<NatsSessionRecord>();
      if (rec.deletedAt || (rec.lastActiveAt ?? 0) >= lastActiveAt) return;
      try {
        await this.#sessions.update(key, JSON.stringify({ ...rec, lastActiveAt }), entry.revision);
        return;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
  }

  #forget(id: string): void {
    this.#states.delete(id);
  }

  /** The session's folded state (cached; `fresh` reloads it from the stream). */
  async #load(id: string, fresh = false): Promise<SessionState | undefined> {
    if (!fresh) {
      const cached = this.#states.get(id);
      if (cached) return cached;
    }
    const pending = this.#loading.get(id);
    if (pending) return pending;
    const loading = (async () => {
      const rec = await this.#record(id);
      if (!rec || rec.deletedAt) return undefined;
      const key = sessionKey(id);
      const state = new SessionState(id, key, rec.gen, this.#subject(key, rec.gen));
      await this.#catchUp(state);
      if (this.#states.size >= MAX_CACHED_SESSIONS) {
        const oldest = this.#states.keys().next().value;
        const busy = oldest !== undefined && (this.#writers.get(oldest)?.running || (this.#writers.get(oldest)?.queue.length ?? 0) > 0);
        if (oldest !== undefined && !busy) this.#states.delete(oldest);
      }
      this.#states.set(id, state);
      return state;
    })();
    this.#loading.set(id, loading);
    try {
      return await loading;
    } finally {
      this.#loading.delete(id);
    }
  }

  /** The session's state, caught up with the stream now (for reads that must see other nodes' writes). */
  async #fresh(id: string): Promise<SessionState | undefined> {
    const state = await this.#load(id);
    if (!state) return undefined;
    if (await this.#catchUp(state)) return state;
    return this.#load(id, true);
  }

  /**
   * Folds every message after state.lastStreamSeq, up to the subject's last. Returns false when
   * the subject no longer matches the state (purged: the session was deleted or re-created).
   */
  async #catchUp(state: SessionState): Promise<boolean> {
    const last = await this.#lastMessage(state.subject);
    if (!last) return state.lastStreamSeq === 0;
    if (last.seq < state.lastStreamSeq) return false;
    if (last.seq === state.lastStreamSeq) return true;
    // Usually one or two messages behind: read them one by one; a long way behind: a consumer.
    let from = state.lastStreamSeq + 1;
    for (let i = 0; i < 4; i++) {
      const m = await this.#nextMessage(state.subject, from);
      if (!m) return false;
      state.fold(m.meta, m.seq);
      if (m.seq >= last.seq) return true;
      from = m.seq + 1;
    }
    await this.#scan(state.subject, from, last.seq, true, (m, meta) => {
      state.fold(meta, m.seq);
      return true;
    });
    return state.lastStreamSeq >= last.seq;
  }

  async #msgGet(req: Record<string, unknown>): Promise<LastMessage | undefined> {
    this.#assertConnected();
    const deadline = Date.now() + this.#publishDeadlineMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await this.#nc.request(`$JS.API.STREAM.MSG.GET.${this.#stream}`, JSON.stringify(req), { timeout: API_TIMEOUT_MS });
        const body = r.json<{ message?: { seq: number; hdrs?: string }; error?: { code: number; err_code: number; description: string } }>();
        if (body.error) {
          if (body.error.err_code === 10037) return undefined;
          if (body.error.code === 503 && Date.now() < deadline) {
            await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
            continue;
          }
          throw new LifelineError('INTERNAL', `JetStream: ${body.error.description}`);
        }
        const raw = parseHeaderBlock(body.message?.hdrs, META_HEADER);
        if (!body.message || !raw) return undefined;
        return { seq: body.message.seq, meta: JSON.parse(raw) as BatchMeta };
      } catch (err) {
        if (err instanceof LifelineError || Date.now() >= deadline) throw err;
        await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
      }
    }
  }

  #lastMessage(subject: string): Promise<LastMessage | undefined> {
    return this.#msgGet({ last_by_subj: subject });
  }

  #nextMessage(subject: string, from: number): Promise<LastMessage | undefined> {
    return this.#msgGet({ seq: from, next_by_subj: subject });
  }

  #meta(m: JsMsg): BatchMeta | undefined {
    const raw = m.headers?.get(META_HEADER);
    return raw ? (JSON.parse(raw) as BatchMeta) : undefined;
  }

  /**
   * Delivers the subject's messages with stream seq in [from, until] in order through an ordered
   * consumer, until `onMessage` returns false or `until` is reached. Only stored messages are ever
   * delivered; a scan that stalls (the subject was purged under it) ends early.
   */
  async #scan(subject: string, from: number, until: number, headersOnly: boolean, onMessage: (m: JsMsg, meta: BatchMeta) => boolean): Promise<void> {
    if (from > until) return;
    this.#assertConnected();
    const consumer = await this.#retrying(() =>
      this.#js.consumers.get(this.#stream, {
        filter_subjects: subject,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: from,
        headers_only: headersOnly,
        inactive_threshold: 10_000_000_000,
      }),
    );
    const iter = await consumer.consume({ max_messages: headersOnly ? 1024 : 128 });
    let stall = setTimeout(() => iter.stop(), SCAN_STALL_MS);
    try {
      for await (const m of iter) {
        clearTimeout(stall);
        stall = setTimeout(() => iter.stop(), SCAN_STALL_MS);
        const meta = this.#meta(m);
        if (m.seq > until) break;
        if (meta && !onMessage(m, meta)) break;
        if (m.seq >= until) break;
      }
    } finally {
      clearTimeout(stall);
      iter.stop();
    }
  }

  /** Runs `op` again through timeouts and a NATS failover (leader elections), up to the deadline. */
  async #retrying<T>(op: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#publishDeadlineMs;
    for (let attempt = 0; ; attempt++) {
      this.#assertConnected();
      try {
        return await op();
      } catch (err) {
        if (!isTransient(err) || Date.now() >= deadline) throw err;
        await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
      }
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new LifelineError('SHUTTING_DOWN', 'store is closed');
  }

  #assertConnected(): void {
    if (this.#nc.isClosed()) throw new LifelineError('SHUTTING_DOWN', 'store is closed');
  }
}

/** Parses `nats://host:port[,host:port…][?prefix=…&replicas=…&audioLingerMs=…]`. */
export function parseNatsSpec(spec: string): NatsStoreOptions {
  const body = spec.slice('nats://'.length);
  const [hostPart = '', query = ''] = body.split('?', 2);
  const servers = hostPart
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (s.includes('://') ? s : `nats://${s}`));
  if (servers.length === 0) throw new LifelineError('BAD_REQUEST', 'nats store needs at least one server: nats://host:port[,host:port…]');
  const opts: NatsStoreOptions = { servers };
  const params = new URLSearchParams(query);
  for (const [k, v] of params) {
    const n = Number(v);
    if (k === 'prefix') opts.prefix = v;
    else if (k === 'replicas' && Number.isInteger(n) && n >= 1 && n <= 5) opts.replicas = n;
    else if (k === 'audioLingerMs' && Number.isFinite(n) && n >= 0) opts.audioLingerMs = n;
    else throw new LifelineError('BAD_REQUEST', `bad nats store option ${k}=${v}`);
  }
  return opts;
}

