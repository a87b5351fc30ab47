import { z } from 'zod';
import { LifelineError } from '../protocol/index.js';

/** Relay configuration, validated once at start-up. */
export const RelayConfigSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(8787),
  /** `memory` or `sqlite:PATH`. */
  store: z.string().regex(/^(memory|sqlite:.+|nats:\/\/.+)$/, 'store is memory, sqlite:PATH or nats://host:port[,host:port…]').default('sqlite:./data/lifeline.db'),
  sqliteSync: z.enum(['full', 'normal']).default('normal'),
  /** How often SQLite's WAL is checkpointed and fsynced in the background: in `normal` mode, the longest a committed append waits to be durable. */
  sqliteCheckpointMs: z.number().int().min(10).max(60_000).default(200),
  /** HMAC secret that signs access tokens; at least 16 characters. */
  secret: z.string().min(16, 'the secret must be at least 16 characters'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('warn'),
  maxFrameBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(256 * 1024),
  window: z.number().int().min(1).max(65536).default(512),
  /** Ping interval the relay asks of clients that announce none (WebRTC clients use 100 ms). */
  heartbeatMs: z.number().int().min(50).max(60_000).default(250),
  idleTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
  sweepIntervalMs: z.number().int().min(100).default(30_000),
  ringSize: z.number().int().min(16).max(1_000_000).default(1024),
  /** How long a device whose link was lost stays `reconnecting` before it is `gone`. */
  presenceGraceMs: z.number().int().min(0).max(600_000).default(5000),
  /** How long an agent's lease outlives its connection going silent or away (sub-second). */
  leaseTtlMs: z.number().int().min(50).max(600_000).default(500),
  /** How long a handoff waits for the worker it names before any worker may take the session. */
  handoffWaitMs: z.number().int().min(0).max(600_000).default(10_000),
  /** Demo mode: `POST /demo/session` hands out sessions for the example echo agent (docs/BROWSER.md). Local use only. */
  demo: z.boolean().default(false),
  /** Write presence changes into session timelines (as `presence` events from the relay). */
  presenceEvents: z.boolean().default(true),
  /** Addresses WebRTC advertises and pairs; empty for every interface. */
  rtcIceHosts: z.array(z.ipv4()).default([]),
  /** UDP port range for WebRTC, e.g. [40000, 40999]; absent for any. */
  rtcPortRange: z.tuple([z.number().int().min(1024).max(65535), z.number().int().min(1024).max(65535)]).optional(),
  /**
   * Durable Streams at /v1/stream/{id} (docs/HTTP.md): `token` (default) needs a token for the
   * stream's id on every request; `open` lets streams created over HTTP be used without one
   * (session timelines always need their token).
   */
  streams: z.enum(['open', 'token']).default('token'),
  /** How long a Durable Streams long-poll waits for data before answering 204. */
  streamLongPollMs: z.number().int().min(100).max(300_000).default(20_000),
  /** Largest Durable Streams append (POST/PUT body). */
  streamMaxBodyBytes: z.number().int().min(1024).max(256 * 1024 * 1024).default(8 * 1024 * 1024),
});

export type RelayConfig = z.infer<typeof RelayConfigSchema>;
export type RelayConfigInput = z.input<typeof RelayConfigSchema>;

export function parseConfig(input: RelayConfigInput): RelayConfig {
  const parsed = RelayConfigSchema.safeParse(input);
  if (!parsed.success) throw new LifelineError('BAD_REQUEST', `invalid configuration: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
