export { registerStreamRoutes, STREAM_PREFIX } from './stream-routes.js';
export type { HttpStreamOptions } from './stream-routes.js';
export type { StreamObserver } from './live-read.js';
export type { StreamAccessMode, StreamAuth } from './stream-access.js';
export { H as STREAM_HEADERS, httpOffset, parseHttpOffset } from './headers.js';
export { modeOf, wireEvent } from './stream-format.js';
export type { StreamMode } from './stream-format.js';
