export type { FrameLink } from './frame-link.js';
export { pollDrain } from './frame-link.js';
export { ProtocolConnection, DEFAULT_LIMITS } from './protocol-connection.js';
export type { ConnectionLimits, ConnectionObserver } from './protocol-connection.js';
export { registerWsTransport } from './ws/ws-transport.js';
export type { WsTransportOptions } from './ws/ws-transport.js';
