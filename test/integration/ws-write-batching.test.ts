/**
 * The frames one task sends over WebSocket leave in one write: the relay's acknowledgements of a
 * burst of appends, and the SDK's burst of appends itself. `ws` writes each frame with its own
 * cork/uncork, i.e. one `writev` per frame; a socket held for the task gives one `writev` for all.
 */
import { Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocketServer } from 'ws';
import { encodeFrame } from '../../src/protocol/index.js';
import { wsTransport } from '../../src/sdk/index.js';
import { useCleanup } from '../support/fixture.js';
import { waitFor } from '../support/wait.js';

type Writev = (chunks: unknown[], cb: (err?: Error | null) => void) => void;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('WebSocket writes per task', () => {
  it('the relay acknowledges a burst of appends in a few writes, not one per frame', async () => {
    const c = useCleanup();
    const relay = await c.relay();
    const sockets: Socket[] = [];
    relay.relay.app.server.on('upgrade', (_req, socket: Socket) => sockets.push(socket));
    const sid = await relay.createSession();
    const client = await c.raw(relay.url, sid, { token: await relay.token(sid, 'bot', 'agent') });
    await client.hello({ device: 'bot-dev' });
    const server = sockets[0]!;
    const writev = vi.spyOn(server as unknown as { _writev: Writev }, '_writev');

    const n = 50;
    // One message per frame, all written in one turn: the relay reads them in one or a few reads.
    for (let i = 0; i < n; i++) client.sendFrame({ type: 'append', producer: { id: 'p', epoch: 1, seq: i }, kind: 'text.delta', data: { text: `t${i}` } });
    await waitFor(() => client.received.filter((f) => f.type === 'appended').length === n);

    const chunks = writev.mock.calls.reduce((sum, [list]) => sum + list.length, 0);
    // Two chunks (header, payload) per frame, in far fewer calls than frames.
    expect(chunks).toBe(2 * n);
    expect(writev.mock.calls.length).toBeLessThan(10);
  });

  it('the SDK sends the appends of one turn in one write', async () => {
    const c = useCleanup();
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    c.add(() => new Promise<void>((resolve) => wss.close(() => resolve())));
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    let received = 0;
    wss.on('connection', (ws) => ws.on('message', () => received++));
    const port = (wss.address() as AddressInfo).port;
    const link = await wsTransport().connect({ baseUrl: `http://127.0.0.1:${port}`, sessionId: 's', token: 't' }, new AbortController().signal);
    c.add(() => link.close());

    const writev = vi.spyOn(Socket.prototype as unknown as { _writev: Writev }, '_writev');
    const n = 50;
    for (let i = 0; i < n; i++) link.send(encodeFrame({ type: 'append', producer: { id: 'p', epoch: 1, seq: i }, kind: 'text.delta', data: { text: `t${i}` } }));
    // Masked client frames: header and payload per frame, all in one call.
    expect(writev).not.toHaveBeenCalled();
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(writev).toHaveBeenCalledTimes(1);
    expect(writev.mock.calls[0]![0]).toHaveLength(2 * n);
    await waitFor(() => received === n);
  });
});
