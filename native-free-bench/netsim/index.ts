/** netsim: a userspace network impairment proxy (UDP and TCP) for tests and benchmarks. */
export { UdpProxy, type UdpProxyOptions, type UdpProxyStats } from './udp-proxy.js';
export { TcpProxy, type TcpImpairment, type TcpProxyOptions, type TcpProxyStats, type TcpDirectionStats } from './tcp-proxy.js';
export {
  ImpairedLink,
  MAX_QUEUED_PACKETS,
  NO_IMPAIRMENT,
  mergeImpairment,
  type Count,
  type Direction,
  type DirectionSelector,
  type DirectionStats,
  type DropReason,
  type Impairment,
} from './impairment.js';
export { DelayQueue, type DelayQueueOptions } from './delay-queue.js';
export { NETSIM_ERRORS, NetsimError, isNetsimError, type NetsimErrorCode } from './errors.js';
export { LOOPBACK, isLoopbackIPv4, type Target } from './loopback.js';
export { deriveSeed, mulberry32, type Random } from './random.js';
export { proxiedRtc, type ProxiedRtc, type ProxiedRtcOptions } from './webrtc-path.js';
