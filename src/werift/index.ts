/**
 * Our fixes and helpers for werift (pinned at 0.25.2), in one place, shared by the relay's WebRTC
 * transport and the Node SDK's. Each workaround says which werift behaviour it answers; see
 * docs/WEBRTC.md for the measurements behind them.
 */
import type { PeerConfig, RTCPeerConnection } from 'werift';

/** Peer configuration: one bundled transport, IPv4, and optionally only some host addresses. */
export interface CandidateAddress {
  host: string;
  port: number;
}

/**
 * Peer configuration: one bundled transport, IPv4, optionally only some host addresses, and
 * optionally a further rule on which candidate pairs may be used.
 */
export function peerConfig(
  iceHosts: readonly string[],
  icePortRange?: [number, number],
  pairFilter?: (local: CandidateAddress, remote: CandidateAddress) => boolean,
): Partial<PeerConfig> {
  const allowed = new Set(iceHosts);
  const filter =
    allowed.size > 0 || pairFilter
      ? {
          iceFilterCandidatePair: (pair: { localCandidate: CandidateAddress; remoteCandidate: CandidateAddress }) =>
            (allowed.size === 0 || (allowed.has(pair.localCandidate.host) && allowed.has(pair.remoteCandidate.host))) &&
            (!pairFilter || pairFilter(pair.localCandidate, pair.remoteCandidate)),
        }
      : {};
  return {
    bundlePolicy: 'max-bundle',
    iceUseIpv6: false,
    ...(icePortRange ? { icePortRange } : {}),
    ...(allowed.size > 0 ? { iceAdditionalHostAddresses: [...allowed] } : {}),
    ...filter,
  };
}

/** Resolves when every local candidate is gathered (non-trickle signaling sends them all at once). */
export function gatheringComplete(pc: RTCPeerConnection): Promise<void> {
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

/**
 * werift fix 1 — after an ICE restart no connectivity checks run (connect() returns early while
 * DTLS is up), so the path never heals. Starting the ICE transports again after the new
 * description is applied makes them check. Pass `before` (each transport's iceRestarts count
 * before the remote offer) on the answering side, to start only the transports that restarted.
 */
export function startRestartedTransports(pc: RTCPeerConnection, before?: readonly number[]): void {
  pc.iceTransports.forEach((t, i) => {
    if (before === undefined || t.iceRestarts > (before[i] ?? 0)) void t.start().catch(() => undefined);
  });
}

interface SctpAssociation {
  timer3Handle?: unknown;
  sentQueue: { retransmit: boolean }[];
  flightSize: number;
  partialBytesAcked: number;
  fastRecoveryExit: number | undefined;
  timer3Cancel(): void;
  transmit(): Promise<void>;
}

/**
 * werift fix 2 — SCTP retransmits a chunk lost in the restart gap only when its T3 timer fires
 * (minimum RTO 1 s) or after three gap reports, which never come while the congestion window is
 * full of unacknowledged data. So as soon as ICE reports `connected` again, everything outstanding
 * is retransmitted at once over the healed path — what T3 expiry does, except that the congestion
 * window is left as it was: the path just proved itself, and resetting it to one MTU on every
 * restart let a backlog build up across restarts at 50 ms RTT.
 * Returns a disposer; the kick happens at most once.
 */
export function retransmitWhenReconnected(pc: RTCPeerConnection, onReconnected?: () => void): () => void {
  const ice = pc.iceTransports[0];
  if (!ice) return () => {};
  const sub = ice.onStateChange.subscribe((state) => {
    if (state !== 'connected') return;
    sub.unSubscribe();
    onReconnected?.();
    const assoc = (pc.sctpTransport as { sctp?: SctpAssociation } | undefined)?.sctp;
    if (!assoc?.timer3Handle || assoc.sentQueue.length === 0) return;
    assoc.timer3Cancel();
    for (const chunk of assoc.sentQueue) chunk.retransmit = true;
    // Every chunk goes out again and is counted in flight again as it does (as on T3 expiry).
    assoc.flightSize = 0;
    assoc.partialBytesAcked = 0;
    assoc.fastRecoveryExit = undefined;
    void assoc.transmit().catch(() => undefined);
  });
  return () => sub.unSubscribe();
}

interface StunTransaction {
  ended: boolean;
  request: unknown;
  addr: unknown;
}

interface StunProtocol {
  transactions?: Record<string, StunTransaction>;
  sendStun(message: unknown, addr: unknown): Promise<void>;
}

/**
 * werift fix 3 — connectivity checks back off (50, 100, 200, 400 ms between tries), so a path
 * that comes back between two tries stays unused for up to 400 ms. While a restart has not
 * healed, this resends every in-flight check request unchanged (same transaction id) every
 * `everyMs`: the first answer after the path returns completes its pending check at once.
 * Costs a ~100-byte datagram per pending check per interval, only while the path is down.
 * Returns the disposer that stops it.
 */
export function hurryChecks(pc: RTCPeerConnection, everyMs = 10): () => void {
  const timer = setInterval(() => {
    for (const t of pc.iceTransports) {
      const protocols = (t.connection as unknown as { protocols?: StunProtocol[] }).protocols ?? [];
      for (const protocol of protocols) {
        for (const tx of Object.values(protocol.transactions ?? {})) {
          if (!tx.ended) void protocol.sendStun(tx.request, tx.addr).catch(() => undefined);
        }
      }
    }
  }, everyMs);
  timer.unref?.();
  return () => clearInterval(timer);
}
