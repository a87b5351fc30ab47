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
  /** Media tracks of the link (WebRTC); absent on links that carry frames only (WebSocket). */
  readonly media?: LinkMedia;
}

export type MediaKind = 'audio' | 'video';

/** One RTP packet as the SDK sends and receives it (Opus audio: clock 48 kHz). */
export interface RtpFrame {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
}

/**
 * The media side of a link: RTP out on the negotiated tracks, RTP in from them, keyframe
 * requests (RTCP PLI) both ways. Bindings implement it over their runtime's WebRTC.
 */
export interface LinkMedia {
  /** Sends a packet; false when it could not be sent (kind not negotiated, link not ready). */
  send(kind: MediaKind, frame: RtpFrame): boolean;
  /** Every packet received; returns the unsubscribe. */
  onPacket(listener: (kind: MediaKind, frame: RtpFrame) => void): () => void;
  /** Asks the far side for a video keyframe. */
  requestKeyframe(): boolean;
  /** The far side asks for a video keyframe; returns the unsubscribe. */
  onKeyframeRequest(listener: () => void): () => void;
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
