/**
 * What a runtime binding gives the client core: a link that carries encoded protocol frames.
 * Node binds it to `ws` (and later werift), the browser to WebSocket and RTCPeerConnection.
 */
export interface ClientLink {
  send(data: string | Uint8Array): void;
  readonly bufferedAmount: number;
  close(code?: number, reason?: string): void;
  /** Set by the core; called for every message. */
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  /** Set by the core; called once when the link is gone, whoever closed it. */
  onClose: ((code: number, reason: string) => void) | undefined;
  /**
   * Repairs the path in place (WebRTC: an ICE restart on the living peer connection; DTLS and
   * SCTP survive). Resolves when signaling is done; the core then waits for traffic. Absent on
   * links that cannot (WebSocket): the core reconnects instead.
   */
  restart?(signal: AbortSignal): Promise<void>;
}

export interface ConnectTarget {
  /** The relay's base URL, e.g. http://127.0.0.1:8787 */
  baseUrl: string;
  sessionId: string;
  token: string;
}

export interface ClientTransport {
  /** A short name for state events and logs: "ws", "webrtc". */
  readonly name: string;
  /** Heartbeat interval this transport wants (overrides the relay's suggestion). */
  readonly heartbeatMs?: number;
  /** Opens a link; rejects if it cannot be opened. */
  connect(target: ConnectTarget, signal: AbortSignal): Promise<ClientLink>;
}
