import type { RTCDataChannel } from 'werift';
import { FrameCoalescer } from '../../protocol/index.js';
import { MessageBatcher } from '../../werift/message-batch.js';
import { pollDrain } from '../frame-link.js';
import type { FrameLink } from '../frame-link.js';

/**
 * A FrameLink over a werift data channel. werift sends each message as its own SCTP datagram
 * (~2,000 messages/s one by one), so frames are coalesced: those sent in one turn of the event
 * loop leave as one JSON-array message of at most `maxMessageBytes` — or, for clients that asked
 * for it (`batch`), as one container of every message of the turn, binary ones (audio events)
 * included (src/werift/message-batch.ts).
 */
export class DataChannelLink implements FrameLink {
  readonly #dc: RTCDataChannel;
  readonly #onClose: (code: number, reason: string) => void;
  readonly #coalescer: FrameCoalescer | MessageBatcher;

  constructor(dc: RTCDataChannel, maxMessageBytes: number, onClose: (code: number, reason: string) => void, batch = false) {
    this.#dc = dc;
    this.#onClose = onClose;
    // Frames go out when the task that produced them ends (a microtask), not a loop turn later:
    // the events of one group commit are sent in one synchronous run of the pump, so they still
    // leave as one message, without waiting behind the next round of I/O callbacks.
    this.#coalescer = batch
      ? new MessageBatcher(maxMessageBytes, (m) => this.#write(m), queueMicrotask)
      : new FrameCoalescer(maxMessageBytes, (m) => this.#write(m), queueMicrotask);
  }

  get bufferedAmount(): number {
    return this.#dc.bufferedAmount + this.#coalescer.pendingBytes;
  }

  send(data: string | Uint8Array): void {
    this.#coalescer.send(data);
  }

  flush(): void {
    this.#coalescer.flush();
  }

  #write(data: string | Uint8Array): void {
    if (this.#dc.readyState !== 'open') return;
    try {
      this.#dc.send(typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    } catch {
      // the association is going away; the peer's close handling takes it from here
    }
  }

  waitForDrain(lowWater: number): Promise<void> {
    return pollDrain(this, () => this.#dc.readyState === 'open', lowWater);
  }

  close(code: number, reason: string): void {
    this.#coalescer.flush();
    this.#onClose(code, reason);
  }
}
