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
 * restart let a backlog build up across restarts at 50 ms RTT. The kick comes on the nomination of
 * the new pair (or ICE `connected`, whichever is first).
 * Returns a disposer; the kick happens at most once.
 */
export function retransmitWhenReconnected(pc: RTCPeerConnection, onReconnected?: () => void): () => void {
  const ice = pc.iceTransports[0];
  if (!ice) return () => {};
  const connection = ice.connection as unknown as { nominated?: unknown; checkComplete?: (pair: unknown) => void };
  let done = false;
  const kick = (): void => {
    if (done) return;
    done = true;
    sub.unSubscribe();
    unwrap();
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
  };
  const sub = ice.onStateChange.subscribe((state) => {
    if (state === 'connected') kick();
  });
  // The nominated pair carries data at once; ICE reports `connected` only when its check loop
  // notices, which can be later. Kick on the nomination itself when it comes first.
  const original = connection.checkComplete;
  const hadNominated = connection.nominated !== undefined;
  let unwrap = (): void => {};
  if (original && !hadNominated) {
    const watched = function (this: unknown, pair: unknown): void {
      original.call(this, pair);
      if (connection.nominated !== undefined) queueMicrotask(kick);
    };
    connection.checkComplete = watched;
    unwrap = () => {
      if (connection.checkComplete === watched) connection.checkComplete = original;
    };
  }
  return () => {
    done = true;
    sub.unSubscribe();
    unwrap();
  };
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

type CheckIncoming = (message: unknown, addr: unknown, protocol: StunProtocol) => void;

interface IceConnectionInternals {
  protocols?: StunProtocol[];
  checkIncoming?: CheckIncoming;
}

function sameAddress(a: unknown, b: unknown): boolean {
  return Array.isArray(a) && Array.isArray(b) && a[0] === b[0] && a[1] === b[1];
}

/** Resends the protocol's in-flight check requests (same transaction ids), optionally only those to `to`. */
function resendPendingChecks(protocol: StunProtocol, to?: unknown): void {
  for (const tx of Object.values(protocol.transactions ?? {})) {
    if (tx.ended || (to !== undefined && !sameAddress(tx.addr, to))) continue;
    void protocol.sendStun(tx.request, tx.addr).catch(() => undefined);
  }
}

/**
 * werift fix 3 — connectivity checks back off (50, 100, 200, 400 ms between tries), so a path
 * that comes back between two tries stays unused for up to 400 ms. While a restart has not
 * healed, this resends every in-flight check request unchanged (same transaction id) every
 * `everyMs`: the first answer after the path returns completes its pending check at once.
 * Costs a ~100-byte datagram per pending check per interval, only while the path is down.
 *
 * werift fix 4 (same window) — a check arriving on a pair whose own check is in progress must
 * trigger a new check of that pair at once (RFC 8445 §7.3.1.4); werift starts triggered checks
 * only for Waiting or Failed pairs, so the in-progress one waited for its next resend: up to
 * `everyMs` more on each side after the path returned. Here the peer's check resends ours to it
 * immediately, so a restart heals one round trip after the first check gets through.
 * Returns the disposer that stops both.
 */
export function hurryChecks(pc: RTCPeerConnection, everyMs = 5): () => void {
  const connections = pc.iceTransports.map((t) => t.connection as unknown as IceConnectionInternals);
  const timer = setInterval(() => {
    for (const connection of connections) for (const protocol of connection.protocols ?? []) resendPendingChecks(protocol);
  }, everyMs);
  timer.unref?.();
  const unwrap = connections.map((connection) => {
    const original = connection.checkIncoming;
    if (!original) return () => {};
    const triggered: CheckIncoming = function (this: unknown, message, addr, protocol) {
      original.call(this, message, addr, protocol);
      resendPendingChecks(protocol, addr);
    };
    connection.checkIncoming = triggered;
    return () => {
      if (connection.checkIncoming === triggered) connection.checkIncoming = original;
    };
  });
  return () => {
    clearInterval(timer);
    for (const u of unwrap) u();
  };
}

interface SendingConnection {
  nominated?: { protocol: { sendData(data: Buffer, addr: unknown): Promise<void> }; remoteAddr: unknown };
  send: (data: Buffer) => Promise<void>;
}

/**
 * werift fix 6 — make before break. An ICE restart clears werift's selected pair the moment it
 * applies (the offerer's createOffer, the answerer's remote offer), so nothing can be sent until
 * the new generation's checks nominate a pair, even when the old path still works (a restart the
 * other side asked for, a precautionary one). Browsers keep using the old pair until the new one
 * is selected. Call this right before the restart: until a new pair is nominated (or the
 * transport ends), data goes out on the old pair. On a dead path that costs nothing: the data
 * was undeliverable either way, and SCTP's kick resends it once the new pair is up.
 * Returns the disposer.
 */
export function sendOnOldPairUntilNominated(pc: RTCPeerConnection): () => void {
  const undo = pc.iceTransports.map((t) => {
    const conn = t.connection as unknown as SendingConnection;
    const old = conn.nominated;
    if (!old) return () => {};
    const original = conn.send;
    const bridged = async (data: Buffer): Promise<void> => {
      if (conn.nominated) {
        restore();
        return original(data);
      }
      await old.protocol.sendData(data, old.remoteAddr).catch(() => undefined);
    };
    const restore = (): void => {
      if (conn.send === bridged) conn.send = original;
      sub.unSubscribe();
    };
    const sub = t.onStateChange.subscribe((state) => {
      if (state === 'connected' || state === 'closed' || state === 'failed') restore();
    });
    conn.send = bridged;
    return restore;
  });
  return () => {
    for (const u of undo) u();
  };
}
