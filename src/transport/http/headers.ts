import { LifelineError, parseOffset } from '../../protocol/index.js';
import type { ProducerRef } from '../../protocol/index.js';

/**
 * The Durable Streams protocol's header and query names, defined once. Header names are matched
 * case-insensitively (Node lower-cases incoming ones).
 */
export const H = {
  nextOffset: 'Stream-Next-Offset',
  cursor: 'Stream-Cursor',
  upToDate: 'Stream-Up-To-Date',
  closed: 'Stream-Closed',
  seq: 'Stream-Seq',
  ttl: 'Stream-TTL',
  expiresAt: 'Stream-Expires-At',
  forkedFrom: 'Stream-Forked-From',
  forkOffset: 'Stream-Fork-Offset',
  forkSubOffset: 'Stream-Fork-Sub-Offset',
  sseEncoding: 'Stream-SSE-Data-Encoding',
  producerId: 'Producer-Id',
  producerEpoch: 'Producer-Epoch',
  producerSeq: 'Producer-Seq',
  producerExpectedSeq: 'Producer-Expected-Seq',
  producerReceivedSeq: 'Producer-Received-Seq',
} as const;

/** Response headers a browser may read cross-origin. */
export const EXPOSED_HEADERS = [
  H.nextOffset,
  H.cursor,
  H.upToDate,
  H.closed,
  H.ttl,
  H.expiresAt,
  H.sseEncoding,
  H.producerEpoch,
  H.producerSeq,
  H.producerExpectedSeq,
  H.producerReceivedSeq,
  'ETag',
  'Location',
  'Content-Type',
].join(', ');

/** Request headers a browser may send cross-origin (preflight answer). */
export const ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'If-None-Match',
  H.seq,
  H.ttl,
  H.expiresAt,
  H.closed,
  H.forkedFrom,
  H.forkOffset,
  H.forkSubOffset,
  H.producerId,
  H.producerEpoch,
  H.producerSeq,
].join(', ');

type Headers = Record<string, string | string[] | undefined>;

/** One header's value; a repeated header is a bad request. */
export function header(headers: Headers, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  if (Array.isArray(v)) throw new LifelineError('BAD_REQUEST', `${name} given more than once`);
  return v;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** A non-negative decimal integer without sign, leading zeros, fraction or exponent. */
export function parseCount(value: string, name: string): number {
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new LifelineError('BAD_REQUEST', `${name} must be a non-negative integer`);
  return n;
}

/** RFC 3339 timestamp (with Z or an offset) to ms since the epoch. */
export function parseTimestamp(value: string, name: string): number {
  const ok = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(value);
  const ms = ok ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw new LifelineError('BAD_REQUEST', `${name} must be an RFC 3339 timestamp`);
  return ms;
}

export function isTrue(value: string | undefined): boolean {
  return value !== undefined && value.trim().toLowerCase() === 'true';
}

/** `type/subtype`, lower-cased, without parameters; undefined for a missing or malformed value. */
export function mediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const base = contentType.split(';')[0]!.trim().toLowerCase();
  return /^[\w.+-]+\/[\w.+-]+$/.test(base) ? base : undefined;
}

/**
 * The producer of an append: all three headers or none. Producer ids follow the relay's id rules
 * loosely (any visible ASCII, 1–128 chars); epoch and seq are non-negative integers.
 */
export function parseProducer(headers: Headers): ProducerRef | undefined {
  const id = header(headers, H.producerId);
  const epoch = header(headers, H.producerEpoch);
  const seq = header(headers, H.producerSeq);
  if (id === undefined && epoch === undefined && seq === undefined) return undefined;
  if (id === undefined || epoch === undefined || seq === undefined) {
    throw new LifelineError('BAD_REQUEST', 'Producer-Id, Producer-Epoch and Producer-Seq go together');
  }
  if (!/^[\x21-\x7e]{1,128}$/.test(id)) throw new LifelineError('BAD_REQUEST', 'Producer-Id must be 1–128 visible ASCII characters');
  return { id, epoch: parseCount(epoch, H.producerEpoch), seq: parseCount(seq, H.producerSeq) };
}

/** Width of an offset: the same 16 digits as on every other transport. */
const WIDTH = 16;
const ZERO = '0'.repeat(WIDTH);

/**
 * Offsets over HTTP are the timeline's offsets (16 digits, the event's sequence number), except
 * that the position before the first event is written `0000000000000000` rather than `-1`: the
 * Durable Streams protocol keeps `-1` as a request sentinel and wants a real offset back.
 */
export function httpOffset(seq: number): string {
  return seq === 0 ? ZERO : String(seq).padStart(WIDTH, '0');
}

/**
 * The sequence number an offset names. Accepts `-1`, 16-digit offsets and, for clients written
 * against the reference server's `<read-seq>_<byte-offset>` form, `<16 digits>_0000000000000000`
 * (the same position). Throws BAD_REQUEST for anything else.
 */
export function parseHttpOffset(value: string, name = 'offset'): number {
  const m = /^(\d{16})_(\d{16})$/.exec(value);
  const seq = m ? (m[2] === ZERO ? parseOffset(m[1]!) : undefined) : parseOffset(value);
  if (seq === undefined) throw new LifelineError('BAD_REQUEST', `${name} is not an offset`);
  return seq;
}
