import { z } from 'zod';
import { EventKindSchema, IdSchema, JsonSchema, OffsetSchema, OriginSchema, RoleSchema, TrackSchema } from './events.js';
import type { TimelineEvent } from './events.js';
import { ERROR_CODE_LIST, type ErrorCode } from './errors.js';
import { NOW_OFFSET } from './offsets.js';

/** Protocol version carried in hello/welcome. */
export const PROTOCOL_VERSION = 1;

const Uint8 = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes');
const Seq = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const Epoch = z.number().int().nonnegative().max(2 ** 31);

export const ProducerRefSchema = z.object({ id: IdSchema, epoch: Epoch, seq: Seq });
export type ProducerRef = z.infer<typeof ProducerRefSchema>;

/** Where a reader starts: after an offset, `-1` (from the start) or `now` (only new events). */
export const ResumePointSchema = z.union([OffsetSchema, z.literal(NOW_OFFSET)]);

/**
 * Optional behaviours, named in `hello.features` (what the client understands) and
 * `welcome.features` (what the relay does). `subscribed`: the relay answers each `subscribe` with
 * a `subscribed` frame (only to clients that name it). `kinds`: the relay honours kind filters.
 */
export const PROTOCOL_FEATURES = ['subscribed', 'kinds'] as const;
const FeaturesSchema = z.array(z.string().min(1).max(64)).max(32);

/** A read stream's kind filter: 1 to all of the event kinds, each at most once. */
export const KindFilterSchema = z
  .array(EventKindSchema)
  .min(1)
  .max(EventKindSchema.options.length)
  .refine((kinds) => new Set(kinds).size === kinds.length, 'each kind at most once');

// ---- client → relay -------------------------------------------------------------------------

export const HelloSchema = z.object({
  type: z.literal('hello'),
  v: z.literal(PROTOCOL_VERSION),
  device: IdSchema.optional(),
  /** Deliver events after this point. Absent: this connection only writes. */
  resume: ResumePointSchema.optional(),
  /** Producer ids whose state the client wants in the welcome (to continue their seq). */
  producers: z.array(IdSchema).max(16).optional(),
  /** Flow-control window: events the relay may send beyond the last ack. */
  window: z.number().int().min(1).max(65536).optional(),
  /** The client's ping interval; the relay counts 2.5 silent intervals as a lost link. */
  heartbeatMs: z.number().int().min(10).max(60_000).optional(),
  /**
   * False: events this device appends from now on are not sent back to it (an agent streaming
   * tokens needs the others' events, not its own). Catch-up from `resume` still carries everything
   * that was in the timeline at `hello`. Default true.
   */
  echo: z.boolean().optional(),
  /**
   * Only events of these kinds are sent (catch-up and live); the others are skipped and need no
   * ack. A device that plays audio from its media track leaves out `audio.frame`. Default: all.
   */
  kinds: KindFilterSchema.optional(),
  /** Optional behaviours this client understands (PROTOCOL_FEATURES; unknown names are ignored). */
  features: FeaturesSchema.optional(),
});

export const AppendSchema = z.object({
  type: z.literal('append'),
  producer: ProducerRefSchema,
  kind: EventKindSchema,
  track: TrackSchema.optional(),
  data: JsonSchema,
  bin: Uint8.optional(),
});

export const AckSchema = z.object({ type: z.literal('ack'), offset: OffsetSchema });
/** Moves the event stream; with `kinds`, the stream's kind filter is replaced from there on. */
export const SubscribeSchema = z.object({ type: z.literal('subscribe'), from: ResumePointSchema, kinds: KindFilterSchema.optional() });
export const PingSchema = z.object({ type: z.literal('ping'), id: z.number().int().nonnegative(), t: z.number().optional() });

/** An agent role in a session (one lease holder per role), e.g. `assistant`. */
export const RoleNameSchema = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/, 'role names use [A-Za-z0-9._-]');

/**
 * Claim the lease of a role: the relay grants epoch + 1 (fencing every older holder), or, with
 * `epoch`, re-attaches this participant to the lease it already holds at that epoch (after a
 * reconnect or a relay restart) without fencing itself.
 */
export const ClaimSchema = z.object({ type: z.literal('claim'), role: RoleNameSchema, epoch: Epoch.optional() });
/** Give the lease up; with `handoff`, the relay assigns the session to that worker next. */
export const ReleaseSchema = z.object({
  type: z.literal('release'),
  role: RoleNameSchema,
  handoff: z.object({ to: IdSchema, context: JsonSchema.optional() }).optional(),
});
/** The lease holder has fully handled everything up to `offset` (a replacement starts there). */
export const CommitSchema = z.object({ type: z.literal('commit'), role: RoleNameSchema, offset: OffsetSchema });
/** On the worker channel: this worker takes sessions for these roles. */
export const RegisterSchema = z.object({
  type: z.literal('register'),
  worker: IdSchema,
  roles: z.array(RoleNameSchema).min(1).max(16),
  capacity: z.number().int().min(1).max(100_000),
});

export const ClientFrameSchema = z.discriminatedUnion('type', [
  HelloSchema,
  AppendSchema,
  AckSchema,
  SubscribeSchema,
  PingSchema,
  ClaimSchema,
  ReleaseSchema,
  CommitSchema,
  RegisterSchema,
]);
export type ClientFrame = z.infer<typeof ClientFrameSchema>;
export type HelloFrame = z.infer<typeof HelloSchema>;
export type AppendFrame = z.infer<typeof AppendSchema>;

// ---- relay → client -------------------------------------------------------------------------

export const ProducerStateSchema = z.object({ id: IdSchema, epoch: Epoch, seq: z.number().int().min(-1) });
export type ProducerState = z.infer<typeof ProducerStateSchema>;

export const WelcomeSchema = z.object({
  type: z.literal('welcome'),
  v: z.literal(PROTOCOL_VERSION),
  session: IdSchema,
  participant: IdSchema,
  device: IdSchema,
  role: RoleSchema,
  /** Offset of the newest committed event when the connection was accepted. */
  head: OffsetSchema,
  producers: z.array(ProducerStateSchema),
  heartbeatMs: z.number().int().positive(),
  window: z.number().int().positive(),
  maxFrameBytes: z.number().int().positive(),
  /** Optional behaviours this relay has (PROTOCOL_FEATURES); absent from older relays. */
  features: FeaturesSchema.optional(),
});

export const EventSchema = z.object({
  offset: OffsetSchema,
  ts: z.number(),
  from: OriginSchema,
  kind: EventKindSchema,
  track: TrackSchema.optional(),
  data: JsonSchema,
  bin: Uint8.optional(),
});

export const EventFrameSchema = z.object({ type: z.literal('event'), event: EventSchema });

export const AppendedSchema = z.object({
  type: z.literal('appended'),
  producer: ProducerRefSchema,
  offset: OffsetSchema,
  /** True when this append was a retry of one already committed; `offset` is the original. */
  duplicate: z.boolean(),
});

export const PongSchema = z.object({ type: z.literal('pong'), id: z.number().int().nonnegative(), t: z.number().optional() });

export const ErrorFrameSchema = z.object({
  type: z.literal('error'),
  code: z.enum(ERROR_CODE_LIST as [ErrorCode, ...ErrorCode[]]),
  message: z.string(),
  /** The append this error answers, when it answers one. */
  producer: ProducerRefSchema.optional(),
  /** True when the relay closes the connection after this frame. */
  fatal: z.boolean(),
});

/** A lease granted: produce as `@<role>` at `epoch`; start reading after `cursor`. */
export const LeaseSchema = z.object({
  type: z.literal('lease'),
  role: RoleNameSchema,
  holder: IdSchema,
  epoch: Epoch,
  cursor: OffsetSchema,
});

/** On the worker channel: take this session's role (new session, expired lease, or handoff). */
export const AssignSchema = z.object({
  type: z.literal('assign'),
  session: IdSchema,
  role: RoleNameSchema,
  reason: z.enum(['created', 'expired', 'released', 'handoff']),
  from: IdSchema.optional(),
  context: JsonSchema.optional(),
});

/** The relay asks the client to restart ICE on its peer connection (WebRTC only). */
export const RestartSchema = z.object({ type: z.literal('restart'), reason: z.string().max(200) });

/**
 * Answer to `subscribe`: the event stream has moved. Every `event` after this frame belongs to the
 * moved stream (it starts after `from`, under the new kind filter); events between the
 * `subscribe` and this frame were sent before the move.
 */
export const SubscribedSchema = z.object({ type: z.literal('subscribed'), from: OffsetSchema });

export const ServerFrameSchema = z.discriminatedUnion('type', [
  WelcomeSchema,
  EventFrameSchema,
  AppendedSchema,
  PongSchema,
  ErrorFrameSchema,
  RestartSchema,
  SubscribedSchema,
  LeaseSchema,
  AssignSchema,
]);
export type ServerFrame = z.infer<typeof ServerFrameSchema>;
export type WelcomeFrame = z.infer<typeof WelcomeSchema>;
export type AppendedFrame = z.infer<typeof AppendedSchema>;
export type ErrorFrame = z.infer<typeof ErrorFrameSchema>;

export type EventFrame = { type: 'event'; event: TimelineEvent };

export type AnyFrame = ClientFrame | ServerFrame;
