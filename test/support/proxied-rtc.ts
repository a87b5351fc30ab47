export { proxiedRtc } from '../../native-free-bench/netsim/webrtc-path.js';
export type { ProxiedRtc, ProxiedRtcOptions } from '../../native-free-bench/netsim/webrtc-path.js';
