/**
 * Media on a werift peer connection, as Lifeline uses it on both sides (relay and Node SDK):
 * every RTP packet of the connection is taken where werift has just decrypted it (the DTLS
 * transport's `onRtp`), before werift's own routing, so packets werift would drop without a
 * word (unknown payload types, unknown SSRCs) can be counted; packets go out through the
 * negotiated transceivers' senders, which keep our sequence numbers and timestamps (they only
 * set their own SSRC and the negotiated payload type).
 */
import { GenericNack, PictureLossIndication, RtcpPayloadSpecificFeedback, RtcpTransportLayerFeedback, RtpHeader, RtpPacket } from 'werift';
import type { RTCPeerConnection, RTCRtpTransceiver } from 'werift';

export type MediaKind = 'audio' | 'video';

/** One RTP packet as Lifeline handles it (no werift types leak past this file). */
export interface MediaPacket {
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  ssrc: number;
  payload: Uint8Array;
}

/** What an incoming payload type means on this connection. */
export interface NegotiatedCodec {
  kind: MediaKind;
  /** Lower-case codec name: opus, vp8, h264, rtx, red, pcmu, … */
  name: string;
  clockRate: number;
}

/** Codecs whose payloads Lifeline carries; everything else negotiated is refused on receipt. */
export const CARRIED_CODECS: Readonly<Record<MediaKind, readonly string[]>> = { audio: ['opus'], video: ['vp8', 'h264'] };

export class PeerMedia {
  readonly #pc: RTCPeerConnection;
  readonly #byPt = new Map<number, NegotiatedCodec>();
  readonly #transceivers = new Map<MediaKind, RTCRtpTransceiver>();
  readonly #subscriptions: (() => void)[] = [];
  /** The SSRC last seen per kind (needed to address keyframe requests). */
  readonly #remoteSsrc = new Map<MediaKind, number>();
  #closed = false;

  /** Call once the offer and answer are applied (the transceivers and their codecs are known). */
  constructor(pc: RTCPeerConnection) {
    this.#pc = pc;
    this.refresh();
  }

  /** Re-reads the negotiated transceivers and payload types (after a renegotiation). */
  refresh(): void {
    this.#byPt.clear();
    for (const t of this.#pc.getTransceivers()) {
      const kind = t.kind === 'audio' || t.kind === 'video' ? t.kind : undefined;
      if (!kind) continue;
      if (!this.#transceivers.has(kind)) this.#transceivers.set(kind, t);
      for (const c of t.codecs) {
        const name = c.mimeType.split('/')[1]?.toLowerCase() ?? '';
        this.#byPt.set(c.payloadType, { kind, name, clockRate: c.clockRate });
      }
    }
  }

  get kinds(): MediaKind[] {
    return [...this.#transceivers.keys()];
  }

  /** The codec negotiated for a payload type on this connection, if any. */
  codec(payloadType: number): NegotiatedCodec | undefined {
    return this.#byPt.get(payloadType);
  }

  /** The payload type negotiated for a codec of a kind (e.g. audio/opus), if any. */
  payloadTypeOf(kind: MediaKind, name: string): number | undefined {
    for (const [pt, c] of this.#byPt) if (c.kind === kind && c.name === name) return pt;
    return undefined;
  }

  /**
   * Every RTP packet the connection receives, decrypted, with its negotiated codec (undefined
   * for a payload type that was never negotiated). Returns the unsubscribe.
   */
  onRtp(listener: (packet: MediaPacket, codec: NegotiatedCodec | undefined) => void): () => void {
    const dtls = this.#pc.dtlsTransports[0];
    if (!dtls) return () => {};
    const sub = dtls.onRtp.subscribe((rtp) => {
      const h = rtp.header;
      const codec = this.#byPt.get(h.payloadType);
      if (codec) this.#remoteSsrc.set(codec.kind, h.ssrc);
      listener(
        {
          payloadType: h.payloadType,
          sequenceNumber: h.sequenceNumber,
          timestamp: h.timestamp,
          marker: h.marker,
          ssrc: h.ssrc,
          payload: new Uint8Array(rtp.payload.buffer, rtp.payload.byteOffset, rtp.payload.byteLength),
        },
        codec,
      );
    });
    const off = (): void => sub.unSubscribe();
    this.#subscriptions.push(off);
    return off;
  }

  /**
   * Sends one packet of `kind`: our sequence number, timestamp and marker are kept; the sender
   * sets its SSRC and the negotiated payload type. Dropped (false) while the connection cannot
   * send (not yet connected, closed, kind not negotiated).
   */
  send(kind: MediaKind, packet: Pick<MediaPacket, 'sequenceNumber' | 'timestamp' | 'marker' | 'payload'>): boolean {
    const t = this.#transceivers.get(kind);
    if (this.#closed || !t) return false;
    const header = new RtpHeader({
      sequenceNumber: packet.sequenceNumber & 0xffff,
      timestamp: packet.timestamp >>> 0,
      marker: packet.marker,
    });
    const payload = Buffer.from(packet.payload.buffer, packet.payload.byteOffset, packet.payload.byteLength);
    void t.sender.sendRtp(new RtpPacket(header, payload)).catch(() => undefined);
    return true;
  }

  /**
   * Asks the far side to send these packets of `kind` again (RTCP generic NACK, RFC 4585); werift
   * senders answer from their last 128 packets (2.5 s of 20 ms audio).
   */
  requestRetransmission(kind: MediaKind, mediaSsrc: number, sequenceNumbers: readonly number[]): boolean {
    const t = this.#transceivers.get(kind);
    const dtls = this.#pc.dtlsTransports[0];
    if (this.#closed || !t || !dtls || sequenceNumbers.length === 0) return false;
    const nack = new GenericNack({ senderSsrc: t.receiver.rtcpSsrc, mediaSourceSsrc: mediaSsrc, lost: sequenceNumbers.map((s) => s & 0xffff) });
    void dtls.sendRtcp([new RtcpTransportLayerFeedback({ feedback: nack })]).catch(() => undefined);
    return true;
  }

  /** Asks the far side for a keyframe of the video it sends us (RTCP PLI). */
  requestKeyframe(): boolean {
    const t = this.#transceivers.get('video');
    const ssrc = this.#remoteSsrc.get('video');
    if (this.#closed || !t || ssrc === undefined) return false;
    void t.receiver.sendRtcpPLI(ssrc).catch(() => undefined);
    return true;
  }

  /**
   * Called when the far side asks us for a keyframe of the video we send it (RTCP PLI). Read
   * from the DTLS transport: werift's router hands a PLI whose sender SSRC it knows to that SSRC's
   * receiver, so the sender's own onPictureLossIndication misses it between werift peers.
   */
  onKeyframeRequest(listener: () => void): () => void {
    const t = this.#transceivers.get('video');
    const dtls = this.#pc.dtlsTransports[0];
    if (!t || !dtls) return () => {};
    const sub = dtls.onRtcp.subscribe((packet) => {
      if (packet.type !== RtcpPayloadSpecificFeedback.type) return;
      const fb = (packet as RtcpPayloadSpecificFeedback).feedback;
      if (fb.count === PictureLossIndication.count && (fb as PictureLossIndication).mediaSsrc === t.sender.ssrc) listener();
    });
    const off = (): void => sub.unSubscribe();
    this.#subscriptions.push(off);
    return off;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#subscriptions.splice(0)) off();
  }
}
