import { z } from 'zod';
import { LifelineError } from './errors.js';
import { ClientFrameSchema, ServerFrameSchema } from './frames.js';
import type { AnyFrame, ClientFrame, ServerFrame } from './frames.js';

/**
 * Frames travel as text (UTF-8 JSON) when they carry no binary payload, and as binary messages
 * when they do:
 *
 *   byte 0      BINARY_FORMAT (0x01)
 *   bytes 1..4  header length H, unsigned 32-bit big-endian
 *   bytes 5..   H bytes of UTF-8 JSON: the frame without its binary payload
 *   the rest    the payload: `bin` of an append frame, `event.bin` of an event frame
 *
 * Web-standard APIs only: this module runs unchanged in browsers.
 */
export const BINARY_FORMAT = 0x01;
const HEADER_PREFIX = 5;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function splitBinary(frame: AnyFrame): { head: unknown; bin: Uint8Array | undefined } {
  if (frame.type === 'append' && frame.bin) {
    const { bin, ...rest } = frame;
    return { head: rest, bin };
  }
  if (frame.type === 'event' && frame.event.bin) {
    const { bin, ...event } = frame.event;
    return { head: { ...frame, event }, bin };
  }
  return { head: frame, bin: undefined };
}

/** Encodes a frame: a string for JSON-only frames, bytes for frames with a binary payload. */
export function encodeFrame(frame: AnyFrame): string | Uint8Array {
  const { head, bin } = splitBinary(frame);
  const json = JSON.stringify(head);
  if (!bin) return json;
  const header = encoder.encode(json);
  const out = new Uint8Array(HEADER_PREFIX + header.length + bin.length);
  out[0] = BINARY_FORMAT;
  new DataView(out.buffer).setUint32(1, header.length, false);
  out.set(header, HEADER_PREFIX);
  out.set(bin, HEADER_PREFIX + header.length);
  return out;
}

function parseRaw(raw: string | Uint8Array): unknown {
  if (typeof raw === 'string') return JSON.parse(raw);
  if (raw.length < HEADER_PREFIX || raw[0] !== BINARY_FORMAT) {
    throw new LifelineError('BAD_FRAME', 'binary frame has no valid header');
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const headerLength = view.getUint32(1, false);
  if (HEADER_PREFIX + headerLength > raw.length) throw new LifelineError('BAD_FRAME', 'binary frame header overruns');
  const head = JSON.parse(decoder.decode(raw.subarray(HEADER_PREFIX, HEADER_PREFIX + headerLength))) as unknown;
  // Copy so the payload does not pin (or alias) the transport's receive buffer. Not `raw.slice()`:
  // on a Node Buffer (what `ws` delivers) slice() is a view, not a copy.
  const bin = new Uint8Array(raw.subarray(HEADER_PREFIX + headerLength));
  if (head && typeof head === 'object') {
    const h = head as { type?: unknown; event?: unknown };
    if (h.type === 'append') return { ...h, bin };
    if (h.type === 'event' && h.event && typeof h.event === 'object') return { ...h, event: { ...h.event, bin } };
  }
  throw new LifelineError('BAD_FRAME', 'binary payload on a frame that takes none');
}

/** Most frames one coalesced message may carry. */
export const MAX_BATCH_FRAMES = 1024;

/**
 * Parses one transport message into the raw values of its frames: one for an ordinary message,
 * several for a coalesced text message (a JSON array of frames). Throws LifelineError(BAD_FRAME).
 */
export function parseMessage(raw: string | Uint8Array): unknown[] {
  let value: unknown;
  try {
    value = parseRaw(raw);
  } catch (err) {
    if (err instanceof LifelineError) throw err;
    throw new LifelineError('BAD_FRAME', 'frame is not valid JSON');
  }
  if (!Array.isArray(value)) return [value];
  if (value.length === 0 || value.length > MAX_BATCH_FRAMES) {
    throw new LifelineError('BAD_FRAME', `a batch holds 1 to ${MAX_BATCH_FRAMES} frames`);
  }
  return value;
}

function validateWith<T>(value: unknown, schema: z.ZodType<T>, known: ReadonlySet<string>): T {
  const type = value && typeof value === 'object' ? (value as { type?: unknown }).type : undefined;
  if (typeof type !== 'string') throw new LifelineError('BAD_FRAME', 'frame has no type');
  if (!known.has(type)) throw new LifelineError('UNKNOWN_FRAME', `unknown frame type "${type.slice(0, 40)}"`);
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new LifelineError('BAD_FRAME', `${type}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function decodeWith<T>(raw: string | Uint8Array, schema: z.ZodType<T>, known: ReadonlySet<string>): T {
  const values = parseMessage(raw);
  if (values.length !== 1 || (typeof raw === 'string' && raw.trimStart().startsWith('['))) {
    throw new LifelineError('BAD_FRAME', 'expected one frame, got a batch');
  }
  return validateWith(values[0], schema, known);
}

/** The frame types a union of frame schemas knows, read from the schemas themselves. */
const typesOf = (union: { options: readonly { shape: { type: { value: string } } }[] }): ReadonlySet<string> => new Set(union.options.map((o) => o.shape.type.value));
const CLIENT_TYPES = typesOf(ClientFrameSchema);
const SERVER_TYPES = typesOf(ServerFrameSchema);

/** Decodes and validates a frame sent by a client. Throws LifelineError(BAD_FRAME | UNKNOWN_FRAME). */
export function decodeClientFrame(raw: string | Uint8Array): ClientFrame {
  return decodeWith(raw, ClientFrameSchema, CLIENT_TYPES);
}

/** Validates one parsed value (from parseMessage) as a client frame. */
export function validateClientFrame(value: unknown): ClientFrame {
  return validateWith(value, ClientFrameSchema, CLIENT_TYPES);
}

/** Validates one parsed value (from parseMessage) as a relay frame. */
export function validateServerFrame(value: unknown): ServerFrame {
  return validateWith(value, ServerFrameSchema, SERVER_TYPES);
}

/** Decodes and validates a frame sent by the relay. */
export function decodeServerFrame(raw: string | Uint8Array): ServerFrame {
  return decodeWith(raw, ServerFrameSchema, SERVER_TYPES);
}

/** Size of an encoded frame in bytes (UTF-8 length for text). */
export function encodedSize(encoded: string | Uint8Array): number {
  return typeof encoded === 'string' ? encoder.encode(encoded).length : encoded.length;
}
