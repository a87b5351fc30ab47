export { createRelay } from './relay.js';
export type { Relay } from './relay.js';
export { parseConfig, RelayConfigSchema } from './config.js';
export type { RelayConfig, RelayConfigInput } from './config.js';
export { RelayMetrics } from './metrics.js';
