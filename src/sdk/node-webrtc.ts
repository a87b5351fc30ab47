import { RTCPeerConnection } from 'werift';
import type { RTCDataChannel } from 'werift';
import { FrameCoalescer, LifelineError, filterCandidates } from '../protocol/index.js';
import { gatheringComplete, healAfterRestart, peerConfig, sendOnOldPairUntilNominated, startRestartedTransports } from '../werift/index.js';
import { PeerMedia } from '../werift/media.js';
import { isMessageBatch, unpackMessages } from '../werift/message-batch.js';
import type { ClientLink, ClientTransport, ConnectTarget, LinkMedia } from './client-transport.js';
import { aborted, signal } from './rtc-signaling.js';

export interface WebRtcTransportOptions {
  /** Only these local/remote addresses are used (e.g. ['127.0.0.1']); empty: all. */
  iceHosts?: string[];
  /** Rewrites each offer before it is sent (e.g. to put the client's candidates behind a proxy). */
  mapOffer?: (sdp: string) => string | Promise<string>;
  /** Rewrites each answer from the relay (e.g. to route media through a proxy in tests). */
  mapAnswer?: (sdp: string) => string | Promise<string>;
  /** Also negotiate a video transceiver (sendrecv). */
  video?: boolean;
  /** Heartbeat interval over the data channel (default 100 ms: loss is noticed in ~0.3 s). */
  heartbeatMs?: number;
  /** Most bytes per coalesced data-channel message (default 16 KiB). */
  maxMessageBytes?: number;
}

class WebRtcLink implements ClientLink {
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  onClose: ((code: number, reason: string) => void) | undefined;
  readonly pc: RTCPeerConnection;
  readonly media: LinkMedia;
  readonly #peerMedia: PeerMedia;
  readonly #dc: RTCDataChannel;
  readonly #url: string;
  readonly #target: ConnectTarget;
  readonly #opts: WebRtcTransportOptions;
  readonly #coalescer: FrameCoalescer;
  #closed = false;
  #cancelKick: () => void = () => {};

  constructor(pc: RTCPeerConnection, dc: RTCDataChannel, url: string, target: ConnectTarget, opts: WebRtcTransportOptions) {
    this.pc = pc;
    this.#dc = dc;
    this.#url = url;
    this.#target = target;
    this.#opts = opts;
    this.#coalescer = new FrameCoalescer(opts.maxMessageBytes ?? 16 * 1024, (m) => this.#write(m), setImmediate);
    const media = new PeerMedia(pc);
    this.#peerMedia = media;
    this.media = {
      send: (kind, frame) => !this.#closed && media.send(kind, frame),
      onPacket: (listener) =>
        media.onRtp((packet, codec) => {
          if (codec) listener(codec.kind, packet);
        }),
      requestKeyframe: () => !this.#closed && media.requestKeyframe(),
      onKeyframeRequest: (listener) => media.onKeyframeRequest(listener),
    };
    dc.onMessage.subscribe((data) => {
      const message = typeof data === 'string' ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (!isMessageBatch(message)) {
        this.onMessage?.(message);
        return;
      }
      let messages: (string | Uint8Array)[];
      try {
        messages = unpackMessages(message);
      } catch {
        this.onMessage?.(message); // the core reports it as a bad frame; nothing in it is trusted
        return;
      }
      for (const m of messages) {
        if (this.#closed) return;
        this.onMessage?.(m);
      }
    });
    dc.stateChanged.subscribe((state) => {
      if (state === 'closed') this.#gone(1006, 'data channel closed');
    });
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'closed' || state === 'failed') this.#gone(1006, `peer connection ${state}`);
    });
  }

  get bufferedAmount(): number {
    return this.#dc.bufferedAmount + this.#coalescer.pendingBytes;
  }

  send(data: string | Uint8Array): void {
    if (!this.#closed) this.#coalescer.send(data);
  }

  #write(data: string | Uint8Array): void {
    if (this.#closed || this.#dc.readyState !== 'open') return;
    try {
      this.#dc.send(typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    } catch {
      // closing
    }
  }

  async restart(abort: AbortSignal): Promise<void> {
    const pc = this.pc;
    // Keep sending on the old pair until the new one is nominated (werift fix 6).
    const bridge = sendOnOldPairUntilNominated(pc);
    pc.restartIce();
    await Promise.race([
      (async () => {
        await pc.setLocalDescription(await pc.createOffer());
        await gatheringComplete(pc);
        let offer = filterCandidates(pc.localDescription!.sdp, this.#opts.iceHosts ?? []);
        if (this.#opts.mapOffer) offer = await this.#opts.mapOffer(offer);
        const res = await signal(this.#url, 'PATCH', this.#target.token, offer, abort);
        const answer = await res.text();
        await pc.setRemoteDescription({ type: 'answer', sdp: this.#opts.mapAnswer ? await this.#opts.mapAnswer(answer) : answer });
        this.#cancelKick();
        this.#cancelKick = healAfterRestart(pc, bridge);
        startRestartedTransports(pc);
      })(),
      aborted(abort),
    ]);
  }

  #gone(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelKick();
    this.#peerMedia.close();
    this.#coalescer.discard();
    void this.pc.close().catch(() => undefined);
    const cb = this.onClose;
    this.onClose = undefined;
    cb?.(code, reason);
  }

  close(code = 1000, reason = 'closed'): void {
    if (this.#closed) return;
    this.#coalescer.flush();
    void fetch(this.#url, { method: 'DELETE', headers: { authorization: `Bearer ${this.#target.token}` } }).catch(() => undefined);
    this.#gone(code, reason);
  }
}

/**
 * WebRTC transport for Node (werift): signaling by HTTP in the style of WHIP, protocol frames on
 * a reliable ordered data channel (negotiated, id 0), audio (and optionally video) transceivers
 * negotiated up front. Its links can restart ICE in place.
 */
export function webrtcTransport(opts: WebRtcTransportOptions = {}): ClientTransport {
  return {
    name: 'webrtc',
    heartbeatMs: opts.heartbeatMs ?? 100,
    async connect(target: ConnectTarget, abort: AbortSignal): Promise<ClientLink> {
      const pc = new RTCPeerConnection(peerConfig(opts.iceHosts ?? []));
      let created: string | undefined;
      try {
        const dc = pc.createDataChannel('lifeline', { negotiated: true, id: 0, ordered: true });
        pc.addTransceiver('audio', { direction: 'sendrecv' });
        if (opts.video) pc.addTransceiver('video', { direction: 'sendrecv' });
        const opened = new Promise<void>((resolve) => {
          if (dc.readyState === 'open') resolve();
          else dc.stateChanged.subscribe((s) => s === 'open' && resolve());
        });
        const base = new URL(`/v1/sessions/${encodeURIComponent(target.sessionId)}/rtc`, target.baseUrl);
        // We unpack message batches: the relay may put audio events (binary) in them too.
        base.searchParams.set('batch', '1');
        const url = await Promise.race([
          (async () => {
            await pc.setLocalDescription(await pc.createOffer());
            await gatheringComplete(pc);
            let offer = filterCandidates(pc.localDescription!.sdp, opts.iceHosts ?? []);
            if (opts.mapOffer) offer = await opts.mapOffer(offer);
            const res = await signal(base.toString(), 'POST', target.token, offer, abort);
            const location = res.headers.get('location');
            if (!location) throw new LifelineError('INTERNAL', 'relay sent no connection URL');
            created = new URL(location, target.baseUrl).toString();
            const answer = await res.text();
            await pc.setRemoteDescription({ type: 'answer', sdp: opts.mapAnswer ? await opts.mapAnswer(answer) : answer });
            await opened;
            return new URL(location, target.baseUrl).toString();
          })(),
          aborted(abort),
        ]);
        return new WebRtcLink(pc, dc, url, target, opts);
      } catch (err) {
        void pc.close().catch(() => undefined);
        // Leave nothing half-made on the relay.
        if (created) void fetch(created, { method: 'DELETE', headers: { authorization: `Bearer ${target.token}` } }).catch(() => undefined);
        throw err;
      }
    },
  };
}
