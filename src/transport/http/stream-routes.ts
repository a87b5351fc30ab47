import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { IdSchema, LifelineError } from '../../protocol/index.js';
import type { ProducerState, TimelineEvent } from '../../protocol/index.js';
import type { AppendInput, AppendResult, Timeline } from '../../timeline/index.js';
import { nextCursor } from './cursor.js';
import { ALLOWED_HEADERS, EXPOSED_HEADERS, H, header, httpOffset, isTrue, mediaType, parseCount, parseHttpOffset, parseProducer, parseTimestamp } from './headers.js';
import { longPoll, serveSse } from './live-read.js';
import type { LiveReadOptions, StreamObserver } from './live-read.js';
import { StreamAccess } from './stream-access.js';
import type { StreamAccessMode, StreamAuth } from './stream-access.js';
import { bodyToEvents, eventSize, modeOf, readBody, readContentType } from './stream-format.js';
import type { StreamMode } from './stream-format.js';
import { StreamService, isExists } from './stream-service.js';
import type { LiveStream, StreamConfig } from './stream-service.js';

export const STREAM_PREFIX = '/v1/stream/';

export interface HttpStreamOptions {
  timeline: Timeline;
  auth: StreamAuth;
  /** Who may use streams created over HTTP (see StreamAccessMode). */
  access: StreamAccessMode;
  /** Largest POST/PUT body (bytes); larger ones get 413. */
  maxBodyBytes: number;
  /** How long a long-poll waits for data before answering 204 (ms). */
  longPollMs: number;
  /** Interval of SSE keep-alive comments (ms). */
  sseKeepAliveMs: number;
  /** Most bytes of events one catch-up response carries (it is then not up to date). */
  maxReadBytes?: number;
  /** Told of every answer, appended body and live reader (metrics). */
  observer?: StreamObserver | undefined;
}

const MAX_READ_EVENTS = 1024;

/**
 * The Durable Streams HTTP protocol at /v1/stream/{id}: PUT create (and fork), POST append (and
 * close), GET catch-up / long-poll / SSE, HEAD, DELETE, OPTIONS. A stream is a session timeline:
 * same offsets, same producers, same live readers as WebSocket and WebRTC.
 */
export async function registerStreamRoutes(app: FastifyInstance, opts: HttpStreamOptions): Promise<void> {
  const streams = new StreamService(opts.timeline);
  const live: LiveReadOptions = { timeline: opts.timeline, longPollMs: opts.longPollMs, keepAliveMs: opts.sseKeepAliveMs, observer: opts.observer };
  const maxReadBytes = opts.maxReadBytes ?? 1024 * 1024;

  await app.register(async (scope) => {
    // Bodies are bytes whatever their content type (or none): the stream decides what they mean.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: opts.maxBodyBytes }, (_req, body, done) => done(null, body));
    scope.addHook('onRequest', (req, reply, done) => {
      reply.header('X-Content-Type-Options', 'nosniff');
      reply.header('Cross-Origin-Resource-Policy', 'cross-origin');
      // CORS: browsers send Origin on cross-origin requests; others need none of this.
      const origin = req.headers.origin;
      reply.header('Access-Control-Allow-Origin', origin ?? '*');
      if (origin) {
        reply.header('Access-Control-Expose-Headers', EXPOSED_HEADERS);
        reply.header('Vary', 'Origin');
      }
      done();
    });
    const observer = opts.observer;
    if (observer?.answered) {
      const answered = observer.answered.bind(observer);
      scope.addHook('onResponse', (req, reply, done) => {
        answered(req.method, reply.statusCode);
        done();
      });
    }

    scope.options(`${STREAM_PREFIX}*`, async (req, reply) => {
      reply.header('Access-Control-Allow-Methods', 'GET, HEAD, POST, PUT, DELETE, OPTIONS');
      reply.header('Access-Control-Allow-Headers', req.headers['access-control-request-headers'] ?? ALLOWED_HEADERS);
      reply.header('Access-Control-Max-Age', '86400');
      return reply.status(204).send();
    });

    scope.route({ method: ['GET', 'HEAD'], url: `${STREAM_PREFIX}*`, exposeHeadRoute: false, handler: (req, reply) => read(req, reply) });
    scope.put(`${STREAM_PREFIX}*`, (req, reply) => create(req, reply));
    scope.post(`${STREAM_PREFIX}*`, (req, reply) => append(req, reply));
    scope.delete(`${STREAM_PREFIX}*`, async (req, reply) => {
      const id = streamId(req);
      const access = await StreamAccess.check(opts.auth, opts.access, req, id);
      const s = await streams.get(id);
      access.allowManage(s.record);
      await streams.remove(id);
      return reply.status(204).send();
    });
  });

  async function create(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const id = streamId(req);
    const access = await StreamAccess.check(opts.auth, opts.access, req, id);
    const h = req.headers;
    const ttl = header(h, H.ttl);
    const expires = header(h, H.expiresAt);
    if (ttl !== undefined && expires !== undefined) throw new LifelineError('BAD_REQUEST', 'give Stream-TTL or Stream-Expires-At, not both');
    const forkFrom = header(h, H.forkedFrom);
    const forkOffset = header(h, H.forkOffset);
    const subOffset = header(h, H.forkSubOffset);
    if (forkFrom === undefined && (forkOffset !== undefined || subOffset !== undefined)) {
      throw new LifelineError('BAD_REQUEST', 'Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From');
    }
    const given = header(h, 'content-type');
    if (given !== undefined && given.trim() !== '' && !mediaType(given)) throw new LifelineError('BAD_REQUEST', 'Content-Type is malformed');
    const closeNow = isTrue(header(h, H.closed));
    const config: StreamConfig = {
      contentType: given?.trim() || 'application/octet-stream',
      idleTtlSeconds: ttl !== undefined ? parseCount(ttl, H.ttl) : undefined,
      expiresAt: expires !== undefined ? parseTimestamp(expires, H.expiresAt) : undefined,
      fork:
        forkFrom !== undefined
          ? {
              source: sourceId(forkFrom),
              offset: forkOffset !== undefined ? parseHttpOffset(forkOffset, H.forkOffset) : undefined,
              subOffset: subOffset !== undefined ? parseCount(subOffset, H.forkSubOffset) : 0,
            }
          : undefined,
    };
    let source: LiveStream | undefined;
    if (config.fork) {
      // The source must be readable by this request too (a session token names one session only).
      const sourceAccess = await StreamAccess.check(opts.auth, opts.access, req, config.fork.source);
      const found = await streams.find(config.fork.source);
      if (!found) throw new LifelineError('SESSION_NOT_FOUND', `no stream ${config.fork.source} to fork`);
      if (found.deletedAt) throw new LifelineError('CONTENT_TYPE_MISMATCH', `stream ${config.fork.source} was deleted; it cannot be forked`);
      sourceAccess.allowManage(found);
      source = { record: found, head: await opts.timeline.head(found.id) };
      if (given === undefined || given.trim() === '') config.contentType = readContentType(found.contentType);
      else if (mediaType(given) !== mediaType(readContentType(found.contentType))) {
        throw new LifelineError('CONTENT_TYPE_MISMATCH', 'a fork has the content type of its source');
      }
    }
    const body = bodyOf(req);
    const existing = await streams.find(id);
    access.allow(existing);
    if (existing) return answerExisting(reply, existing, config);
    let created;
    try {
      created = source && config.fork ? await streams.fork(id, source, { ...config, fork: config.fork }) : await streams.create(id, config);
    } catch (err) {
      if (!isExists(err)) throw err;
      const raced = await streams.find(id);
      if (!raced) throw err;
      return answerExisting(reply, raced, config);
    }
    const mode = modeOf(created.contentType);
    let head = await opts.timeline.head(id);
    const events = body.length > 0 ? bodyToEvents(mode, body, true) : [];
    if (events.length > 0) {
      const inputs: AppendInput[] = events.map((e, i) => ({ ...e, from: access.origin(), ...(closeNow && i === events.length - 1 ? { close: true } : {}) }));
      const results = await opts.timeline.append(id, inputs);
      head = lastOffset(results, head);
    } else if (closeNow) {
      const closed = await opts.timeline.closeSession(id);
      if (!closed.ok) throw closed.error;
    }
    const location = `${req.protocol}://${req.host}${STREAM_PREFIX}${encodeURIComponent(id)}`;
    reply.header('Location', location);
    reply.header('Content-Type', readContentType(created.contentType));
    reply.header(H.nextOffset, httpOffset(head));
    if (closeNow) reply.header(H.closed, 'true');
    return reply.status(201).send();
  }

  async function answerExisting(reply: FastifyReply, existing: NonNullable<Awaited<ReturnType<StreamService['find']>>>, config: StreamConfig): Promise<FastifyReply> {
    if (existing.deletedAt) throw new LifelineError('CONTENT_TYPE_MISMATCH', 'this stream was deleted while forks still name it; its name cannot be reused yet');
    if (!streams.sameConfig(existing, config)) throw new LifelineError('CONTENT_TYPE_MISMATCH', 'a stream with this name exists with another configuration');
    reply.header('Content-Type', readContentType(existing.contentType));
    reply.header(H.nextOffset, httpOffset(await opts.timeline.head(existing.id)));
    if (existing.closed) reply.header(H.closed, 'true');
    return reply.status(200).send();
  }

  async function append(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const id = streamId(req);
    const access = await StreamAccess.check(opts.auth, opts.access, req, id);
    const h = req.headers;
    const requested = parseProducer(h);
    const streamSeq = header(h, H.seq);
    const close = isTrue(header(h, H.closed));
    const body = bodyOf(req);
    const s = { record: await streams.forAppend(id) };
    access.allow(s.record);
    const producer = requested && access.producerKey(requested);
    const mode = modeOf(s.record.contentType);

    if (body.length === 0) {
      if (!close) throw new LifelineError('BAD_REQUEST', 'an append needs a body (or Stream-Closed: true to close)');
      const result = await opts.timeline.closeSession(id, producer);
      if (!result.ok) return refuse(reply, id, result.error, result.current, requested?.seq);
      reply.header(H.closed, 'true');
      reply.header(H.nextOffset, httpOffset(result.head));
      if (requested) await producerHeaders(reply, id, producer!, requested.epoch, result.duplicate ? undefined : requested.seq);
      return reply.status(204).send();
    }

    const type = mediaType(header(h, 'content-type'));
    if (!type) throw new LifelineError('BAD_REQUEST', 'an append needs a Content-Type');
    if (type !== mediaType(readContentType(s.record.contentType))) throw new LifelineError('CONTENT_TYPE_MISMATCH', 'Content-Type differs from the stream');
    const events = bodyToEvents(mode, body);
    if (events.length > 1 && (producer || streamSeq !== undefined)) {
      throw new LifelineError('BAD_REQUEST', 'with Producer-* or Stream-Seq headers a POST appends exactly one event');
    }
    if (mode === 'events' && access.claims?.role === 'user' && events.some((e) => e.kind === 'presence')) {
      throw new LifelineError('FORBIDDEN', 'users do not publish presence; the relay derives it');
    }
    const origin = access.origin();
    const last = events.length - 1;
    const inputs: AppendInput[] = events.map((e, i) => ({
      ...e,
      from: origin,
      ...(i === 0 && producer ? { producer } : {}),
      ...(i === 0 && streamSeq !== undefined ? { streamSeq } : {}),
      ...(i === last && close ? { close: true } : {}),
    }));
    const results = await opts.timeline.append(id, inputs);
    const failed = results.find((r): r is Extract<AppendResult, { ok: false }> => !r.ok);
    if (failed) return refuse(reply, id, failed.error, failed.current, requested?.seq);
    opts.observer?.bodyBytes?.(body.length);
    const first = results[0] as Extract<AppendResult, { ok: true }>;
    reply.header(H.nextOffset, httpOffset(lastOffset(results, 0)));
    if (close) reply.header(H.closed, 'true');
    if (requested) {
      await producerHeaders(reply, id, producer!, requested.epoch, first.duplicate ? undefined : requested.seq);
      return reply.status(first.duplicate ? 204 : 200).send();
    }
    return reply.status(204).send();
  }

  /** Producer-Epoch and Producer-Seq: the request's seq, or for a retry the highest one accepted. */
  async function producerHeaders(reply: FastifyReply, id: string, key: { id: string }, epoch: number, seq: number | undefined): Promise<void> {
    const state = seq === undefined ? await opts.timeline.producer(id, key.id) : undefined;
    reply.header(H.producerEpoch, String(state?.epoch ?? epoch));
    reply.header(H.producerSeq, String(seq ?? state?.seq ?? 0));
  }

  /** A refused append, with the headers that tell a producer (or writer) where it stands. */
  async function refuse(reply: FastifyReply, id: string, err: LifelineError, current: ProducerState | undefined, seq: number | undefined): Promise<never> {
    if (err.code === 'STALE_EPOCH' && current) reply.header(H.producerEpoch, String(current.epoch));
    if (err.code === 'SEQUENCE_GAP') {
      reply.header(H.producerExpectedSeq, String(current ? current.seq + 1 : 0));
      if (seq !== undefined) reply.header(H.producerReceivedSeq, String(seq));
    }
    if (err.code === 'STREAM_CLOSED') {
      reply.header(H.closed, 'true');
      reply.header(H.nextOffset, httpOffset(await opts.timeline.head(id)));
    }
    throw err;
  }

  async function read(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const id = streamId(req);
    const access = await StreamAccess.check(opts.auth, opts.access, req, id);
    const q = query(req);
    const liveMode = q.live;
    if (liveMode !== undefined && liveMode !== 'long-poll' && liveMode !== 'sse') throw new LifelineError('BAD_REQUEST', 'live is long-poll or sse');
    if (liveMode !== undefined && q.offset === undefined) throw new LifelineError('BAD_REQUEST', `live=${liveMode} needs an offset`);
    const requested = q.offset === undefined || q.offset === 'now' ? undefined : parseHttpOffset(q.offset);
    const s = await streams.get(id);
    access.allow(s.record);
    const record = s.record;
    const mode = modeOf(record.contentType);
    reply.header('Content-Type', readContentType(record.contentType));

    if (req.method === 'HEAD') {
      reply.header(H.nextOffset, httpOffset(s.head));
      reply.header('Cache-Control', 'no-store');
      if (record.idleTtlMs != null) reply.header(H.ttl, String(Math.round(record.idleTtlMs / 1000)));
      if (record.expiresAt !== null) reply.header(H.expiresAt, new Date(record.expiresAt).toISOString());
      if (record.closed) reply.header(H.closed, 'true');
      return reply.status(200).send();
    }
    if (record.idleTtlMs != null) await opts.timeline.touch(id);
    const after = q.offset === 'now' ? s.head : (requested ?? 0);
    if (after > s.head) throw new LifelineError('OFFSET_OUT_OF_RANGE', `offset ${httpOffset(after)} is beyond the tail ${httpOffset(s.head)}`);

    if (liveMode === 'sse') return serveSse(req, reply, live, { id, record, mode, after, cursor: q.cursor });
    if (liveMode === 'long-poll' && after >= s.head) return longPoll(req, reply, live, { id, record, mode, after, cursor: q.cursor });

    const events = await readSome(id, after, s.head);
    const next = after + events.length;
    const upToDate = next >= s.head;
    const closedAtEnd = upToDate && record.closed === true;
    const etag = `"${httpOffset(after)}:${httpOffset(next)}${closedAtEnd ? ':c' : ''}"`;
    reply.header(H.nextOffset, httpOffset(next));
    if (upToDate) reply.header(H.upToDate, 'true');
    if (closedAtEnd) reply.header(H.closed, 'true');
    if (liveMode === 'long-poll') reply.header(H.cursor, nextCursor(q.cursor));
    reply.header('ETag', etag);
    // Positions never change once written: a chunk that is not the tail may be cached.
    reply.header('Cache-Control', upToDate ? 'no-store' : access.claims ? 'private, max-age=60' : 'public, max-age=60, stale-while-revalidate=300');
    if (req.headers['if-none-match'] === etag) return reply.status(304).send();
    return reply.status(200).send(readBody(mode, events));
  }

  /** Events after `after` up to a response's worth (by count and size). */
  async function readSome(id: string, after: number, head: number): Promise<TimelineEvent[]> {
    const out: TimelineEvent[] = [];
    let bytes = 0;
    let cursor = after;
    while (cursor < head && out.length < MAX_READ_EVENTS && bytes < maxReadBytes) {
      const batch = await opts.timeline.read(id, cursor, Math.min(256, MAX_READ_EVENTS - out.length));
      if (batch.length === 0) break;
      for (const e of batch) {
        if (out.length > 0 && bytes + eventSize(e) > maxReadBytes) return out;
        out.push(e);
        bytes += eventSize(e);
      }
      cursor += batch.length;
    }
    return out;
  }
}

function streamId(req: FastifyRequest): string {
  const raw = (req.params as Record<string, string>)['*'] ?? '';
  const parsed = IdSchema.safeParse(raw);
  if (!parsed.success) throw new LifelineError('BAD_REQUEST', 'stream names use [A-Za-z0-9._:@-], 1–128 characters');
  return parsed.data;
}

/** The id named by Stream-Forked-From: a path /v1/stream/{id} (or a full URL to one), or a bare id. */
function sourceId(value: string): string {
  let path = value.trim();
  if (/^https?:\/\//i.test(path)) path = new URL(path).pathname;
  if (path.startsWith(STREAM_PREFIX)) path = decodeURIComponent(path.slice(STREAM_PREFIX.length));
  const parsed = IdSchema.safeParse(path);
  if (!parsed.success) throw new LifelineError('BAD_REQUEST', 'Stream-Forked-From does not name a stream');
  return parsed.data;
}

function bodyOf(req: FastifyRequest): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

interface ReadQuery {
  offset: string | undefined;
  live: string | undefined;
  cursor: string | undefined;
}

function query(req: FastifyRequest): ReadQuery {
  const q = (req.query ?? {}) as Record<string, string | string[] | undefined>;
  const one = (name: string): string | undefined => {
    const v = q[name];
    if (Array.isArray(v)) throw new LifelineError('BAD_REQUEST', `${name} given more than once`);
    return v;
  };
  return { offset: one('offset'), live: one('live'), cursor: one('cursor') };
}

function lastOffset(results: readonly AppendResult[], fallback: number): number {
  let seq = fallback;
  for (const r of results) if (r.ok) seq = Math.max(seq, Number(r.offset));
  return seq;
}

export type { StreamMode };
