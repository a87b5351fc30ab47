/**
 * Our fixes and helpers for werift (pinned at 0.25.2), in one place, shared by the relay's WebRTC
 * transport and the Node SDK's. Each workaround says which werift behaviour it answers; see
 * docs/WEBRTC.md for the measurements behind them.
 */
import type { Socket } from 'node:dgram';
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

/**
 * Resolves when every local candidate is gathered (non-trickle signaling sends them all at once),
 * with the candidates' sockets sized by widenSocketBuffers().
 */
export function gatheringComplete(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') {
    widenSocketBuffers(pc);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const sub = pc.iceGatheringStateChange.subscribe((state) => {
      if (state === 'complete') {
        sub.unSubscribe();
        widenSocketBuffers(pc);
        resolve();
      }
    });
  });
}

/** Receive and send buffer asked for each UDP socket; the kernel caps it (Linux: net.core.rmem_max, wmem_max). */
export const UDP_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

const SIZED = new WeakSet<Socket>();

/**
 * werift fix 7 — werift leaves its UDP sockets at the kernel's default buffer (208 KiB on Linux,
 * about 150 full-size datagrams once the kernel's overhead is counted). A burst of coalesced
 * data-channel messages that arrives while the event loop is busy overflows it, and every datagram
 * dropped costs an SCTP retransmission and a halved congestion window. Asks for
 * UDP_SOCKET_BUFFER_BYTES on every candidate socket; a socket is sized once.
 */
export function widenSocketBuffers(pc: RTCPeerConnection, bytes = UDP_SOCKET_BUFFER_BYTES): void {
  for (const transport of pc.iceTransports) {
    const connection = transport.connection as unknown as { protocols?: { transport?: { socket?: Socket } }[] };
    for (const protocol of connection.protocols ?? []) {
      const socket = protocol.transport?.socket;
      if (!socket || SIZED.has(socket)) continue;
      try {
        socket.setRecvBufferSize(bytes);
        socket.setSendBufferSize(bytes);
        SIZED.add(socket);
      } catch {
        // Not bound yet, or already closed: there is nothing to size.
      }
    }
  }
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

/** The local socket and remote address of a transport's selected pair. */
export interface IcePath {
  readonly protocol: unknown;
  readonly remoteAddr: unknown;
}

function onPath(path: IcePath, protocol: unknown, addr: unknown): boolean {
  return protocol === path.protocol && sameAddress(addr, path.remoteAddr);
}

/**
 * werift fix 2 — SCTP retransmits a chunk lost in the restart gap only when its T3 timer fires
 * (minimum RTO 1 s) or after three gap reports, which never come while the congestion window is
 * full of unacknowledged data. So as soon as the path is back, everything outstanding is
 * retransmitted at once — what T3 expiry does, except that the congestion window is left as it
 * was: the path just proved itself, and resetting it to one MTU on every restart let a backlog
 * build up across restarts at 50 ms RTT.
 *
 * When is the path back? On the nomination of the new pair (or ICE `connected`, whichever is
 * first) — and, given the restart's `bridge` (fix 6), as soon as the first connectivity check
 * arrives: the path it came over works again, so the bridge sends on it from then on (it may
 * be the old path, or a new one when the peer moved), and the retransmission need not wait for
 * the nomination's round trips. Checks are authenticated (MESSAGE-INTEGRITY with the ICE
 * password), so no one else can steer the data. If the pair then nominated is another path,
 * the retransmission is repeated over it. `onReconnected` runs on the nomination.
 * Returns a disposer; the kick happens at most once per path.
 */
export function retransmitWhenReconnected(pc: RTCPeerConnection, onReconnected?: () => void, bridge?: PathBridge): () => void {
  const ice = pc.iceTransports[0];
  if (!ice) return () => {};
  const connection = ice.connection as unknown as { nominated?: { protocol: unknown; remoteAddr: unknown }; checkComplete?: (pair: unknown) => void };
  let done = false;
  let kickedOn: IcePath | undefined;
  const retransmit = (): void => {
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
  const kick = (): void => {
    if (done) return;
    done = true;
    stop();
    onReconnected?.();
    const nominated = connection.nominated;
    if (kickedOn && nominated && onPath(kickedOn, nominated.protocol, nominated.remoteAddr)) return;
    retransmit();
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
  // The first check proves the path it came over. werift has answered it when hooks run.
  const hooks = bridge ? incomingCheckHooks(ice.connection as unknown as IceConnectionInternals) : undefined;
  const early: CheckIncoming = (_message, addr, protocol) => {
    hooks?.delete(early);
    if (!bridge) return;
    const proven: IcePath = { protocol, remoteAddr: addr };
    if (!bridge.path || !onPath(bridge.path, protocol, addr)) bridge.moveTo(proven);
    kickedOn = proven;
    retransmit();
  };
  hooks?.add(early);
  const stop = (): void => {
    sub.unSubscribe();
    unwrap();
    hooks?.delete(early);
  };
  return () => {
    done = true;
    stop();
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

const CHECK_HOOKS = Symbol('lifeline.incomingCheckHooks');

/**
 * Listeners called after werift has handled each incoming connectivity check. One wrapper per
 * ICE connection, installed once and never removed, so features can come and go in any order.
 */
function incomingCheckHooks(connection: IceConnectionInternals): Set<CheckIncoming> | undefined {
  const slot = connection as IceConnectionInternals & { [CHECK_HOOKS]?: Set<CheckIncoming> };
  const existing = slot[CHECK_HOOKS];
  if (existing) return existing;
  const original = connection.checkIncoming;
  if (!original) return undefined;
  const hooks = new Set<CheckIncoming>();
  connection.checkIncoming = function (this: unknown, message, addr, protocol) {
    original.call(this, message, addr, protocol);
    for (const hook of hooks) hook(message, addr, protocol);
  };
  slot[CHECK_HOOKS] = hooks;
  return hooks;
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
  const unhook = connections.map((connection) => {
    const hooks = incomingCheckHooks(connection);
    const triggered: CheckIncoming = (_message, addr, protocol) => resendPendingChecks(protocol, addr);
    hooks?.add(triggered);
    return () => hooks?.delete(triggered);
  });
  return () => {
    clearInterval(timer);
    for (const u of unhook) u();
  };
}

/**
 * Everything a restart needs once its descriptions are applied, on either side: hurried checks
 * (fix 3) and SCTP's retransmission as soon as the path is back (fix 2, over `bridge`, fix 6).
 * The hurrying stops on reconnection, or after `hurryLimitMs` for a restart that never heals
 * (the client gives up on it well before). Returns the canceller.
 */
export function healAfterRestart(pc: RTCPeerConnection, bridge: PathBridge, hurryLimitMs = 10_000): () => void {
  const stopHurry = hurryChecks(pc);
  const stopKick = retransmitWhenReconnected(pc, stopHurry, bridge);
  const limit = setTimeout(stopHurry, hurryLimitMs);
  return () => {
    clearTimeout(limit);
    stopKick();
    stopHurry();
  };
}

interface SendingProtocol {
  sendData(data: Buffer, addr: unknown): Promise<void>;
}

interface SendingConnection {
  nominated?: { protocol: SendingProtocol; remoteAddr: unknown };
  send: (data: Buffer) => Promise<void>;
}

const ACTIVE_BRIDGE = Symbol('lifeline.pathBridge');

/** Where data goes while an ICE restart has not nominated a pair yet (werift fix 6). */
export interface PathBridge {
  /** The path data goes out on now; undefined when there is none (data is dropped, as werift does). */
  readonly path: IcePath | undefined;
  /** Sends on `path` from now on (a path the peer's checks just proved). */
  moveTo(path: IcePath): void;
  /** Ends the bridge (werift's own sending again). */
  dispose(): void;
}

/**
 * werift fix 6 — make before break. An ICE restart clears werift's selected pair the moment it
 * applies (the offerer's createOffer, the answerer's remote offer), so nothing can be sent until
 * the new generation's checks nominate a pair, even when the old path still works (a restart the
 * other side asked for, a precautionary one). Browsers keep using the old pair until the new one
 * is selected. Call this right before the restart: until a new pair is nominated (or the
 * transport ends), data goes out on the old pair, or on the path `moveTo` names (see
 * retransmitWhenReconnected). On a dead path that costs nothing: the data was undeliverable
 * either way, and SCTP's kick resends it once a path is up.
 * Returns the bridge of the first transport (the bundled one), which retransmitWhenReconnected
 * may move; the others, if any, keep their old pair.
 */
export function sendOnOldPairUntilNominated(pc: RTCPeerConnection): PathBridge {
  const bridges = pc.iceTransports.map((t): PathBridge => {
    const conn = t.connection as unknown as SendingConnection & { [ACTIVE_BRIDGE]?: PathBridge };
    // A restart before the last one healed: the bridge in place goes on (there is no new old pair).
    const active = conn[ACTIVE_BRIDGE];
    if (active && !conn.nominated) return active;
    active?.dispose();
    const old = conn.nominated;
    let target: IcePath | undefined = old && { protocol: old.protocol, remoteAddr: old.remoteAddr };
    const original = conn.send;
    const bridged = async (data: Buffer): Promise<void> => {
      if (conn.nominated || !target) {
        if (conn.nominated) dispose();
        return original(data);
      }
      await (target.protocol as SendingProtocol).sendData(data, target.remoteAddr).catch(() => undefined);
    };
    const dispose = (): void => {
      if (conn.send === bridged) conn.send = original;
      if (conn[ACTIVE_BRIDGE] === bridge) delete conn[ACTIVE_BRIDGE];
      sub.unSubscribe();
    };
    const sub = t.onStateChange.subscribe((state) => {
      if (state === 'connected' || state === 'closed' || state === 'failed') dispose();
    });
    conn.send = bridged;
    const bridge: PathBridge = {
      get path() {
        return target;
      },
      moveTo(path) {
        target = path;
      },
      dispose,
    };
    conn[ACTIVE_BRIDGE] = bridge;
    return bridge;
  });
  const first = bridges[0];
  return {
    get path() {
      return first?.path;
    },
    moveTo(path) {
      first?.moveTo(path);
    },
    dispose() {
      for (const b of bridges) b.dispose();
    },
  };
}
