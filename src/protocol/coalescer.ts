/**
 * Coalesces JSON frames into batch messages: frames sent in the same turn of the event loop leave
 * as one message, a JSON array, of at most `maxBytes` (bounded delay: one turn; bounded size).
 * Frames with a binary payload flush the batch and go alone. Transports whose messages are
 * expensive one by one (SCTP data channels: one datagram per message) use it.
 */
export class FrameCoalescer {
  readonly #maxBytes: number;
  readonly #write: (message: string | Uint8Array) => void;
  readonly #schedule: (fn: () => void) => void;
  #batch: string[] = [];
  #bytes = 0;
  #scheduled = false;

  /**
   * @param schedule runs `fn` after the current turn (Node: setImmediate; browsers: a
   *   MessageChannel or setTimeout 0).
   */
  constructor(maxBytes: number, write: (message: string | Uint8Array) => void, schedule: (fn: () => void) => void) {
    this.#maxBytes = maxBytes;
    this.#write = write;
    this.#schedule = schedule;
  }

  /** Bytes waiting in the current batch. */
  get pendingBytes(): number {
    return this.#bytes;
  }

  send(frame: string | Uint8Array): void {
    if (typeof frame !== 'string') {
      this.flush();
      this.#write(frame);
      return;
    }
    if (this.#bytes + frame.length + 2 > this.#maxBytes) this.flush();
    this.#batch.push(frame);
    this.#bytes += frame.length + 1;
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(() => this.flush());
    }
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#batch.length === 0) return;
    const batch = this.#batch;
    this.#batch = [];
    this.#bytes = 0;
    this.#write(batch.length === 1 ? batch[0]! : `[${batch.join(',')}]`);
  }

  /** Drops anything not yet written. */
  discard(): void {
    this.#batch = [];
    this.#bytes = 0;
  }
}
