/**
 * werift workaround 6 — one SCTP datagram per data-channel message (~2,000 messages/s one by one)
 * makes every audio event, which travels as a binary message, cost a datagram, a DTLS record and
 * a SACK. The JSON coalescer (protocol/coalescer.ts) batches text frames only; this container
 * batches *every* message of one event-loop turn, text and binary, into one binary message:
 *
 *   byte 0       MESSAGE_BATCH (0x02)
 *   then, per message:
 *     byte       0 = text (UTF-8), 1 = binary
 *     bytes 1..4 length L, unsigned 32-bit big-endian
 *     L bytes    the message, exactly as it would have been sent alone
 *
 * Used only on links whose client asked for it when it signaled (`?batch=1` on the POST of its
 * offer); the receiver unpacks a container into the messages it carries, in order. No Node APIs.
 */
export const MESSAGE_BATCH = 0x02;
const ENTRY_HEADER = 5;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** True when a received message is a batch container. */
export function isMessageBatch(data: string | Uint8Array): data is Uint8Array {
  return typeof data !== 'string' && data.length > 0 && data[0] === MESSAGE_BATCH;
}

/** The messages of a container, in order; throws on a container that does not parse. */
export function unpackMessages(batch: Uint8Array): (string | Uint8Array)[] {
  const out: (string | Uint8Array)[] = [];
  const view = new DataView(batch.buffer, batch.byteOffset, batch.byteLength);
  let at = 1;
  while (at < batch.length) {
    if (at + ENTRY_HEADER > batch.length) throw new Error('message batch: truncated entry header');
    const kind = batch[at]!;
    const len = view.getUint32(at + 1, false);
    const start = at + ENTRY_HEADER;
    if (start + len > batch.length) throw new Error('message batch: entry overruns the container');
    const body = batch.subarray(start, start + len);
    if (kind === 0) out.push(decoder.decode(body));
    else if (kind === 1) out.push(new Uint8Array(body));
    else throw new Error('message batch: unknown entry kind');
    at = start + len;
  }
  return out;
}

/**
 * Batches the messages sent in one turn of the event loop into containers of at most `maxBytes`
 * (a message larger than that goes alone, unwrapped). A turn with a single message sends it
 * unwrapped too: the container costs nothing when there is nothing to batch.
 */
export class MessageBatcher {
  readonly #maxBytes: number;
  readonly #write: (message: string | Uint8Array) => void;
  readonly #schedule: (fn: () => void) => void;
  #queue: { kind: 0 | 1; bytes: Uint8Array; original: string | Uint8Array }[] = [];
  #bytes = 1;
  #scheduled = false;

  constructor(maxBytes: number, write: (message: string | Uint8Array) => void, schedule: (fn: () => void) => void) {
    this.#maxBytes = maxBytes;
    this.#write = write;
    this.#schedule = schedule;
  }

  get pendingBytes(): number {
    return this.#queue.length === 0 ? 0 : this.#bytes;
  }

  send(message: string | Uint8Array): void {
    const bytes = typeof message === 'string' ? encoder.encode(message) : message;
    const size = ENTRY_HEADER + bytes.length;
    if (1 + size > this.#maxBytes) {
      this.flush();
      this.#write(message);
      return;
    }
    if (this.#bytes + size > this.#maxBytes) this.flush();
    this.#queue.push({ kind: typeof message === 'string' ? 0 : 1, bytes, original: message });
    this.#bytes += size;
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(() => this.flush());
    }
  }

  flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    const total = this.#bytes;
    this.#bytes = 1;
    if (queue.length === 1) {
      this.#write(queue[0]!.original);
      return;
    }
    const out = new Uint8Array(total);
    const view = new DataView(out.buffer);
    out[0] = MESSAGE_BATCH;
    let at = 1;
    for (const m of queue) {
      out[at] = m.kind;
      view.setUint32(at + 1, m.bytes.length, false);
      out.set(m.bytes, at + ENTRY_HEADER);
      at += ENTRY_HEADER + m.bytes.length;
    }
    this.#write(out);
  }

  discard(): void {
    this.#queue = [];
    this.#bytes = 1;
  }
}
