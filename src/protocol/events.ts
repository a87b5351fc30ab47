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
/** Deepest nesting of arrays and objects accepted in any JSON value of a frame or request. */
export const MAX_JSON_DEPTH = 64;

/** True for a JSON value (finite numbers, plain objects, no holes) nested at most `depth` deep. */
export function isJsonWithin(value: unknown, depth: number = MAX_JSON_DEPTH): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (depth === 0) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!(i in value) || !isJsonWithin(value[i], depth - 1)) return false;
        return true;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) if (!isJsonWithin((value as Record<string, unknown>)[key], depth - 1)) return false;
      return true;
    }
    default:
      return false;
  }
}

/**
 * Any JSON value, nested at most MAX_JSON_DEPTH deep. One walk that allocates nothing and hands
 * back the value itself: most values checked here come straight from JSON.parse, and z.json()
 * rebuilt every object and array of them (about half the time of validating an append frame) and
 * overflowed the stack on deep nesting instead of saying why.
 */
export const JsonSchema: z.ZodType<Json> = z.custom<Json>((value) => isJsonWithin(value), {
  error: `expected a JSON value nested at most ${MAX_JSON_DEPTH} deep`,
});

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
