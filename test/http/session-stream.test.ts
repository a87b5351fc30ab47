/**
 * Session timelines as Durable Streams: what the WebSocket SDK writes, @durable-streams/client
 * reads at the same offsets (and the other way round), with the session token.
 */
import { join } from 'node:path';
import { DurableStream } from '@durable-streams/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Json, TimelineEvent } from '../../src/protocol/index.js';
import { connect } from '../../src/sdk/index.js';
import type { LifelineSession } from '../../src/sdk/index.js';
import { startRelay, tempDir } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { waitFor } from '../support/wait.js';

/** The JSON form docs/HTTP.md gives for an event: the event itself, `bin` as base64. */
function asJson(e: TimelineEvent): Json {
  const out: Record<string, Json> = { offset: e.offset, ts: e.ts, from: { ...e.from }, kind: e.kind, data: e.data };
  if (e.track !== undefined) out['track'] = e.track;
  if (e.bin !== undefined) out['bin'] = Buffer.from(e.bin).toString('base64');
  return out;
}

function collect(session: LifelineSession): TimelineEvent[] {
  const got: TimelineEvent[] = [];
  session.on('event', (e) => void got.push(e));
  return got;
}

async function readAll(url: string, token: string, offset: string): Promise<Json[]> {
  const stream = new DurableStream({ url, headers: { Authorization: `Bearer ${token}` } });
  const res = await stream.stream<Json>({ offset, live: false });
  return res.json();
}

for (const store of ['memory', 'sqlite'] as const) {
  describe(`session timelines over Durable Streams HTTP (${store})`, () => {
    let r: TestRelay;
    let sid: string;
    let dir: { dir: string; remove: () => void } | undefined;
    const sessions: LifelineSession[] = [];

    beforeEach(async () => {
      dir = store === 'sqlite' ? tempDir('lifeline-http-') : undefined;
      r = await startRelay(dir ? { store: `sqlite:${join(dir.dir, 'relay.db')}` } : {});
      sid = await r.createSession();
    });
    afterEach(async () => {
      for (const s of sessions.splice(0)) s.close();
      await r.close();
      dir?.remove();
    });

    it('reads back exactly the events written over WebSocket, from the start and from an offset', async () => {
      const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent') });
      const user = await connect({ url: r.url, token: await r.token(sid, 'alice', 'user') });
      sessions.push(agent, user);
      const seen = collect(user);
      const audio = new Uint8Array([0xf8, 0xff, 0xfe, 0x00, 0x0a, 0x0d]);
      void agent.append('text.delta', { text: 'Hel', id: 'm1' });
      void agent.append('text.delta', { text: 'lo\n"there"', id: 'm1' });
      void agent.append('tool.call', { id: 'c1', name: 'lookup', arguments: { q: ['x', 1, null] } });
      void agent.append('audio.frame', { codec: 'opus', rtpSeq: 7 }, { bin: audio, track: 'mic' });
      void user.append('text.done', { id: 'm1' });
      await agent.flush();
      await user.flush();
      await waitFor(() => seen.length === 5, { message: 'user saw all five events' });

      const token = await r.token(sid, 'carol', 'user');
      const url = `${r.url}/v1/stream/${sid}`;
      expect(await readAll(url, token, '-1')).toEqual(seen.map(asJson));
      expect(await readAll(url, token, seen[1]!.offset)).toEqual(seen.slice(2).map(asJson));
      expect(await readAll(url, token, seen[4]!.offset)).toEqual([]);
      const audioEvent = (await readAll(url, token, seen[2]!.offset))[0] as { bin: string };
      expect(Buffer.from(audioEvent.bin, 'base64')).toEqual(Buffer.from(audio));
    });

    it('an event appended over HTTP reaches WebSocket readers at the same offset; one producer model', async () => {
      const userToken = await r.token(sid, 'alice', 'user');
      const ws = await connect({ url: r.url, token: userToken, device: 'tab-1' });
      sessions.push(ws);
      const seen = collect(ws);
      const first = await ws.append('text.delta', { text: 'from ws' });

      const post = (producer: [string, number, number], body: Json): Promise<Response> =>
        fetch(`${r.url}/v1/stream/${sid}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${userToken}`,
            'content-type': 'application/json',
            'producer-id': producer[0],
            'producer-epoch': String(producer[1]),
            'producer-seq': String(producer[2]),
          },
          body: JSON.stringify(body),
        });
      const res = await post(['http-1', 0, 0], { kind: 'text.delta', data: { text: 'from http' }, track: 't' });
      expect(res.status).toBe(200);
      const offset = res.headers.get('stream-next-offset');
      expect(Number(offset)).toBe(Number(first) + 1);
      await waitFor(() => seen.length === 2, { message: 'ws reader got the HTTP append' });
      expect(seen[1]).toMatchObject({ offset, kind: 'text.delta', track: 't', data: { text: 'from http' }, from: { participant: 'alice', role: 'user' } });
      // A retry over HTTP is deduplicated by the same producer rules, with the original offset.
      const retry = await post(['http-1', 0, 0], { kind: 'text.delta', data: { text: 'again' } });
      expect(retry.status).toBe(204);
      expect(retry.headers.get('stream-next-offset')).toBe(offset);
      // Invalid event bodies are refused as on WebSocket.
      expect((await post(['http-1', 0, 1], { kind: 'audio.frame', data: { codec: 'opus' } })).status).toBe(400);
      expect((await post(['http-1', 0, 1], { kind: 'presence', data: { state: 'x' } })).status).toBe(403);
      expect((await post(['@agent', 1, 0], { kind: 'text.delta', data: { text: 'x' } })).status).toBe(403);
      // The WebSocket SDK's producer (scoped to alice) is the one HTTP sees: its seq 0 is a retry.
      const { id, epoch } = ws.producer;
      const dup = await post([id, epoch, 0], { kind: 'text.delta', data: { text: 'dup' } });
      expect(dup.status).toBe(204);
      expect(dup.headers.get('stream-next-offset')).toBe(first);
      // …and a stale epoch of it is fenced over HTTP as over WebSocket.
      if (epoch > 0) expect((await post([id, epoch - 1, 0], { kind: 'text.delta', data: { text: 'zombie' } })).status).toBe(403);
    });

    it('a live SSE reader (Durable Streams client) gets what WebSocket writes next', async () => {
      const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent') });
      sessions.push(agent);
      await agent.append('text.delta', { text: 'before' });
      const stream = new DurableStream({ url: `${r.url}/v1/stream/${sid}`, headers: { Authorization: `Bearer ${await r.token(sid, 'carol', 'user')}` } });
      const res = await stream.stream<{ offset: string; data: { text: string } }>({ offset: '-1', live: 'sse' });
      const got: { offset: string; data: { text: string } }[] = [];
      const off = res.subscribeJson((batch) => void got.push(...batch.items));
      await waitFor(() => got.length === 1, { message: 'catch-up over SSE' });
      const offsets = [await agent.append('text.delta', { text: 'a' }), await agent.append('text.delta', { text: 'b' })];
      await waitFor(() => got.length === 3, { message: 'live events over SSE' });
      off();
      res.cancel();
      expect(got.map((e) => e.data.text)).toEqual(['before', 'a', 'b']);
      expect(got.slice(1).map((e) => e.offset)).toEqual(offsets);
    });

    it('closing a session over HTTP closes it for every transport', async () => {
      const token = await r.token(sid, 'alice', 'user');
      const ws = await connect({ url: r.url, token });
      sessions.push(ws);
      const last = await ws.append('text.delta', { text: 'bye' });
      const close = await fetch(`${r.url}/v1/stream/${sid}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'stream-closed': 'true' } });
      expect(close.status).toBe(204);
      expect(close.headers.get('stream-next-offset')).toBe(last);
      const refused = await ws.append('text.delta', { text: 'too late' }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toMatchObject({ code: 'STREAM_CLOSED' });
      const head = await fetch(`${r.url}/v1/stream/${sid}`, { method: 'HEAD', headers: { authorization: `Bearer ${token}` } });
      expect(head.headers.get('stream-closed')).toBe('true');
      expect(head.headers.get('stream-next-offset')).toBe(last);
    });

    it('forking a session at an offset gives a new session that shares its history', async () => {
      const agent = await connect({ url: r.url, token: await r.token(sid, 'bot', 'agent') });
      sessions.push(agent);
      const offsets: string[] = [];
      for (const text of ['q1', 'a1', 'q2', 'a2']) offsets.push(await agent.append('text.delta', { text }));
      const forkId = `${sid}-branch`;
      const res = await fetch(`${r.url}/v1/stream/${forkId}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${r.adminToken}`, 'stream-forked-from': `/v1/stream/${sid}`, 'stream-fork-offset': offsets[1]! },
      });
      expect(res.status).toBe(201);
      expect(res.headers.get('content-type')).toBe('application/json');
      // The branch is a session: a WebSocket client joins it and sees the shared history, then its own.
      const branch = await connect({ url: r.url, token: await r.token(forkId, 'alice', 'user') });
      sessions.push(branch);
      const seen = collect(branch);
      await waitFor(() => seen.length === 2, { message: 'shared history' });
      expect(seen.map((e) => [e.offset, (e.data as { text: string }).text])).toEqual([
        [offsets[0], 'q1'],
        [offsets[1], 'a1'],
      ]);
      const regenerated = await branch.append('text.delta', { text: 'q2 (edited)' });
      expect(regenerated).toBe(offsets[2]);
      const original = await readAll(`${r.url}/v1/stream/${sid}`, r.adminToken, '-1');
      expect(original.map((e) => (e as { data: { text: string } }).data.text)).toEqual(['q1', 'a1', 'q2', 'a2']);
      // Forking a session needs an admin token: a session token names one session only.
      const denied = await fetch(`${r.url}/v1/stream/${sid}-other`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${await r.token(`${sid}-other`, 'alice', 'user')}`, 'stream-forked-from': `/v1/stream/${sid}` },
      });
      expect(denied.status).toBe(403);
    });
  });
}
