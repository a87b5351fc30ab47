import { z } from 'zod';
import { EventKindSchema, JsonSchema, LifelineError, MAX_JSON_DEPTH, TrackSchema, checkEventBody, isJsonWithin } from '../../protocol/index.js';
import type { EventBody, Json, TimelineEvent } from '../../protocol/index.js';
import { mediaType } from './headers.js';

/**
 * How a stream's timeline events look over HTTP:
 * - `bytes`: any content type but JSON. One POST body is one event (`custom`, track `http`, the
 *   body as `bin`); a read is the concatenation of the events' `bin`.
 * - `json`: `application/json`. One POST is one event (`custom`, track `http`) whose `data` is the
 *   array of the POST's messages (a JSON array body is flattened one level, any other value is one
 *   message); a read is one JSON array of all messages.
 * - `events`: a session timeline (created by the session API, no content type). Every timeline
 *   event is one JSON message, `bin` encoded as base64; a POST appends event bodies.
 */
export type StreamMode = 'bytes' | 'json' | 'events';

/** The track of events written by the Durable Streams API into `bytes` and `json` streams. */
export const HTTP_TRACK = 'http';

export function modeOf(contentType: string | null | undefined): StreamMode {
  if (contentType == null) return 'events';
  return mediaType(contentType) === 'application/json' ? 'json' : 'bytes';
}

/** Content type of reads (and of HEAD/PUT answers). */
export function readContentType(contentType: string | null | undefined): string {
  return contentType ?? 'application/json';
}

/** SSE carries the data of byte streams whose content is not text as base64. */
export function sseBase64(mode: StreamMode, contentType: string | null | undefined): boolean {
  return mode === 'bytes' && !(mediaType(contentType ?? undefined) ?? '').startsWith('text/');
}

function parseJson(body: Buffer): Json {
  try {
    return JSON.parse(body.toString('utf8')) as Json;
  } catch {
    throw new LifelineError('BAD_REQUEST', 'body is not valid JSON');
  }
}

/** The messages of a JSON-mode body: an array is flattened one level, any other value is one message. */
export function jsonMessages(body: Buffer): Json[] {
  const value = parseJson(body);
  const messages = Array.isArray(value) ? value : [value];
  if (!isJsonWithin(messages)) throw new LifelineError('BAD_REQUEST', `JSON nests deeper than ${MAX_JSON_DEPTH} levels`);
  return messages;
}

const WireEventBody = z.object({
  kind: EventKindSchema,
  track: TrackSchema.optional(),
  data: JsonSchema,
  /** Binary payload (audio) as base64. */
  bin: z.base64().optional(),
});

/** What an HTTP append turns into (before the relay adds origin and producer). */
export type HttpEventBody = EventBody;

/**
 * The timeline events a POST body stands for. Empty bodies are the caller's business (close-only
 * or refused); `allowEmptyJsonArray` is for PUT, where `[]` creates an empty stream.
 */
export function bodyToEvents(mode: StreamMode, body: Buffer, allowEmptyJsonArray = false): HttpEventBody[] {
  if (mode === 'bytes') return [{ kind: 'custom', track: HTTP_TRACK, data: null, bin: new Uint8Array(body.buffer, body.byteOffset, body.byteLength) }];
  if (mode === 'json') {
    const messages = jsonMessages(body);
    if (messages.length === 0) {
      if (allowEmptyJsonArray) return [];
      throw new LifelineError('BAD_REQUEST', 'an empty JSON array appends nothing');
    }
    return [{ kind: 'custom', track: HTTP_TRACK, data: messages }];
  }
  const value = parseJson(body);
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0) throw new LifelineError('BAD_REQUEST', 'an empty JSON array appends nothing');
  return items.map((item, i) => {
    const parsed = WireEventBody.safeParse(item);
    if (!parsed.success) throw new LifelineError('BAD_REQUEST', `event ${i}: ${z.prettifyError(parsed.error)}`);
    const { bin, track, ...rest } = parsed.data;
    const event: HttpEventBody = { ...rest, ...(track !== undefined ? { track } : {}), ...(bin !== undefined ? { bin: new Uint8Array(Buffer.from(bin, 'base64')) } : {}) };
    const problem = checkEventBody(event);
    if (problem) throw new LifelineError('BAD_REQUEST', `event ${i}: ${problem}`);
    return event;
  });
}

/** A timeline event as a JSON message of a session stream: the event itself, `bin` as base64. */
export function wireEvent(e: TimelineEvent): Json {
  return {
    offset: e.offset,
    ts: e.ts,
    from: { participant: e.from.participant, device: e.from.device, role: e.from.role },
    kind: e.kind,
    ...(e.track !== undefined ? { track: e.track } : {}),
    data: e.data,
    ...(e.bin !== undefined ? { bin: Buffer.from(e.bin.buffer, e.bin.byteOffset, e.bin.byteLength).toString('base64') } : {}),
  };
}

/** True for the events the Durable Streams API writes into `json` streams (a batch of messages). */
function isMessageBatch(e: TimelineEvent): e is TimelineEvent & { data: Json[] } {
  return e.kind === 'custom' && e.track === HTTP_TRACK && Array.isArray(e.data);
}

/** The JSON messages one event contributes to a `json` or `events` read. */
export function eventMessages(mode: StreamMode, e: TimelineEvent): Json[] {
  return mode === 'json' && isMessageBatch(e) ? e.data : [wireEvent(e)];
}

/** The bytes one event contributes to a `bytes` read (events without a payload contribute none). */
export function eventBytes(e: TimelineEvent): Buffer {
  return e.bin ? Buffer.from(e.bin.buffer, e.bin.byteOffset, e.bin.byteLength) : Buffer.alloc(0);
}

/** The body of a catch-up or long-poll read. */
export function readBody(mode: StreamMode, events: readonly TimelineEvent[]): Buffer {
  if (mode === 'bytes') return Buffer.concat(events.map(eventBytes));
  const parts: string[] = [];
  for (const e of events) for (const m of eventMessages(mode, e)) parts.push(JSON.stringify(m));
  return Buffer.from(`[${parts.join(',')}]`, 'utf8');
}

/** Rough size of an event in a read, to cap responses. */
export function eventSize(e: TimelineEvent): number {
  return (e.bin?.byteLength ?? 0) + (e.data === null ? 0 : 64);
}

/**
 * The first `count` units (bytes, or JSON messages) of an event: the last event of a fork made
 * inside an append. Throws BAD_REQUEST when the event has fewer units.
 */
export function truncateEvent(mode: StreamMode, e: TimelineEvent, count: number): HttpEventBody {
  if (mode === 'bytes') {
    const bin = e.bin ?? new Uint8Array(0);
    if (count > bin.byteLength) throw new LifelineError('BAD_REQUEST', `Stream-Fork-Sub-Offset ${count} is beyond the append (${bin.byteLength} bytes)`);
    return { kind: e.kind, ...(e.track !== undefined ? { track: e.track } : {}), data: e.data, bin: bin.slice(0, count) };
  }
  if (mode === 'json' && isMessageBatch(e)) {
    if (count > e.data.length) throw new LifelineError('BAD_REQUEST', `Stream-Fork-Sub-Offset ${count} is beyond the append (${e.data.length} messages)`);
    return { kind: e.kind, track: e.track, data: e.data.slice(0, count) };
  }
  throw new LifelineError('BAD_REQUEST', 'this event cannot be split by Stream-Fork-Sub-Offset');
}

/** SSE `data:` lines for a payload: every line of it gets its own prefix, so no line can end the event early. */
export function sseData(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => `data:${line}`)
    .join('\n');
}
