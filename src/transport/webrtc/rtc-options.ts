import type { PeerConfig } from 'werift';

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

/** werift peer configuration for the relay's or a Node client's side. */
export function peerConfig(opts: Pick<RtcOptions, 'iceHosts' | 'icePortRange'>): Partial<PeerConfig> {
  const allowed = new Set(opts.iceHosts);
  return {
    bundlePolicy: 'max-bundle',
    iceUseIpv6: false,
    ...(opts.icePortRange ? { icePortRange: opts.icePortRange } : {}),
    ...(allowed.size > 0
      ? {
          iceAdditionalHostAddresses: [...allowed],
          iceFilterCandidatePair: (pair) => allowed.has(pair.localCandidate.host) && allowed.has(pair.remoteCandidate.host),
        }
      : {}),
  };
}

/** Resolves when the peer connection has gathered all its candidates (non-trickle signaling). */
export function gatheringComplete(pc: { iceGatheringState: string; iceGatheringStateChange: { subscribe(cb: (s: string) => void): { unSubscribe(): void } } }): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const sub = pc.iceGatheringStateChange.subscribe((state) => {
      if (state === 'complete') {
        sub.unSubscribe();
        resolve();
      }
    });
  });
}
