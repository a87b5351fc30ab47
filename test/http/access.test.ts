/**
 * Who may use /v1/stream/{id}: `--streams token` (the default) and `--streams open`, and what a
 * request with the wrong token learns (nothing: the answer does not depend on the stream).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mintToken } from '../../src/protocol/index.js';
import { SECRET, startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';

const STREAM_HEADERS = ['stream-next-offset', 'stream-up-to-date', 'stream-closed', 'stream-ttl', 'etag', 'location'];

async function call(r: TestRelay, method: string, id: string, token?: string, init: RequestInit = {}): Promise<{ status: number; body: string; headers: Headers }> {
  const res = await fetch(`${r.url}/v1/stream/${id}`, {
    ...init,
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.headers as Record<string, string> | undefined) },
  });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

/** What must be the same whether or not the stream exists (and whatever it holds). */
function reveal(a: { status: number; body: string; headers: Headers }): unknown {
  return { status: a.status, body: a.body, stream: STREAM_HEADERS.map((h) => a.headers.get(h)) };
}

const text = { headers: { 'content-type': 'text/plain' } };

describe('stream access', () => {
  let r: TestRelay | undefined;
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });

  it('token mode (default): every request needs a token for that stream id', async () => {
    r = await startRelay();
    expect(r.relay.config.streams).toBe('token');
    const own = await r.token('notes', 'alice', 'user');
    expect((await call(r, 'PUT', 'notes', undefined, text)).status).toBe(401);
    expect((await call(r, 'PUT', 'notes', own, { ...text, body: 'one' })).status).toBe(201);
    expect((await call(r, 'POST', 'notes', own, { ...text, body: ' two' })).status).toBe(204);
    expect((await call(r, 'GET', 'notes', own)).body).toBe('one two');
    expect((await call(r, 'GET', 'notes', r.adminToken)).body).toBe('one two');
    for (const method of ['GET', 'HEAD', 'POST', 'DELETE']) expect((await call(r, method, 'notes', undefined, text)).status).toBe(401);
    const forged = await mintToken(`${SECRET}-not-ours`, { session: 'notes', participant: 'alice', role: 'user' });
    expect((await call(r, 'GET', 'notes', forged)).status).toBe(401);
    expect((await call(r, 'GET', 'notes', 'not-a-token')).status).toBe(401);
  });

  it("a token for another stream gets 403 and learns nothing: the same answer for an existing stream and a missing one", async () => {
    r = await startRelay();
    const sid = await r.createSession();
    await call(r, 'PUT', 'secret', r.adminToken, { ...text, body: 'classified' });
    const wrong = await r.token('elsewhere', 'mallory', 'user');
    for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE']) {
      const init = method === 'POST' || method === 'PUT' ? { ...text, body: 'x' } : {};
      const onSession = await call(r, method, sid, wrong, init);
      const onStream = await call(r, method, 'secret', wrong, init);
      const onNothing = await call(r, method, 'no-such-stream', wrong, init);
      expect(onSession.status, method).toBe(403);
      expect(reveal(onSession)).toEqual(reveal(onNothing));
      expect(reveal(onStream)).toEqual(reveal(onNothing));
      expect(onSession.body).not.toContain('classified');
    }
    // Live reads too.
    const live = await call(r, 'GET', `${sid}?offset=-1&live=sse`, wrong);
    expect(live.status).toBe(403);
    // And nothing changed.
    expect((await call(r, 'GET', 'secret', r.adminToken)).body).toBe('classified');
  });

  it('open mode: streams made over HTTP need no token; session timelines still need theirs', async () => {
    r = await startRelay({ streams: 'open' });
    expect((await call(r, 'PUT', 'public', undefined, { ...text, body: 'hi' })).status).toBe(201);
    expect((await call(r, 'GET', 'public')).body).toBe('hi');
    expect((await call(r, 'DELETE', 'public')).status).toBe(204);

    const sid = await r.createSession();
    const wsUser = await r.token(sid, 'alice', 'user');
    await call(r, 'POST', sid, wsUser, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'text.delta', data: { text: 'private' } }) });
    for (const method of ['GET', 'HEAD', 'POST', 'DELETE', 'PUT']) {
      const anon = await call(r, method, sid, undefined, method === 'POST' || method === 'PUT' ? { ...text, body: 'x' } : {});
      expect(anon.status, method).toBe(401);
      expect(anon.body).not.toContain('private');
      expect(anon.headers.get('stream-next-offset')).toBeNull();
    }
    expect((await call(r, 'GET', sid, await r.token('other', 'mallory', 'user'))).status).toBe(403);
    const own = await call(r, 'GET', sid, wsUser);
    expect(own.status).toBe(200);
    expect(JSON.parse(own.body)).toMatchObject([{ kind: 'text.delta', data: { text: 'private' } }]);
    // Deleting a session timeline is the session API's business: admin only.
    expect((await call(r, 'DELETE', sid, wsUser)).status).toBe(403);
    expect((await call(r, 'DELETE', sid, r.adminToken)).status).toBe(204);
    expect((await call(r, 'GET', sid, wsUser)).status).toBe(404);
  });
});
