import WebSocket from 'ws';
import { modulePath, startChild } from '../lib/children.js';
import type { ChildServer } from '../lib/children.js';

/** One sender and one receiver socket through the baseline forwarder. */
export interface WsPair {
  /** Sends one message from the sender socket. */
  send(data: string | Uint8Array): void;
  /** Called for every message the receiver socket gets (after its "ready"). */
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  close(): void;
}

export interface WsEchoBaseline {
  readonly url: string;
  readonly child: ChildServer;
  /** Opens the receiver, then the sender, of pair `id`; resolves once both are registered. */
  openPair(id: string): Promise<WsPair>;
  stop(): Promise<void>;
}

function openSocket(url: string, timeoutMs: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`ws baseline: no "ready" from ${url} within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.once('message', (data) => {
      clearTimeout(timer);
      if (String(data) === 'ready') resolve(ws);
      else reject(new Error(`ws baseline: expected "ready", got ${String(data).slice(0, 40)}`));
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.once('close', (code, reason) => {
      clearTimeout(timer);
      reject(new Error(`ws baseline: ${url} closed (${code} ${reason.toString()})`));
    });
  });
}

/** Starts the forwarder (baselines/ws-echo-server) as a child process on 127.0.0.1. */
export async function launchWsEcho(): Promise<WsEchoBaseline> {
  const child = await startChild({ name: 'ws-echo', script: modulePath('native-free-bench/baselines/ws-echo-server'), args: [] });
  const url = child.url;
  return {
    url,
    child,
    async openPair(id) {
      const recv = await openSocket(`${url}/recv/${encodeURIComponent(id)}`, 10_000);
      let send: WebSocket;
      try {
        send = await openSocket(`${url}/send/${encodeURIComponent(id)}`, 10_000);
      } catch (err) {
        recv.terminate();
        throw err;
      }
      for (const ws of [recv, send]) {
        ws.removeAllListeners('close');
        ws.on('error', () => {
          /* counted as loss by the caller if it matters */
        });
      }
      const pair: WsPair = {
        onMessage: undefined,
        send(data) {
          if (send.readyState === WebSocket.OPEN) send.send(data);
        },
        close() {
          send.terminate();
          recv.terminate();
        },
      };
      recv.on('message', (data, isBinary) => {
        const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        pair.onMessage?.(isBinary ? buf : buf.toString('utf8'));
      });
      return pair;
    },
    stop: () => child.stop(),
  };
}
