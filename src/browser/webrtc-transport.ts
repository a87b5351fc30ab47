import { FrameCoalescer, LifelineError } from '../protocol/index.js';
import type { ClientLink, ClientTransport, ConnectTarget } from '../sdk/client-transport.js';
import { nextTurn } from './next-turn.js';
import { aborted, signal } from '../sdk/rtc-signaling.js';

export interface BrowserWebRtcOptions {
  /** STUN/TURN servers; none by default (the relay's host candidates are enough on a LAN). */
  iceServers?: RTCIceServer[];
  /** The microphone (or any audio) track to send; asked for on every new peer connection. */
  audioTrack?: () => MediaStreamTrack | undefined;
  /** Called with each peer connection's remote audio stream (the agent's speech). */
  onRemoteAudio?: (stream: MediaStream) => void;
  /** Heartbeat over the data channel (default 100 ms: a dead path is noticed in ~0.3 s). */
  heartbeatMs?: number;
  /** Most bytes per coalesced data-channel message (default 16 KiB). */
  maxMessageBytes?: number;
  /** Longest wait for ICE gathering before the offer goes out with what it has (default 3 s). */
  gatherTimeoutMs?: number;
  /**
   * The offer goes out this long after the first UDP candidate even if gathering goes on
   * (default 15 ms; TCP candidates, which the relay does not use, come ~120 ms later).
   * Infinity: wait for the end of gathering.
   */
  udpGraceMs?: number;
  /** Told of every peer connection made (tests and the demo page read its stats). */
  onPeerConnection?: (pc: RTCPeerConnection) => void;
}

/**
 * Sets the local description and waits for the candidates the offer needs: until ICE gathering
 * ends, or `udpGraceMs` after the first UDP candidate, whichever comes first. Chromium gathers its
 * UDP host candidates within a few milliseconds but its TCP ones only after ~120 ms, and the
 * relay uses UDP only (and learns a client's address from its checks anyway, as a peer-reflexive
 * candidate): waiting for those would add ~120 ms to every connect and every ICE restart.
 */
async function describeLocally(pc: RTCPeerConnection, offer: RTCSessionDescriptionInit, opts: { timeoutMs: number; udpGraceMs: number }): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    let started = false;
    let grace: ReturnType<typeof setTimeout> | undefined;
    const done = (): void => {
      clearTimeout(timer);
      clearTimeout(grace);
      pc.removeEventListener('icecandidate', onCandidate);
      pc.removeEventListener('icegatheringstatechange', onState);
      resolve();
    };
    const onCandidate = (e: RTCPeerConnectionIceEvent): void => {
      if (e.candidate === null) done();
      else if (e.candidate.protocol === 'udp' && grace === undefined && Number.isFinite(opts.udpGraceMs)) grace = setTimeout(done, opts.udpGraceMs);
    };
    const onState = (): void => {
      if (pc.iceGatheringState === 'gathering') started = true;
      else if (pc.iceGatheringState === 'complete' && started) done();
    };
    const timer = setTimeout(done, opts.timeoutMs);
    pc.addEventListener('icecandidate', onCandidate);
    pc.addEventListener('icegatheringstatechange', onState);
    pc.setLocalDescription(offer).catch((err: unknown) => {
      clearTimeout(timer);
      clearTimeout(grace);
      reject(err instanceof Error ? err : new Error(String(err)));
    });
  });
  const sdp = pc.localDescription?.sdp;
  if (!sdp) throw new LifelineError('INTERNAL', 'no local description');
  return sdp;
}

function gatherOptions(o: BrowserWebRtcOptions): { timeoutMs: number; udpGraceMs: number } {
  return { timeoutMs: o.gatherTimeoutMs ?? 3000, udpGraceMs: o.udpGraceMs ?? 15 };
}

/** One device connection over the browser's RTCPeerConnection: frames on data channel id 0. */
export class BrowserRtcLink implements ClientLink {
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  onClose: ((code: number, reason: string) => void) | undefined;
  readonly pc: RTCPeerConnection;
  readonly #dc: RTCDataChannel;
  readonly #url: string;
  readonly #target: ConnectTarget;
  readonly #opts: BrowserWebRtcOptions;
  readonly #coalescer: FrameCoalescer;
  readonly #onGone: () => void;
  #closed = false;
  #restarting: Promise<void> | undefined;

  constructor(pc: RTCPeerConnection, dc: RTCDataChannel, url: string, target: ConnectTarget, opts: BrowserWebRtcOptions, onGone: () => void) {
    this.pc = pc;
    this.#onGone = onGone;
    this.#dc = dc;
    this.#url = url;
    this.#target = target;
    this.#opts = opts;
    this.#coalescer = new FrameCoalescer(opts.maxMessageBytes ?? 16 * 1024, (m) => this.#write(m), nextTurn);
    dc.onmessage = (e: MessageEvent<string | ArrayBuffer>) => {
      this.onMessage?.(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
    };
    dc.onclose = () => this.#gone(1006, 'data channel closed');
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'closed' || pc.connectionState === 'failed') this.#gone(1006, `peer connection ${pc.connectionState}`);
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
      if (typeof data === 'string') this.#dc.send(data);
      else this.#dc.send(new Uint8Array(data));
    } catch {
      // closing
    }
  }

  /**
   * An ICE restart on this peer connection: new credentials, a new offer by PATCH, the answer
   * applied. DTLS, SCTP and the data channel (with everything queued in it) survive.
   */
  async restart(abort: AbortSignal): Promise<void> {
    // One offer/answer at a time on this peer connection: a restart asked for while another's
    // signaling is still under way starts after it.
    const previous = this.#restarting;
    const run = (async (): Promise<void> => {
      await previous?.catch(() => undefined);
      if (abort.aborted || this.#closed) throw new LifelineError('CONNECTION_CLOSED', 'aborted');
      const pc = this.pc;
      pc.restartIce();
      const offer = await describeLocally(pc, await pc.createOffer({ iceRestart: true }), gatherOptions(this.#opts));
      const res = await signal(this.#url, 'PATCH', this.#target.token, offer, abort);
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    })();
    this.#restarting = run;
    try {
      await Promise.race([run, aborted(abort)]);
    } finally {
      if (this.#restarting === run) this.#restarting = undefined;
    }
  }

  #gone(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#coalescer.discard();
    this.pc.close();
    this.#onGone();
    const cb = this.onClose;
    this.onClose = undefined;
    cb?.(code, reason);
  }

  /** Ends the connection as if the network had died (no goodbye): the relay keeps the device `reconnecting`. */
  drop(): void {
    this.#gone(1006, 'dropped');
  }

  close(code = 1000, reason = 'closed'): void {
    if (this.#closed) return;
    this.#coalescer.flush();
    void fetch(this.#url, { method: 'DELETE', headers: { authorization: `Bearer ${this.#target.token}` }, keepalive: true }).catch(() => undefined);
    this.#gone(code, reason);
  }
}

/**
 * WebRTC transport for browsers: signaling by HTTP in the style of WHIP (docs/WEBRTC.md),
 * protocol frames on a reliable ordered data channel negotiated as id 0, and an audio transceiver
 * (sendrecv) that carries the microphone to the relay and the agent's speech back.
 */
export function browserWebRtcTransport(opts: BrowserWebRtcOptions = {}): ClientTransport & { readonly links: ReadonlySet<BrowserRtcLink> } {
  const links = new Set<BrowserRtcLink>();
  return {
    name: 'webrtc',
    heartbeatMs: opts.heartbeatMs ?? 100,
    links,
    async connect(target: ConnectTarget, abort: AbortSignal): Promise<ClientLink> {
      const pc = new RTCPeerConnection({ iceServers: opts.iceServers ?? [], bundlePolicy: 'max-bundle' });
      opts.onPeerConnection?.(pc);
      let created: string | undefined;
      try {
        const dc = pc.createDataChannel('lifeline', { negotiated: true, id: 0, ordered: true });
        dc.binaryType = 'arraybuffer';
        const track = opts.audioTrack?.();
        pc.addTransceiver(track ?? 'audio', { direction: 'sendrecv', ...(track ? { streams: [new MediaStream([track])] } : {}) });
        pc.addEventListener('track', (e) => {
          if (e.track.kind === 'audio') opts.onRemoteAudio?.(e.streams[0] ?? new MediaStream([e.track]));
        });
        const opened = new Promise<void>((resolve, reject) => {
          if (dc.readyState === 'open') resolve();
          dc.addEventListener('open', () => resolve(), { once: true });
          dc.addEventListener('close', () => reject(new LifelineError('CONNECTION_CLOSED', 'data channel closed during setup')), { once: true });
        });
        const base = new URL(`/v1/sessions/${encodeURIComponent(target.sessionId)}/rtc`, target.baseUrl);
        const url = await Promise.race([
          (async () => {
            const offer = await describeLocally(pc, await pc.createOffer(), gatherOptions(opts));
            const res = await signal(base.toString(), 'POST', target.token, offer, abort);
            const location = res.headers.get('location');
            if (!location) throw new LifelineError('INTERNAL', 'relay sent no connection URL');
            created = new URL(location, target.baseUrl).toString();
            await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
            await opened;
            return created;
          })(),
          aborted(abort),
        ]);
        const link = new BrowserRtcLink(pc, dc, url, target, opts, () => links.delete(link));
        links.add(link);
        return link;
      } catch (err) {
        pc.close();
        // Leave nothing half-made on the relay.
        if (created) void fetch(created, { method: 'DELETE', headers: { authorization: `Bearer ${target.token}` } }).catch(() => undefined);
        throw err;
      }
    },
  };
}
