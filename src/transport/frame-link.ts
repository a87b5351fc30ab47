/**
 * What a transport gives a protocol connection: a way to send encoded frames, a measure of what is
 * still buffered, and a way to close. WebSocket and WebRTC data channels both fit.
 */
export interface FrameLink {
  send(data: string | Uint8Array): void;
  /** Bytes queued but not yet handed to the network. */
  readonly bufferedAmount: number;
  /** Resolves once bufferedAmount has fallen to `lowWater` or the link closed. */
  waitForDrain(lowWater: number): Promise<void>;
  close(code: number, reason: string): void;
}

/** Polls bufferedAmount while congested: cheap, and only runs when a reader is outpacing the link. */
export function pollDrain(link: { readonly bufferedAmount: number }, isOpen: () => boolean, lowWater: number, everyMs = 5): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (!isOpen() || link.bufferedAmount <= lowWater) resolve();
      else setTimeout(check, everyMs);
    };
    check();
  });
}
