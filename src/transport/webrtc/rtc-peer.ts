import { RTCPeerConnection } from 'werift';
import type { RTCDataChannel } from 'werift';
import { LifelineError, filterCandidates, looksLikeOffer } from '../../protocol/index.js';
import type { TokenClaims } from '../../protocol/index.js';
import type { Timeline } from '../../timeline/index.js';
import { ProtocolConnection } from '../protocol-connection.js';
import type { ConnectionLimits, ConnectionObserver, ConnectionServices } from '../protocol-connection.js';
import { DataChannelLink } from './data-channel-link.js';
import { gatheringComplete, healAfterRestart, peerConfig, sendOnOldPairUntilNominated, startRestartedTransports } from '../../werift/index.js';
import { PeerMedia } from '../../werift/media.js';
import type { MediaRouter } from './media-router.js';
import type { RtcOptions } from './rtc-options.js';

export interface RtcPeerContext {
  timeline: Timeline;
  sessionId: string;
  claims: TokenClaims;
  limits: ConnectionLimits;
  options: RtcOptions;
  observer: ConnectionObserver;
  services?: ConnectionServices;
  /** Routes this peer's RTP once its hello names its origin. */
  media?: MediaRouter;
  /** The client unpacks message batches (src/werift/message-batch.ts): batch everything. */
  batch?: boolean;
  onClosed: (peer: RtcPeer) => void;
}

/** The data channel every Lifeline peer connection carries: negotiated out of band as id 0. */
export const DATA_CHANNEL = { label: 'lifeline', id: 0 } as const;

function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * One device connection over WebRTC on the relay: a werift peer connection whose reliable, ordered
 * data channel carries protocol frames to a ProtocolConnection, and whose audio (and optional
 * video) transceivers are negotiated up front so media needs no renegotiation. ICE restarts keep
 * the peer connection, its DTLS and SCTP state, and the protocol connection alive.
 */
export class RtcPeer {
  readonly id = randomId();
  readonly sessionId: string;
  readonly claims: TokenClaims;
  readonly pc: RTCPeerConnection;
  readonly dc: RTCDataChannel;
  readonly connection: ProtocolConnection;
  restarts = 0;
  #closed = false;
  #cancelKick: () => void = () => {};
  #openTimer: NodeJS.Timeout | undefined;
  #media: PeerMedia | undefined;
  #leaveMedia: () => void = () => {};
  readonly #ctx: RtcPeerContext;
  readonly #link: DataChannelLink;

  private constructor(ctx: RtcPeerContext) {
    this.#ctx = ctx;
    this.sessionId = ctx.sessionId;
    this.claims = ctx.claims;
    this.pc = new RTCPeerConnection(peerConfig(ctx.options.iceHosts, ctx.options.icePortRange));
    this.dc = this.pc.createDataChannel(DATA_CHANNEL.label, { negotiated: true, id: DATA_CHANNEL.id, ordered: true });
    this.#link = new DataChannelLink(this.dc, ctx.options.maxMessageBytes, () => this.close(), ctx.batch ?? false);
    this.connection = new ProtocolConnection(this.#link, ctx.timeline, ctx.sessionId, ctx.claims, ctx.limits, {
      ...ctx.observer,
      welcomed: (c) => {
        ctx.observer.welcomed?.(c);
        this.#joinMedia();
      },
      closed: (c, code, reason) => {
        ctx.observer.closed?.(c, code, reason);
        this.close();
      },
    }, ctx.services);
    this.dc.onMessage.subscribe((data) => {
      this.connection.receive(typeof data === 'string' ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    this.dc.stateChanged.subscribe((state) => {
      if (state === 'open') clearTimeout(this.#openTimer);
      if (state === 'closed') this.close();
    });
    this.pc.connectionStateChange.subscribe((state) => {
      if (state === 'closed' || state === 'failed') this.close();
    });
    this.#openTimer = setTimeout(() => this.close(), ctx.options.openTimeoutMs);
  }

  /** Answers a client's offer: a new peer connection, or BAD_SDP. */
  static async answer(offer: string, ctx: RtcPeerContext): Promise<{ peer: RtcPeer; answer: string }> {
    if (!looksLikeOffer(offer)) throw new LifelineError('BAD_SDP', 'not an SDP offer with a data channel, ICE credentials and a DTLS fingerprint');
    const peer = new RtcPeer(ctx);
    try {
      await peer.pc.setRemoteDescription({ type: 'offer', sdp: filterCandidates(offer, ctx.options.iceHosts) });
      for (const t of peer.pc.getTransceivers()) {
        if (t.kind === 'audio' || t.kind === 'video') t.setDirection('sendrecv');
      }
      await peer.pc.setLocalDescription(await peer.pc.createAnswer());
      peer.#media = new PeerMedia(peer.pc);
      await gatheringComplete(peer.pc);
      return { peer, answer: peer.#localSdp() };
    } catch (err) {
      peer.close();
      if (err instanceof LifelineError) throw err;
      throw new LifelineError('BAD_SDP', `offer rejected: ${err instanceof Error ? err.message.slice(0, 160) : 'unusable'}`);
    }
  }

  /**
   * An ICE restart on the living peer connection (the client's new offer has new ICE
   * credentials). werift needs its ICE transports started again after the new description is
   * applied, or no connectivity checks run (see docs/WEBRTC.md).
   */
  async restart(offer: string): Promise<string> {
    if (this.#closed) throw new LifelineError('CONNECTION_NOT_FOUND', 'connection is closed');
    if (!looksLikeOffer(offer)) throw new LifelineError('BAD_SDP', 'not an SDP offer');
    const before = this.pc.iceTransports.map((t) => t.iceRestarts);
    // Keep sending on the old pair until the new one is nominated (werift fix 6).
    const bridge = sendOnOldPairUntilNominated(this.pc);
    try {
      await this.pc.setRemoteDescription({ type: 'offer', sdp: filterCandidates(offer, this.#ctx.options.iceHosts) });
      await this.pc.setLocalDescription(await this.pc.createAnswer());
    } catch (err) {
      throw new LifelineError('BAD_SDP', `restart offer rejected: ${err instanceof Error ? err.message.slice(0, 160) : 'unusable'}`);
    }
    this.#cancelKick();
    this.#cancelKick = healAfterRestart(this.pc, bridge);
    startRestartedTransports(this.pc, before);
    this.restarts++;
    await gatheringComplete(this.pc);
    return this.#localSdp();
  }

  /** The peer's media (RTP in and out), once its descriptions are applied. */
  get media(): PeerMedia | undefined {
    return this.#media;
  }

  #joinMedia(): void {
    const origin = this.connection.origin;
    if (this.#closed || !this.#media || !origin || !this.#ctx.media) return;
    this.#leaveMedia();
    this.#leaveMedia = this.#ctx.media.join({ sessionId: this.sessionId, origin, media: this.#media });
  }

  #localSdp(): string {
    const sdp = this.pc.localDescription?.sdp;
    if (!sdp) throw new LifelineError('INTERNAL', 'no local description');
    return filterCandidates(sdp, this.#ctx.options.iceHosts);
  }

  /** Asks the client to restart ICE (the relay's side of a restart "started by either side"). */
  requestRestart(reason: string): void {
    this.connection.requestRestart(reason);
    this.#link.flush();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the peer; `left` when the client said goodbye (DELETE), else the link was lost. */
  close(left = false): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#openTimer);
    this.#cancelKick();
    this.#leaveMedia();
    this.#media?.close();
    if (left) this.connection.ended('left');
    else this.connection.linkLost();
    void this.pc.close().catch(() => undefined);
    this.#ctx.onClosed(this);
  }
}
