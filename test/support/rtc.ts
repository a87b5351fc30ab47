import { RTCPeerConnection } from 'werift';
import { filterCandidates } from '../../src/protocol/index.js';

export const LOOPBACK = ['127.0.0.1'];

/** A bare werift offerer with Lifeline's data channel and an audio transceiver, for signaling tests. */
export async function makeOffer(): Promise<{ pc: RTCPeerConnection; sdp: string }> {
  const allowed = new Set(LOOPBACK);
  const pc = new RTCPeerConnection({
    bundlePolicy: 'max-bundle',
    iceUseIpv6: false,
    iceAdditionalHostAddresses: LOOPBACK,
    iceFilterCandidatePair: (p) => allowed.has(p.localCandidate.host) && allowed.has(p.remoteCandidate.host),
  });
  pc.createDataChannel('lifeline', { negotiated: true, id: 0, ordered: true });
  pc.addTransceiver('audio', { direction: 'sendrecv' });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    else pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && resolve());
  });
  return { pc, sdp: filterCandidates(pc.localDescription!.sdp, LOOPBACK) };
}

export function postSdp(url: string, token: string | undefined, sdp: string, method = 'POST'): Promise<Response> {
  return fetch(url, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/sdp' },
    body: sdp,
  });
}
