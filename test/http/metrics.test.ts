/**
 * The Durable Streams API in /metrics: answers by method and status, appended bytes, and the live
 * readers (long-poll, SSE) open right now.
 */
import { request } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { metric, scrape } from '../support/http.js';
import { startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';

describe('stream metrics', () => {
  let r: TestRelay | undefined;
  afterEach(async () => {
    await r?.close();
    r = undefined;
  });

  it('counts answers by method and status, appended bytes, and open live readers', async () => {
    r = await startRelay({ streams: 'open', streamLongPollMs: 5000 });
    const url = `${r.url}/v1/stream/counted`;
    expect((await fetch(url, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201);
    for (const body of ['one', 'two', 'three']) expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body })).status).toBe(204);
    expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '1' })).status).toBe(409);
    expect((await fetch(`${r.url}/v1/stream/missing`)).status).toBe(404);

    expect(metric(await scrape(r.url), 'lifeline_http_stream_requests_total', { method: 'PUT', status: '201' })).toBe(1);
    expect(metric(await scrape(r.url), 'lifeline_http_stream_requests_total', { method: 'POST', status: '204' })).toBe(3);
    expect(metric(await scrape(r.url), 'lifeline_http_stream_requests_total', { method: 'POST', status: '409' })).toBe(1);
    expect(metric(await scrape(r.url), 'lifeline_http_stream_requests_total', { method: 'GET', status: '404' })).toBe(1);
    expect(metric(await scrape(r.url), 'lifeline_http_stream_appended_bytes_total')).toBe(11);
    expect(metric(await scrape(r.url), 'lifeline_http_stream_live_readers', { mode: 'long-poll' })).toBe(0);

    // One long-poll and one SSE reader at the tail.
    const head = (await fetch(url, { method: 'HEAD' })).headers.get('stream-next-offset')!;
    const polling = fetch(`${url}?offset=${head}&live=long-poll`);
    const sse = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = request(`${url}?offset=${head}&live=sse`, { headers: { accept: 'text/event-stream' } }, resolve);
      req.once('error', reject);
      req.end();
    });
    await vi.waitUntil(async () => (metric(await scrape(r!.url), 'lifeline_http_stream_live_readers', { mode: 'long-poll' })) === 1, { timeout: 5000, interval: 20 });
    expect(metric(await scrape(r.url), 'lifeline_http_stream_live_readers', { mode: 'sse' })).toBe(1);

    expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'four' })).status).toBe(204);
    expect((await polling).status).toBe(200);
    sse.destroy();
    await vi.waitUntil(async () => (metric(await scrape(r!.url), 'lifeline_http_stream_live_readers', { mode: 'sse' })) === 0, { timeout: 5000, interval: 20 });
    expect(metric(await scrape(r.url), 'lifeline_http_stream_live_readers', { mode: 'long-poll' })).toBe(0);
    expect(metric(await scrape(r.url), 'lifeline_http_stream_requests_total', { method: 'GET', status: '200' })).toBe(2); // the long-poll and the SSE stream
    expect(metric(await scrape(r.url), 'lifeline_http_stream_appended_bytes_total')).toBe(15);
  });
});
