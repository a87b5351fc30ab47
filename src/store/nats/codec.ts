import type { EventKind, Json, Origin } from '../../protocol/index.js';
import type { StoredEvent } from '../store.js';

/**
 * How a session's timeline lies in JetStream. One subject per session incarnation,
 * `<prefix>.ev.<session key>.<gen>`; each message on it is one committed batch of that session
 * (zero or more events, plus an optional lease operation). The header `Ll-Meta` carries what the
 * store folds to know a session's state without reading payloads: the head after the message,
 * the first event's seq and the count, the last event's time, the producer coordinates of every
 * event in it, and the lease operation. The payload carries the events themselves.
 */
export const META_HEADER = 'Ll-Meta';

/** [producerId, epoch, producerSeq, eventSeq] */
export type ProducerMark = [string, number, number, number];

export type LeaseOp =
  | { t: 'claim'; role: string; holder: string; epoch: number }
  | { t: 'release'; role: string; holder: string; epoch: number };

export interface BatchMeta {
  /**
   * The stream seq of the last valid message on the subject when this one was judged (0: none).
   * A message is valid only if that is still the last valid one when it is folded in stream order;
   * otherwise it was judged against a stale state (a concurrent writer got in first) and is void:
   * every node skips it. See docs/CLUSTER.md, "Ordering".
   */
  l: number;
  /** Head (newest event seq) after this message. */
  h: number;
  /** First event seq in the message (when n > 0). */
  f: number;
  /** Number of events. */
  n: number;
  /** ts of the last event, or of a close-only write (activity). */
  ts?: number;
  p?: ProducerMark[];
  op?: LeaseOp;
  /** The timeline is closed as of this message (set on the closing message and every later one). */
  cl?: true;
  /** Last Durable Streams `Stream-Seq` accepted, when this message accepted one. */
  ss?: string;
  /** Nonce of the append that wrote it (also the Nats-Msg-Id). */
  b: string;
}

/** A session key usable as a subject token and a KV key: the id itself, or `=` + base64url. */
export function sessionKey(id: string): string {
  return /^[A-Za-z0-9_-]{1,200}$/.test(id) ? id : `=${Buffer.from(id, 'utf8').toString('base64url')}`;
}

export function sessionIdFromKey(key: string): string {
  return key.startsWith('=') ? Buffer.from(key.slice(1), 'base64url').toString('utf8') : key;
}

interface WireEvent {
  ts: number;
  from: Origin;
  kind: EventKind;
  track?: string;
  data: Json;
  /** Length of the binary payload, when there is one. */
  b?: number;
}

/** Payload: u32 BE length of a JSON array of events, the JSON, then every binary payload in order. */
export function encodeEvents(events: readonly Omit<StoredEvent, 'seq'>[]): Uint8Array {
  const wire: WireEvent[] = [];
  const bins: Uint8Array[] = [];
  for (const e of events) {
    const w: WireEvent = { ts: e.ts, from: e.from, kind: e.kind, data: e.data };
    if (e.track !== undefined) w.track = e.track;
    if (e.bin !== undefined) {
      w.b = e.bin.byteLength;
      bins.push(e.bin);
    }
    wire.push(w);
  }
  const json = Buffer.from(JSON.stringify(wire), 'utf8');
  const total = 4 + json.byteLength + bins.reduce((n, b) => n + b.byteLength, 0);
  const out = new Uint8Array(total);
  new DataView(out.buffer).setUint32(0, json.byteLength);
  out.set(json, 4);
  let at = 4 + json.byteLength;
  for (const b of bins) {
    out.set(b, at);
    at += b.byteLength;
  }
  return out;
}

export function decodeEvents(payload: Uint8Array, firstSeq: number): StoredEvent[] {
  if (payload.byteLength < 4) return [];
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const len = view.getUint32(0);
  const wire = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset + 4, len).toString('utf8')) as WireEvent[];
  let at = 4 + len;
  return wire.map((w, i) => {
    const e: StoredEvent = { seq: firstSeq + i, ts: w.ts, from: w.from, kind: w.kind, data: w.data };
    if (w.track !== undefined) e.track = w.track;
    if (w.b !== undefined) {
      // A copy: the message buffer is the client's.
      e.bin = payload.slice(at, at + w.b);
      at += w.b;
    }
    return e;
  });
}

/** Bytes an event adds to a message, roughly (to keep messages under the server's max_payload). */
export function eventSize(e: Omit<StoredEvent, 'seq'>): number {
  return 128 + (e.bin?.byteLength ?? 0) + JSON.stringify(e.data).length;
}
