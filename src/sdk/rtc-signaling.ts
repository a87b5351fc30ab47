import { LifelineError, isErrorCode } from '../protocol/index.js';

/**
 * The client side of the relay's WHIP-style signaling, on web-standard `fetch` only: shared by
 * the Node (werift) binding and the browser binding.
 */

/** POSTs (join) or PATCHes (ICE restart) an SDP offer; a refusal becomes a LifelineError with the relay's code. */
export async function signal(url: string, method: 'POST' | 'PATCH', token: string, sdp: string, abort: AbortSignal): Promise<Response> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/sdp' },
    body: sdp,
    signal: abort,
  });
  if (res.ok) return res;
  let code = 'INTERNAL';
  let message = `signaling failed: HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // not JSON
  }
  throw new LifelineError(isErrorCode(code) ? code : 'INTERNAL', message);
}

/** Rejects with CONNECTION_CLOSED when `abort` fires (to race signaling against it). */
export function aborted(abort: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = (): void => reject(new LifelineError('CONNECTION_CLOSED', 'aborted'));
    if (abort.aborted) fail();
    abort.addEventListener('abort', fail, { once: true });
  });
}
