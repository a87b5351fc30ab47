import { UdpProxy } from './udp-proxy.js';
import { rewriteCandidates } from '../../src/protocol/index.js';
import type { ClientLink, ClientTransport } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { LOOPBACK } from './loopback.js';

/**
 * A WebRTC client transport whose media path runs through netsim UDP proxies, so a test can
 * blackhole or switch it as a real network blip would. Both sides' candidates are rewritten to
 * proxies (the relay's in each answer, the client's in each offer): neither side ever learns the
 * other's real port, so ICE cannot find a pair that bypasses the proxies. Signaling (HTTP) goes
 * direct, as over a TCP path that still works.
 */
export interface ProxiedRtcOptions {
  /** Client heartbeat interval (default: the transport's, 100 ms). */
  heartbeatMs?: number;
  /** One-way delay each proxy adds in each direction, in ms. */
  delayMs?: number;
  /** Links without in-place restart: every loss becomes a full reconnect (the baseline). */
  noRestart?: boolean;
}

export interface ProxiedRtc {
  transport: ClientTransport;
  /** The proxies created so far: in front of the relay's and the client's ICE ports. */
  readonly proxies: UdpProxy[];
  blackhole(on: boolean): void;
  /** Every proxy moves to new source ports (as Wi-Fi → cellular). */
  pathSwitch(): Promise<void>;
  close(): Promise<void>;
}

const HOST_CANDIDATE = /^a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 (\d+) typ host/gm;

export function proxiedRtc(opts: ProxiedRtcOptions = {}): ProxiedRtc {
  const byTarget = new Map<number, Promise<UdpProxy>>();
  const proxies: UdpProxy[] = [];
  let blackholed = false;
  const proxyFor = (port: number): Promise<UdpProxy> => {
    let p = byTarget.get(port);
    if (!p) {
      const delay = opts.delayMs ? { delayMs: opts.delayMs } : {};
      p = UdpProxy.start({ target: { host: '127.0.0.1', port }, upstream: delay, downstream: delay }).then((proxy) => {
        if (blackholed) proxy.blackhole(true);
        proxies.push(proxy);
        return proxy;
      });
      byTarget.set(port, p);
    }
    return p;
  };
  const behindProxies = async (sdp: string): Promise<string> => {
    const map = new Map<number, number>();
    for (const m of sdp.matchAll(HOST_CANDIDATE)) {
      const port = Number(m[1]);
      map.set(port, (await proxyFor(port)).port);
    }
    return rewriteCandidates(sdp, (host, port) => (host === '127.0.0.1' && map.has(port) ? { host, port: map.get(port)! } : undefined));
  };
  const rtc = webrtcTransport({
    iceHosts: [LOOPBACK],
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    mapOffer: behindProxies,
    mapAnswer: behindProxies,
  });
  const transport: ClientTransport = opts.noRestart
    ? {
        name: 'webrtc-no-restart',
        ...(rtc.heartbeatMs !== undefined ? { heartbeatMs: rtc.heartbeatMs } : {}),
        async connect(target, signal) {
          const link = await rtc.connect(target, signal);
          const plain: ClientLink = {
            onMessage: undefined,
            onClose: undefined,
            send: (data) => link.send(data),
            get bufferedAmount() {
              return link.bufferedAmount;
            },
            close: (code, reason) => link.close(code, reason),
          };
          link.onMessage = (data) => plain.onMessage?.(data);
          link.onClose = (code, reason) => plain.onClose?.(code, reason);
          return plain;
        },
      }
    : rtc;
  return {
    transport,
    proxies,
    blackhole(on) {
      blackholed = on;
      for (const proxy of proxies) proxy.blackhole(on);
    },
    async pathSwitch() {
      for (const proxy of proxies) await proxy.pathSwitch();
    },
    async close() {
      for (const proxy of await Promise.all(byTarget.values())) await proxy.close();
    },
  };
}
