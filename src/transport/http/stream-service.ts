import { LifelineError, isLifelineError } from '../../protocol/index.js';
import type { Json } from '../../protocol/index.js';
import type { SessionRecord } from '../../store/index.js';
import type { Timeline } from '../../timeline/index.js';
import { mediaType } from './headers.js';
import { modeOf, truncateEvent } from './stream-format.js';

/** How a PUT asks for a stream (everything but the initial body). */
export interface StreamConfig {
  /** As given (or inherited by a fork); absent on PUT means application/octet-stream. */
  contentType: string;
  idleTtlSeconds: number | undefined;
  expiresAt: number | undefined;
  fork?: { source: string; offset: number | undefined; subOffset: number } | undefined;
}

/** The creation parameters of a fork, kept in the record's metadata (streams made over HTTP have no other metadata). */
const FORK_OFFSET_KEY = 'ds:forkOffset';
const FORK_SUB_OFFSET_KEY = 'ds:forkSubOffset';

/** A stream the request may use: alive (not expired, not a tombstone). */
export interface LiveStream {
  record: SessionRecord;
  head: number;
}

/**
 * Stream lifecycle over the timeline: lookups that honour expiry and tombstones, creation,
 * forks with their soft-delete rules, deletion with cascade. No HTTP here.
 */
export class StreamService {
  readonly timeline: Timeline;
  readonly #now: () => number;

  constructor(timeline: Timeline, now: () => number = Date.now) {
    this.timeline = timeline;
    this.#now = now;
  }

  /**
   * The stream's record, or undefined when there is none (an expired stream is removed on the
   * spot, so TTLs hold to the millisecond without waiting for the sweeper). Tombstones are
   * returned as they are; callers decide (410 for most, 409 for re-creation).
   */
  async find(id: string): Promise<SessionRecord | undefined> {
    const record = await this.timeline.storedSession(id);
    if (!record) return undefined;
    if (!record.deletedAt && this.#expired(record)) {
      await this.remove(id).catch(() => undefined);
      return (await this.timeline.storedSession(id))?.deletedAt ? this.timeline.storedSession(id) : undefined;
    }
    // A tombstone whose last fork went away without a DELETE (it expired) is collected here.
    if (record.deletedAt && (await this.timeline.forkCount(id)) === 0) {
      await this.remove(id);
      return undefined;
    }
    return record;
  }

  /** The live stream or SESSION_NOT_FOUND (404) / SESSION_GONE (410). */
  async get(id: string): Promise<LiveStream> {
    const record = await this.find(id);
    if (!record) throw new LifelineError('SESSION_NOT_FOUND', `no stream ${id}`);
    if (record.deletedAt) throw new LifelineError('SESSION_GONE', `stream ${id} was deleted; forks still name it`);
    return { record, head: await this.timeline.head(id) };
  }

  /**
   * The record an append needs (content type, expiry), from the timeline's cache when it can:
   * appends are the hot path. Closure needs no check here, the store refuses appends to a closed
   * timeline in the append transaction; idle TTLs do need the last activity, read fresh.
   */
  async forAppend(id: string): Promise<SessionRecord> {
    let record: SessionRecord;
    try {
      record = await this.timeline.session(id);
    } catch (err) {
      if (isLifelineError(err) && err.code === 'SESSION_EXPIRED') {
        await this.remove(id).catch(() => undefined);
        throw new LifelineError('SESSION_NOT_FOUND', `no stream ${id}`);
      }
      throw err;
    }
    if (record.idleTtlMs != null) return (await this.get(id)).record;
    return record;
  }

  #expired(r: SessionRecord): boolean {
    const now = this.#now();
    if (r.expiresAt !== null && r.expiresAt <= now) return true;
    return r.idleTtlMs != null && (r.lastActiveAt ?? r.createdAt) + r.idleTtlMs <= now;
  }

  /** Whether an existing stream was made with this configuration (an idempotent PUT). */
  sameConfig(record: SessionRecord, config: StreamConfig): boolean {
    if (mediaType(record.contentType ?? undefined) !== mediaType(config.contentType)) return false;
    if ((record.idleTtlMs ?? null) !== (config.idleTtlSeconds !== undefined ? config.idleTtlSeconds * 1000 : null)) return false;
    if (record.expiresAt !== (config.expiresAt ?? null)) return false;
    const fork = config.fork;
    if ((record.forkedFrom ?? undefined) !== fork?.source) return false;
    if (fork) {
      const meta = record.metadata;
      if (fork.offset !== undefined && meta[FORK_OFFSET_KEY] !== fork.offset) return false;
      if ((meta[FORK_SUB_OFFSET_KEY] ?? 0) !== fork.subOffset) return false;
    }
    return true;
  }

  async create(id: string, config: StreamConfig): Promise<SessionRecord> {
    return this.timeline.createSession({
      id,
      contentType: config.contentType,
      ...(config.idleTtlSeconds !== undefined ? { idleTtlSeconds: config.idleTtlSeconds } : {}),
      ...(config.expiresAt !== undefined ? { expiresAt: config.expiresAt } : {}),
    });
  }

  /**
   * A fork of `source` (already checked live and readable): its history up to the fork offset
   * (default: the source's head), plus the first `subOffset` bytes or messages of the next append.
   * Without a TTL or expiry of its own it inherits the source's.
   */
  async fork(id: string, source: LiveStream, config: StreamConfig & { fork: NonNullable<StreamConfig['fork']> }): Promise<SessionRecord> {
    const { offset = source.head, subOffset } = config.fork;
    if (offset > source.head) throw new LifelineError('BAD_REQUEST', 'Stream-Fork-Offset is beyond the source stream');
    let tail;
    if (subOffset > 0) {
      const [next] = await this.timeline.read(source.record.id, offset, 1);
      if (!next) throw new LifelineError('BAD_REQUEST', 'Stream-Fork-Sub-Offset names a position past the end of the source');
      tail = { ...truncateEvent(modeOf(source.record.contentType), next, subOffset), from: next.from, ts: next.ts };
    }
    const ownExpiry = config.idleTtlSeconds !== undefined || config.expiresAt !== undefined;
    const metadata: Record<string, Json> = { [FORK_OFFSET_KEY]: offset, ...(subOffset > 0 ? { [FORK_SUB_OFFSET_KEY]: subOffset } : {}) };
    return this.timeline.forkSession(
      {
        id,
        contentType: config.contentType,
        metadata,
        ...(ownExpiry
          ? {
              ...(config.idleTtlSeconds !== undefined ? { idleTtlSeconds: config.idleTtlSeconds } : {}),
              ...(config.expiresAt !== undefined ? { expiresAt: config.expiresAt } : {}),
            }
          : {
              ...(source.record.idleTtlMs != null ? { idleTtlSeconds: source.record.idleTtlMs / 1000 } : {}),
              ...(source.record.expiresAt !== null ? { expiresAt: source.record.expiresAt } : {}),
            }),
      },
      source.record.id,
      offset,
      tail,
    );
  }

  /**
   * Deletes a stream. One that forks still name becomes a tombstone (410 from then on, its name
   * not reusable); deleting the last fork of a tombstone deletes the tombstone too, up the chain.
   */
  async remove(id: string): Promise<void> {
    if ((await this.timeline.forkCount(id)) > 0) {
      await this.timeline.tombstoneSession(id);
      return;
    }
    let record = await this.timeline.storedSession(id);
    await this.timeline.deleteSession(id);
    while (record?.forkedFrom) {
      const parent = await this.timeline.storedSession(record.forkedFrom);
      if (!parent?.deletedAt || (await this.timeline.forkCount(parent.id)) > 0) return;
      await this.timeline.deleteSession(parent.id);
      record = parent;
    }
  }
}

/** SESSION_EXISTS from a create that lost a race: the caller re-reads and compares. */
export function isExists(err: unknown): boolean {
  return isLifelineError(err) && err.code === 'SESSION_EXISTS';
}
