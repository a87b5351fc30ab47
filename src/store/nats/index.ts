export { NatsStore, parseNatsSpec } from './nats-store.js';
export type { NatsStoreOptions } from './nats-store.js';
