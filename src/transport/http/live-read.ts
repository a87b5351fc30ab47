import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TimelineEvent } from '../../protocol/index.js';
import type { SessionRecord } from '../../store/index.js';
import type { Timeline, TimelineReader } from '../../timeline/index.js';
import { nextCursor } from './cursor.js';
import { H, httpOffset } from './headers.js';
import { eventBytes, eventMessages, readBody, sseBase64, sseData } from './stream-format.js';
import type { StreamMode } from './stream-format.js';

export interface LiveReadOptions {
  timeline: Timeline;
  longPollMs: number;
  keepAliveMs: number;
  observer?: StreamObserver | undefined;
}

/** What the Durable Streams routes report (the relay turns it into Prometheus metrics). */
export interface StreamObserver {
  /** A request answered (SSE: when its stream ends), with its status. */
  answered?(method: string, status: number): void;
  /** Bytes of POST/PUT bodies accepted for appending. */
  bodyBytes?(bytes: number): void;
  /** A live reader (long-poll or SSE) started (+1) or ended (-1). */
  liveReaders?(mode: 'long-poll' | 'sse', delta: 1 | -1): void;
}

export interface LiveRequest {
  id: string;
  record: SessionRecord;
  mode: StreamMode;
  /** Sequence number the read starts after. */
  after: number;
  cursor: string | undefined;
}

/** Most events taken from the reader per wake-up. */
const BATCH = 256;

/**
 * A long-poll at the tail: waits on the timeline's live reader (woken by the commit of the next
 * append or by a close, never by polling the store) until data, closure or the timeout.
 */
export async function longPoll(req: FastifyRequest, reply: FastifyReply, opts: LiveReadOptions, r: LiveRequest): Promise<FastifyReply> {
  reply.header('Cache-Control', 'no-store');
  reply.header(H.cursor, nextCursor(r.cursor));
  const reader = await opts.timeline.reader(r.id, r.after);
  const timer = setTimeout(() => reader.close(), opts.longPollMs);
  const gone = (): void => reader.close();
  req.raw.once('close', gone);
  let events: TimelineEvent[];
  opts.observer?.liveReaders?.('long-poll', 1);
  try {
    events = await reader.next(BATCH, { endAtClose: true });
  } finally {
    clearTimeout(timer);
    req.raw.off('close', gone);
    opts.observer?.liveReaders?.('long-poll', -1);
  }
  const next = r.after + events.length;
  const closedAtEnd = reader.atClosedEnd;
  const upToDate = reader.caughtUp;
  reader.close();
  reply.header(H.nextOffset, httpOffset(next));
  if (upToDate) reply.header(H.upToDate, 'true');
  if (closedAtEnd) reply.header(H.closed, 'true');
  if (events.length === 0) return reply.status(204).send();
  return reply.status(200).send(readBody(r.mode, events));
}

/**
 * Server-sent events from an offset: `event: data` with the payload (text lines, a JSON array, or
 * base64 for binary streams), each followed by `event: control` with `streamNextOffset`,
 * `streamCursor` and, once caught up, `upToDate: true`. A closed stream ends with a control event
 * carrying `streamClosed: true`, then the response ends. Back-pressure: the next batch is read
 * only after the socket has drained.
 */
export async function serveSse(req: FastifyRequest, reply: FastifyReply, opts: LiveReadOptions, r: LiveRequest): Promise<FastifyReply> {
  const base64 = sseBase64(r.mode, r.record.contentType);
  const reader = await opts.timeline.reader(r.id, r.after);
  const res = reply.raw;
  const headers: Record<string, string | number | string[]> = {};
  for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined && k !== 'content-type' && k !== 'content-length') headers[k] = v;
  headers['content-type'] = 'text/event-stream';
  headers['cache-control'] = 'no-cache';
  headers['x-accel-buffering'] = 'no';
  if (base64) headers[H.sseEncoding] = 'base64';
  reply.hijack();
  res.writeHead(200, headers);
  res.flushHeaders();
  opts.observer?.liveReaders?.('sse', 1);

  let open = true;
  const stop = (): void => {
    open = false;
    reader.close();
  };
  req.raw.once('close', stop);
  res.once('close', stop);
  const keepAlive = setInterval(() => {
    if (open) res.write(':\n\n');
  }, opts.keepAliveMs);
  keepAlive.unref();

  const write = async (chunk: string): Promise<void> => {
    if (!open) return;
    if (!res.write(chunk)) await new Promise<void>((resolve) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.once('drain', done);
      res.once('close', done);
    });
  };
  const control = (next: number, extra: Record<string, boolean>): string => {
    const body = extra['streamClosed'] ? { streamNextOffset: httpOffset(next), ...extra } : { streamNextOffset: httpOffset(next), streamCursor: nextCursor(r.cursor), ...extra };
    return `event: control\ndata:${JSON.stringify(body)}\n\n`;
  };

  try {
    let announced = false;
    while (open) {
      if (reader.caughtUp) {
        if (reader.atClosedEnd) {
          await write(control(reader.cursor, { streamClosed: true, upToDate: true }));
          break;
        }
        if (!announced) {
          await write(control(reader.cursor, { upToDate: true }));
          announced = true;
        }
      }
      const events = await reader.next(BATCH, { endAtClose: true });
      if (events.length === 0) continue;
      let out = '';
      let at = reader.cursor - events.length;
      for (let i = 0; i < events.length; i++) {
        const e = events[i]!;
        at++;
        out += dataFrame(r.mode, e, base64);
        const last = i === events.length - 1;
        out += control(at, last && reader.caughtUp && !reader.atClosedEnd ? { upToDate: true } : {});
      }
      announced = reader.caughtUp;
      await write(out);
    }
  } catch (err) {
    req.log.warn({ err, stream: r.id }, 'SSE stream ended with an error');
  } finally {
    clearInterval(keepAlive);
    reader.close();
    if (!res.writableEnded) res.end();
    opts.observer?.liveReaders?.('sse', -1);
    // A hijacked reply skips fastify's onResponse hook: count it here.
    opts.observer?.answered?.('GET', 200);
  }
  return reply;
}

/**
 * Encoded `event: data` frames by event. Live events are the same objects for every reader of a
 * session (the live ring), so a fan-out to many SSE readers encodes each event once. A stream's
 * mode and encoding never change, so the event alone is the key.
 */
const encoded = new WeakMap<TimelineEvent, string>();

function dataFrame(mode: StreamMode, e: TimelineEvent, base64: boolean): string {
  let frame = encoded.get(e);
  if (frame === undefined) {
    frame = `event: data\n${dataLines(mode, e, base64)}\n\n`;
    encoded.set(e, frame);
  }
  return frame;
}

function dataLines(mode: StreamMode, e: TimelineEvent, base64: boolean): string {
  if (mode === 'bytes') {
    const bytes = eventBytes(e);
    return base64 ? `data:${bytes.toString('base64')}` : sseData(bytes.toString('utf8'));
  }
  return `data:${JSON.stringify(eventMessages(mode, e))}`;
}

export type { TimelineReader };
