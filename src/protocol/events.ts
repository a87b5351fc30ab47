import { z } from 'zod';
import { isOffset } from './offsets.js';

/** Who an event came from. `system` is the relay itself (presence, control marks it derives). */
export const RoleSchema = z.enum(['user', 'agent', 'system']);
export type Role = z.infer<typeof RoleSchema>;

export const IdSchema = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:@-]+$/, 'ids use [A-Za-z0-9._:@-]');

export const OffsetSchema = z.string().refine(isOffset, 'not an offset');

export const OriginSchema = z.object({
  participant: IdSchema,
  device: IdSchema,
  role: RoleSchema,
});
export type Origin = z.infer<typeof OriginSchema>;

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export const JsonSchema: z.ZodType<Json> = z.json();

const TextDelta = z.looseObject({ text: z.string(), id: z.string().max(256).optional() });
const TextDone = z.looseObject({ id: z.string().max(256).optional(), text: z.string().optional() });
const ToolCall = z.looseObject({ id: z.string().min(1).max(256), name: z.string().min(1).max(256), arguments: JsonSchema });
const ToolResult = z.looseObject({
  id: z.string().min(1).max(256),
  result: JsonSchema.optional(),
  error: z.string().optional(),
});
const AudioFrame = z.looseObject({
  codec: z.enum(['opus']),
  rtpTimestamp: z.number().int().nonnegative().optional(),
  rtpSeq: z.number().int().nonnegative().optional(),
  durationMs: z.number().positive().optional(),
  late: z.boolean().optional(),
});
const Presence = z.looseObject({ state: z.string().min(1).max(64) });
const Control = z.looseObject({ action: z.string().min(1).max(64) });
const Custom = JsonSchema;

/** The kinds of event a timeline carries, each with the shape of its `data`. */
export const EVENT_DATA_SCHEMAS = {
  'text.delta': TextDelta,
  'text.done': TextDone,
  'tool.call': ToolCall,
  'tool.result': ToolResult,
  'audio.frame': AudioFrame,
  presence: Presence,
  control: Control,
  custom: Custom,
} as const;

export type EventKind = keyof typeof EVENT_DATA_SCHEMAS;
export const EVENT_KINDS = Object.keys(EVENT_DATA_SCHEMAS) as EventKind[];
export const EventKindSchema = z.enum(EVENT_KINDS as [EventKind, ...EventKind[]]);

/** Kinds whose events carry a binary payload (`bin`); for every other kind `bin` is absent. */
export const BINARY_KINDS: ReadonlySet<EventKind> = new Set(['audio.frame']);

export const TrackSchema = z.string().min(1).max(64);

/** What a producer asks to put in the timeline (before the relay gives it an offset). */
export interface EventBody {
  kind: EventKind;
  track?: string | undefined;
  data: Json;
  bin?: Uint8Array | undefined;
}

/** A committed timeline event. */
export interface TimelineEvent extends EventBody {
  offset: string;
  /** Commit time, milliseconds since the epoch, from the relay's clock. */
  ts: number;
  from: Origin;
}

/** Checks `data` (and `bin`) against the kind. Returns an error message or undefined. */
export function checkEventBody(body: EventBody): string | undefined {
  const schema = EVENT_DATA_SCHEMAS[body.kind];
  const parsed = schema.safeParse(body.data);
  if (!parsed.success) return `${body.kind}: ${z.prettifyError(parsed.error)}`;
  const wantsBin = BINARY_KINDS.has(body.kind);
  if (wantsBin && !body.bin) return `${body.kind} needs a binary payload`;
  if (!wantsBin && body.bin) return `${body.kind} takes no binary payload`;
  return undefined;
}
