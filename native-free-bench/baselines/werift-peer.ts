import { RTCPeerConnection } from 'werift';
import type { RTCDataChannel } from 'werift';

/**
 * Bare werift peers for the baselines: nothing of Lifeline's own code (not even src/werift), so
 * the baseline is werift and nothing else. The configuration restricts ICE to loopback the same way
 * `peerConfig(['127.0.0.1'])` in src/werift does: one bundled transport, IPv4, 127.0.0.1 advertised,
 * and only 127.0.0.1 ↔ 127.0.0.1 pairs. The data channel is reliable, ordered and negotiated out of
 * band with id 0, as Lifeline's is.
 */

export const LOOPBACK = '127.0.0.1';

export function loopbackPeer(): RTCPeerConnection {
  return new RTCPeerConnection({
    bundlePolicy: 'max-bundle',
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [LOOPBACK],
    iceFilterCandidatePair: (pair) => pair.localCandidate.host === LOOPBACK && pair.remoteCandidate.host === LOOPBACK,
  });
}

/** The channel both sides create before negotiating: reliable, ordered, negotiated id 0. */
export function benchChannel(pc: RTCPeerConnection): RTCDataChannel {
  return pc.createDataChannel('bench', { negotiated: true, id: 0, ordered: true });
}

/** Drops every candidate that is not on 127.0.0.1 (werift gathers every interface). */
export function loopbackOnly(sdp: string): string {
  return sdp
    .split('\r\n')
    .filter((line) => !line.startsWith('a=candidate:') || line.split(' ')[4] === LOOPBACK)
    .join('\r\n');
}

/** Resolves when every local candidate is gathered (the signaling here is not trickle). */
export function gathered(pc: RTCPeerConnection): Promise<void> {
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

/** Creates the offer (after `benchChannel`), waits for gathering, returns it with loopback candidates only. */
export async function localOffer(pc: RTCPeerConnection): Promise<string> {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  return loopbackOnly(pc.localDescription!.sdp);
}

/** Answers `offer` (after `benchChannel`); returns the answer with loopback candidates only. */
export async function localAnswer(pc: RTCPeerConnection, offer: string): Promise<string> {
  await pc.setRemoteDescription({ type: 'offer', sdp: loopbackOnly(offer) });
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  return loopbackOnly(pc.localDescription!.sdp);
}

/** Resolves with the first message on `dc` once it equals `expected`; rejects on timeout or anything else. */
export function firstMessage(dc: RTCDataChannel, expected: string, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unSubscribe();
      reject(new Error(`${what}: no "${expected}" within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = dc.onMessage.subscribe((data) => {
      clearTimeout(timer);
      sub.unSubscribe();
      const text = typeof data === 'string' ? data : data.toString('utf8');
      if (text === expected) resolve();
      else reject(new Error(`${what}: expected "${expected}", got ${text.slice(0, 40)}`));
    });
  });
}

/** Closes a peer connection without letting a late error escape. */
export function closePeer(pc: RTCPeerConnection): Promise<void> {
  return pc.close().catch(() => undefined);
}
