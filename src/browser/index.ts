/**
 * Lifeline for browsers, built to one ESM bundle (`dist/browser/lifeline.js`, served by the relay
 * at `/lifeline.js`):
 *
 *   import { LifelineClient } from '/lifeline.js';
 *   const client = await LifelineClient.connect({ token, microphone: true });
 *   client.on('text', (t) => render(t.id, t.text));
 *
 * The same client core as the Node SDK (src/sdk/session.ts) on RTCPeerConnection and WebSocket.
 */
export { LifelineClient, tokenClaims } from './client.js';
export type { BrowserClientOptions, BrowserClientEvents, TextUpdate, ToolCall, ToolResult, AudioPlaybackState } from './client.js';
export { DeviceState } from './device-state.js';
export type { DeviceSnapshot } from './device-state.js';
export { browserWebRtcTransport, BrowserRtcLink } from './webrtc-transport.js';
export type { BrowserWebRtcOptions } from './webrtc-transport.js';
export { browserWsTransport, browserWsUrl } from './ws-transport.js';
export { LifelineSession } from '../sdk/session.js';
export type { StateChange, ConnectionState, SessionOptions } from '../sdk/session.js';
export { LifelineError, asPresenceChange, formatOffset, parseOffset } from '../protocol/index.js';
export type { TimelineEvent, Json, PresenceChange, Origin, EventKind } from '../protocol/index.js';
