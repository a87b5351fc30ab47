export interface RtcOptions {
  /**
   * Only these addresses are advertised and paired (e.g. ['127.0.0.1'] in tests, or the public
   * address of the host). Empty: every interface werift finds.
   */
  iceHosts: string[];
  /** UDP port range for ICE host candidates, [min, max]; undefined for any. */
  icePortRange?: [number, number] | undefined;
  /** A peer whose data channel has not opened within this time is closed (default 15 s). */
  openTimeoutMs: number;
  /** Coalescing: most bytes per data-channel message (default 16 KiB). */
  maxMessageBytes: number;
}

export const DEFAULT_RTC_OPTIONS: RtcOptions = {
  iceHosts: [],
  openTimeoutMs: 15_000,
  maxMessageBytes: 16 * 1024,
};
