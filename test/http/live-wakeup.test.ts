/**
 * Long-poll and SSE wait on the timeline's live readers: while they wait, the store is not read
 * at all; the commit of the next append (or a close) wakes them.
 */
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Timeline } from '../../src/timeline/index.js';
import { registerStreamRoutes } from '../../src/transport/http/index.js';
import { InstrumentedStore } from '../timeline/fixtures.js';
import { waitFor } from '../support/wait.js';

describe('live reads wake on commits, not by polling the store', () => {
  let store: InstrumentedStore;
  let timeline: Timeline;
  let app: FastifyInstance;
  let url: string;

  beforeEach(async () => {
    store = new InstrumentedStore();
    timeline = new Timeline(store);
    app = Fastify();
    await registerStreamRoutes(app, {
      timeline,
      access: 'open',
      auth: { claimsFor: async () => undefined },
      longPollMs: 60_000,
      maxBodyBytes: 1 << 20,
      sseKeepAliveMs: 60_000,
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    expect((await fetch(`${url}/v1/stream/s`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'first' })).status).toBe(201);
  });
  afterEach(async () => {
    await app.close();
    await timeline.close();
  });

  const post = (body: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${url}/v1/stream/s`, { method: 'POST', headers: { 'content-type': 'text/plain', ...headers }, body });

  it('a long-poll at the tail reads nothing from the store while it waits, and answers the next append', async () => {
    const pending = fetch(`${url}/v1/stream/s?offset=0000000000000001&live=long-poll`);
    // Let it settle into waiting, then watch the store for a while.
    await waitFor(() => timeline.liveSessions === 1, { message: 'long-poll holds the session live' });
    const reads = store.readCalls.length;
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(store.readCalls.length).toBe(reads);
    await post('second');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('second');
    expect(res.headers.get('stream-next-offset')).toBe('0000000000000002');
    // Served from the live ring: still no store read.
    expect(store.readCalls.length).toBe(reads);
  });

  it('an SSE reader at the tail gets appends and the close without store reads', async () => {
    const controller = new AbortController();
    const res = await fetch(`${url}/v1/stream/s?offset=0000000000000001&live=sse`, { signal: controller.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    const until = async (needle: string): Promise<void> => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${needle}`);
        text += new TextDecoder().decode(value);
      }
    };
    await until('"upToDate":true');
    const reads = store.readCalls.length;
    await post('two');
    await until('data:two');
    await post('three', { 'stream-closed': 'true' });
    await until('"streamClosed":true');
    const { done } = await reader.read();
    expect(done).toBe(true);
    expect(store.readCalls.length).toBe(reads);
    expect(text.indexOf('data:two')).toBeLessThan(text.indexOf('data:three'));
    controller.abort();
  });
});
