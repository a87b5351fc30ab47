/**
 * Lifeline SDK for Node: connect to a session, stream and append events, resume without loss.
 *
 *   import { connect, mintToken } from 'lifeline';
 *   const session = await connect({ url, token });
 *   for await (const event of session.stream) { … }
 */
import { LifelineSession } from './session.js';
import type { SessionOptions } from './session.js';
import { wsTransport } from './node-ws.js';

export { LifelineSession, sessionOfToken } from './session.js';
export type { SessionOptions, SessionEvents, StateChange, ConnectionState, AppendOptions, LeaseGrant } from './session.js';
export type { ClientTransport, ClientLink, ConnectTarget, LinkMedia, MediaKind, RtpFrame } from './client-transport.js';
export { AudioPublisher } from './audio/publisher.js';
export type { AudioPublisherOptions, PublisherStats } from './audio/publisher.js';
export { AudioReceiver } from './audio/receiver.js';
export type { AudioReceiverOptions, ReceivedAudio } from './audio/receiver.js';
export { SpeechPlayer } from './audio/player.js';
export type { SpeechPlayerOptions, SkippedSpeech } from './audio/player.js';
export { AgentSpeaker } from './audio/speaker.js';
export type { SpokenTurn } from './audio/speaker.js';
export { SPEECH_ACTIONS, asPlaybackReport } from './audio/control.js';
export type { PlaybackReport } from './audio/control.js';
export { OpusEncoder, PcmDecoder, PCM_RATES, OPUS_RTP_CLOCK, frameSamples } from './audio/opus.js';
export type { PcmRate, OpusEncoderOptions } from './audio/opus.js';
export { ExponentialBackoff, FINAL_ERRORS } from './reconnect-policy.js';
export type { ReconnectPolicy, ReconnectContext, BackoffOptions } from './reconnect-policy.js';
export { EventStream } from './event-stream.js';
export type { PendingAppends } from './outbox.js';
export { AgentWorker } from './node-worker.js';
export type { AgentJob, WorkerOptions } from './node-worker.js';
export { wsTransport, wsUrlOf } from './node-ws.js';
export { mintToken, verifyToken, LifelineError, ERROR_CODES, START_OFFSET, NOW_OFFSET, ANY_SESSION, formatOffset, parseOffset, asPresenceChange } from '../protocol/index.js';
export type { TimelineEvent, EventKind, Json, ErrorCode, MintOptions, TokenClaims, Origin, PresenceChange, DeviceState } from '../protocol/index.js';

/** Connects over WebSocket unless another transport is given. */
export function connect(opts: Omit<SessionOptions, 'transport'> & { transport?: SessionOptions['transport'] }): Promise<LifelineSession> {
  return LifelineSession.connect({ ...opts, transport: opts.transport ?? wsTransport() });
}
