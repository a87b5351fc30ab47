/**
 * Offsets are per-session positions in a timeline. On the wire they are opaque strings that sort
 * lexicographically in timeline order (the Durable Streams rules); inside the relay they are the
 * event's sequence number (1, 2, 3, …). `-1` names the position before the first event.
 */
export const START_OFFSET = '-1';
export const NOW_OFFSET = 'now';

const WIDTH = 16;
const OFFSET_RE = /^\d{16}$/;

/** Sequence number 0 is the position before the first event. */
export function formatOffset(seq: number): string {
  if (seq === 0) return START_OFFSET;
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`invalid sequence ${seq}`);
  return String(seq).padStart(WIDTH, '0');
}

/** Returns the sequence number of an offset, or undefined if the string is not an offset. */
export function parseOffset(offset: string): number | undefined {
  if (offset === START_OFFSET) return 0;
  if (!OFFSET_RE.test(offset)) return undefined;
  const n = Number(offset);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function isOffset(offset: string): boolean {
  return parseOffset(offset) !== undefined;
}

/** Orders two offsets; both must be valid. */
export function compareOffsets(a: string, b: string): number {
  const x = parseOffset(a);
  const y = parseOffset(b);
  if (x === undefined || y === undefined) throw new RangeError('not an offset');
  return x - y;
}
