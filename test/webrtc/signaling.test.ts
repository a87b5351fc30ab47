import { SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { SECRET, startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { LOOPBACK, makeOffer, postSdp } from '../support/rtc.js';
import { waitFor } from '../support/wait.js';

async function errorCode(res: Response): Promise<string | undefined> {
  return ((await res.json()) as { error?: { code?: string } }).error?.code;
}

describe('WebRTC signaling (WHIP style)', () => {
  let r: TestRelay;
  let sid: string;
  const closers: (() => Promise<unknown> | unknown)[] = [];

  beforeEach(async () => {
    r = await startRelay({ rtcIceHosts: LOOPBACK, idleTimeoutMs: 800 });
    sid = await r.createSession();
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
    await r.close();
  });

  const rtcUrl = (session: string): string => `${r.url}/v1/sessions/${session}/rtc`;

  async function head(): Promise<string> {
    const res = await fetch(`${r.url}/v1/sessions/${sid}`, { headers: { authorization: `Bearer ${r.adminToken}` } });
    return ((await res.json()) as { head: string }).head;
  }

  it('answers an offer with SDP and a connection URL, and DELETE leaves', async () => {
    const { pc, sdp } = await makeOffer();
    closers.push(() => pc.close());
    const res = await postSdp(rtcUrl(sid), await r.token(sid, 'alice', 'user'), sdp);
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toContain('application/sdp');
    const location = res.headers.get('location')!;
    expect(location).toMatch(new RegExp(`^/v1/sessions/${sid}/rtc/[0-9a-f]{32}$`));
    const answer = await res.text();
    expect(answer.startsWith('v=0')).toBe(true);
    expect(answer).toContain('m=audio');
    // only the allowed host candidates are advertised
    for (const line of answer.split('\r\n').filter((l) => l.startsWith('a=candidate:'))) expect(line).toContain(' 127.0.0.1 ');
    expect(r.relay.rtc.peers.size).toBe(1);
    const del = await fetch(`${r.url}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${await r.token(sid, 'alice', 'user')}` } });
    expect(del.status).toBe(204);
    expect(r.relay.rtc.peers.size).toBe(0);
  });

  it('refuses bad SDP, foreign sessions, unknown connections and bad tokens, changing nothing', async () => {
    const token = await r.token(sid, 'alice', 'user');
    const bad = await postSdp(rtcUrl(sid), token, 'this is not sdp');
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe('BAD_SDP');

    const empty = await fetch(rtcUrl(sid), { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/sdp' } });
    expect(empty.status).toBe(400);

    const { pc, sdp } = await makeOffer();
    closers.push(() => pc.close());
    const other = await r.createSession();
    const foreign = await postSdp(rtcUrl(other), token, sdp);
    expect(foreign.status).toBe(403);
    expect(await errorCode(foreign)).toBe('FORBIDDEN');

    const unknownSession = await postSdp(rtcUrl('no-such-session'), r.adminToken, sdp);
    expect(unknownSession.status).toBe(404);
    expect(await errorCode(unknownSession)).toBe('SESSION_NOT_FOUND');

    const noToken = await postSdp(rtcUrl(sid), undefined, sdp);
    expect(noToken.status).toBe(401);
    expect(await errorCode(noToken)).toBe('UNAUTHORIZED');

    const expired = await new SignJWT({ sid, role: 'user' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('lifeline')
      .setSubject('alice')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 10)
      .sign(new TextEncoder().encode(SECRET));
    const expiredRes = await postSdp(rtcUrl(sid), expired, sdp);
    expect(expiredRes.status).toBe(401);
    expect(await errorCode(expiredRes)).toBe('TOKEN_EXPIRED');

    const patchUnknown = await postSdp(`${rtcUrl(sid)}/${'0'.repeat(32)}`, token, sdp, 'PATCH');
    expect(patchUnknown.status).toBe(404);
    expect(await errorCode(patchUnknown)).toBe('CONNECTION_NOT_FOUND');

    const deleteUnknown = await fetch(`${rtcUrl(sid)}/${'f'.repeat(32)}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    expect(deleteUnknown.status).toBe(404);

    expect(r.relay.rtc.peers.size).toBe(0);
    expect(await head()).toBe('-1');
  });

  it("does not let one participant restart or end another's connection", async () => {
    const { pc, sdp } = await makeOffer();
    closers.push(() => pc.close());
    const res = await postSdp(rtcUrl(sid), await r.token(sid, 'alice', 'user'), sdp);
    const location = res.headers.get('location')!;
    const mallory = await r.token(sid, 'mallory', 'user');
    const patch = await postSdp(`${r.url}${location}`, mallory, sdp, 'PATCH');
    expect(patch.status).toBe(404);
    const del = await fetch(`${r.url}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${mallory}` } });
    expect(del.status).toBe(404);
    expect(r.relay.rtc.peers.size).toBe(1);
  });

  it('reaps connections that vanish without DELETE, leaving no peer or connection behind', async () => {
    const { pc, sdp } = await makeOffer();
    closers.push(() => pc.close());
    const res = await postSdp(rtcUrl(sid), await r.token(sid, 'alice', 'user'), sdp);
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    await waitFor(() => pc.connectionState === 'connected', { message: 'client connected' });
    const peer = [...r.relay.rtc.peers.values()][0]!;
    // The client vanishes: no DELETE, no hello, its peer connection just goes away.
    await pc.close();
    await waitFor(() => r.relay.rtc.peers.size === 0, { timeoutMs: 10_000, message: 'peer reaped' });
    expect(peer.closed).toBe(true);
    expect(r.relay.connections.size).toBe(0);
  });

  it('reaps a peer whose client never completes the handshake', async () => {
    const { pc, sdp } = await makeOffer();
    closers.push(() => pc.close());
    const res = await postSdp(rtcUrl(sid), await r.token(sid, 'alice', 'user'), sdp);
    expect(res.status).toBe(201);
    expect(r.relay.rtc.peers.size).toBe(1);
    // The answer is never applied: no data channel, no hello. The hello timeout ends it.
    await waitFor(() => r.relay.rtc.peers.size === 0, { timeoutMs: 10_000, message: 'half-open peer reaped' });
    expect(r.relay.connections.size).toBe(0);
  });

  it('closes every peer connection when the relay shuts down', async () => {
    const user = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user'), transport: webrtcTransport({ iceHosts: LOOPBACK }) });
    closers.push(() => user.close());
    const peer = [...r.relay.rtc.peers.values()][0]!;
    await r.relay.close();
    expect(peer.closed).toBe(true);
    expect(r.relay.rtc.peers.size).toBe(0);
  });
});
