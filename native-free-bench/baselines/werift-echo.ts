import WebSocket from 'ws';
import type { RTCDataChannel, RTCPeerConnection } from 'werift';
import { modulePath, startChild } from '../lib/children.js';
import type { ChildServer } from '../lib/children.js';
import { benchChannel, closePeer, firstMessage, localOffer, loopbackPeer } from './werift-peer.js';

/** How the sender reaches the forwarder: its own werift peer connection, or a WebSocket. */
export type Ingress = 'rtc' | 'ws';

/** One sender and one receiver through the werift forwarder (baselines/werift-echo-server). */
export interface ForwardPair {
  /** Sends one message from the sender (a data-channel message, or a WebSocket message). */
  send(data: string): void;
  /** Called for every message the receiving peer gets (after its "ready"). */
  onMessage: ((data: string | Uint8Array) => void) | undefined;
  /** Bytes the sender has queued and not yet handed to the network. */
  readonly bufferedAmount: number;
  close(): void;
}

export interface WeriftEchoBaseline {
  readonly url: string;
  readonly child: ChildServer;
  /** Connects the receiving peer, then the sender; resolves once both are open on both sides. */
  openPair(id: string, ingress: Ingress): Promise<ForwardPair>;
  stop(): Promise<void>;
}

const READY_MS = 15_000;

async function signalOffer(url: string, offer: string): Promise<string> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: offer, signal: AbortSignal.timeout(READY_MS) });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`werift baseline: ${url}: HTTP ${res.status} ${text.slice(0, 160)}`);
  return text;
}

/** A werift peer connection to the forwarder with its channel open and "ready" received. */
async function connectPeer(url: string, what: string, pcs: RTCPeerConnection[]): Promise<RTCDataChannel> {
  const pc = loopbackPeer();
  pcs.push(pc);
  const dc = benchChannel(pc);
  const ready = firstMessage(dc, 'ready', READY_MS, what);
  ready.catch(() => undefined); // awaited below; avoid an unhandled rejection if signaling fails first
  const answer = await signalOffer(url, await localOffer(pc));
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  await ready;
  return dc;
}

function connectSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`werift baseline: no "ready" from ${url} within ${READY_MS} ms`));
    }, READY_MS);
    ws.once('message', (data) => {
      clearTimeout(timer);
      if (String(data) === 'ready') resolve(ws);
      else reject(new Error(`werift baseline: expected "ready", got ${String(data).slice(0, 40)}`));
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`werift baseline: ${url} closed (${code})`));
    });
  });
}

/** Starts the forwarder (baselines/werift-echo-server) as a child process on 127.0.0.1. */
export async function launchWeriftEcho(): Promise<WeriftEchoBaseline> {
  const child = await startChild({ name: 'werift-echo', script: modulePath('native-free-bench/baselines/werift-echo-server'), args: [] });
  const url = child.url;
  return {
    url,
    child,
    async openPair(id, ingress) {
      const base = `${url}/pairs/${encodeURIComponent(id)}`;
      const pcs: RTCPeerConnection[] = [];
      let ws: WebSocket | undefined;
      const closeAll = (): void => {
        for (const pc of pcs) void closePeer(pc);
        ws?.terminate();
        void fetch(base, { method: 'DELETE', signal: AbortSignal.timeout(5000) }).catch(() => undefined);
      };
      try {
        const recv = await connectPeer(`${base}/recv`, `werift baseline ${id} recv`, pcs);
        let sendDc: RTCDataChannel | undefined;
        if (ingress === 'rtc') sendDc = await connectPeer(`${base}/send`, `werift baseline ${id} send`, pcs);
        else {
          ws = await connectSocket(`${base.replace(/^http/, 'ws')}/send-ws`);
          ws.removeAllListeners('close');
          ws.on('error', () => {
            /* counted as loss by the caller if it matters */
          });
        }
        const sock = ws;
        const pair: ForwardPair = {
          onMessage: undefined,
          send(data) {
            if (sendDc) {
              if (sendDc.readyState === 'open') sendDc.send(data);
            } else if (sock && sock.readyState === WebSocket.OPEN) sock.send(data);
          },
          get bufferedAmount() {
            return sendDc ? sendDc.bufferedAmount : (sock?.bufferedAmount ?? 0);
          },
          close: closeAll,
        };
        recv.onMessage.subscribe((data) => pair.onMessage?.(typeof data === 'string' ? data : data.toString('utf8')));
        return pair;
      } catch (err) {
        closeAll();
        throw err;
      }
    },
    stop: () => child.stop(),
  };
}
