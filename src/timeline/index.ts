export { Timeline } from './timeline.js';
export type { TimelineOptions, TimelineObserver, CreateSessionOptions, AppendInput, AppendResult, CloseResult, SessionInfo } from './timeline.js';
export { TimelineReader, toTimelineEvent } from './reader.js';
export { PresenceTracker, RELAY_ORIGIN } from './presence.js';
export type { ParticipantPresence, DevicePresence, PresenceOptions } from './presence.js';
export { LeaseManager } from './leases.js';
export type { LeaseOptions, Grant } from './leases.js';
