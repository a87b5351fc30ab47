export type { Store, SessionRecord, StoredEvent, AppendEntry, AppendOutcome, RejectCode, LeaseRecord } from './store.js';
export { leaseProducerId } from './store.js';
export { judgeProducer } from './producer-rules.js';
export type { ProducerVerdict } from './producer-rules.js';
export { openStore } from './open-store.js';
export type { OpenStoreOptions } from './open-store.js';
