import { UdpProxy } from '../../native-free-bench/netsim/index.js';
import { rewriteCandidates } from '../../src/protocol/index.js';
import type { ClientTransport } from '../../src/sdk/index.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { LOOPBACK } from './rtc.js';

/**
 * A WebRTC client transport whose media path runs through netsim UDP proxies, so a test can
 * blackhole or switch it as a real network blip would. Both sides' candidates are rewritten to
 * proxies (the relay's in each answer, the client's in each offer): neither side ever learns the
 * other's real port, so ICE cannot find a pair that bypasses the proxies. Signaling (HTTP) goes
 * direct, as over a TCP path that still works.
 */
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

export function proxiedRtc(opts: { heartbeatMs?: number } = {}): ProxiedRtc {
  const byTarget = new Map<number, Promise<UdpProxy>>();
  const proxies: UdpProxy[] = [];
  let blackholed = false;
  const proxyFor = (port: number): Promise<UdpProxy> => {
    let p = byTarget.get(port);
    if (!p) {
      p = UdpProxy.start({ target: { host: '127.0.0.1', port } }).then((proxy) => {
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
  return {
    transport: webrtcTransport({
      iceHosts: LOOPBACK,
      ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
      mapOffer: behindProxies,
      mapAnswer: behindProxies,
    }),
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
