import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { OpusDecoder } from 'opus-decoder';
import { z } from 'zod';
import { IdSchema, LifelineError, formatOffset, mintToken, parseOffset } from '../protocol/index.js';
import type { Json, TimelineEvent } from '../protocol/index.js';
import type { Timeline } from '../timeline/index.js';
import type { Authenticator } from './auth.js';
import { parseRequest } from './http-errors.js';
import type { WorkerPool } from './worker-pool.js';

/** The agent role the demo page's sessions are handed to (the example echo agent's). */
export const DEMO_AGENT_ROLE = 'echo';

export interface StaticRoutesOptions {
  timeline: Timeline;
  auth: Authenticator;
  workers: WorkerPool;
  secret: string;
  /** Serve `POST /demo/session` (creates a session for the echo agent and a user token: local demos only). */
  demo: boolean;
  /** The built browser files (default: dist/browser of this checkout). */
  assetsDir?: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** dist/browser, seen from dist/src/relay (built) or from src/relay (run from source). */
export function defaultAssetsDir(): string {
  for (const rel of ['../../browser/', '../../dist/browser/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}lifeline.js`)) return dir;
  }
  return fileURLToPath(new URL('../../dist/browser/', import.meta.url));
}

const DemoSessionBody = z.object({ participant: IdSchema.optional() });
const Params = z.object({ id: IdSchema });
const EventsQuery = z.object({
  after: z.string().default('-1'),
  limit: z.coerce.number().int().min(1).max(5000).default(1000),
  /** Long poll: wait this long for an event after `after` when there is none yet. */
  waitMs: z.coerce.number().int().min(0).max(30_000).default(0),
});

/** An event as the inspector sees it: the binary payload replaced by its size and energy. */
export interface InspectedEvent extends Omit<TimelineEvent, 'bin'> {
  bytes?: number;
  /** RMS level of the decoded audio frame in dBFS (-100 for silence or an undecodable frame). */
  energyDb?: number;
}

/** Decodes Opus audio frames per track and measures each one's level. */
class EnergyMeter {
  readonly #decoders = new Map<string, OpusDecoder<48000>>();

  async level(track: string, frame: Uint8Array): Promise<number> {
    let d = this.#decoders.get(track);
    if (!d) {
      d = new OpusDecoder<48000>({ channels: 1, sampleRate: 48000 });
      await d.ready;
      this.#decoders.set(track, d);
    }
    try {
      const { channelData, samplesDecoded } = d.decodeFrame(frame);
      const pcm = channelData[0];
      if (!pcm || samplesDecoded === 0) return -100;
      let sum = 0;
      for (let i = 0; i < samplesDecoded; i++) sum += pcm[i]! * pcm[i]!;
      const rms = Math.sqrt(sum / samplesDecoded);
      return rms > 1e-5 ? Math.max(-100, Math.round(20 * Math.log10(rms) * 10) / 10) : -100;
    } catch {
      return -100;
    }
  }

  free(): void {
    for (const d of this.#decoders.values()) d.free();
    this.#decoders.clear();
  }
}

async function inspect(events: TimelineEvent[]): Promise<InspectedEvent[]> {
  const meter = new EnergyMeter();
  try {
    const out: InspectedEvent[] = [];
    for (const e of events) {
      const { bin, ...rest } = e;
      if (!bin) {
        out.push(rest);
        continue;
      }
      const item: InspectedEvent = { ...rest, bytes: bin.length };
      const codec = (e.data as { codec?: Json } | null)?.codec;
      if (e.kind === 'audio.frame' && codec === 'opus') item.energyDb = await meter.level(`${e.from.participant}/${e.from.device}/${e.track ?? ''}`, bin);
      out.push(item);
    }
    return out;
  } finally {
    meter.free();
  }
}

/**
 * The browser side of the relay: the demo page at `/`, the session inspector at
 * `/inspect/:sessionId`, the client bundle at `/lifeline.js`, and two small JSON routes the pages
 * use (see docs/BROWSER.md):
 *   GET  /inspect/:id/events?after=&limit=&waitMs=   events with audio levels (session or admin token)
 *   POST /demo/session                                a session for the echo agent + a user token (demo mode only)
 */
export function registerStaticRoutes(app: FastifyInstance, opts: StaticRoutesOptions): void {
  const dir = opts.assetsDir ?? defaultAssetsDir();
  const cache = new Map<string, Buffer>();
  const file = (name: string): Buffer => {
    let body = cache.get(name);
    if (!body) {
      const path = `${dir}${name}`;
      if (!existsSync(path)) throw new LifelineError('NOT_FOUND', `${name} is not built: run \`npm run build\``);
      body = readFileSync(path);
      // Rebuilt files are picked up on the next start; tests and `npm start` build first.
      cache.set(name, body);
    }
    return body;
  };
  const served = new Set(existsSync(dir) ? readdirSync(dir).filter((f) => /^[a-z0-9-]+\.(js|css|map|svg|html)$/.test(f)) : []);
  const typeOf = (name: string): string => TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream';

  app.get('/', async (_req, reply) => reply.type(TYPES['.html']!).header('cache-control', 'no-store').send(file('index.html')));
  app.get('/inspect', async (_req, reply) => reply.type(TYPES['.html']!).header('cache-control', 'no-store').send(file('inspect.html')));
  app.get('/inspect/:id', async (req, reply) => {
    parseRequest(Params, req.params, 'params');
    return reply.type(TYPES['.html']!).header('cache-control', 'no-store').send(file('inspect.html'));
  });
  app.get('/:asset', async (req, reply) => {
    const name = (req.params as { asset?: string }).asset ?? '';
    if (!served.has(name) && !['lifeline.js', 'demo.js', 'inspect.js', 'style.css'].includes(name)) throw new LifelineError('NOT_FOUND');
    return reply.type(typeOf(name)).header('cache-control', 'no-cache').send(file(name));
  });

  app.get('/inspect/:id/events', async (req) => {
    const { id } = parseRequest(Params, req.params, 'params');
    await opts.auth.forSession(req, id);
    const q = parseRequest(EventsQuery, req.query ?? {}, 'query');
    const after = q.after === '-1' ? 0 : parseOffset(q.after);
    if (after === undefined) throw new LifelineError('BAD_REQUEST', `not an offset: ${q.after}`);
    const reader = await opts.timeline.reader(id, after);
    let events: TimelineEvent[];
    try {
      const timer = q.waitMs > 0 ? setTimeout(() => reader.close(), q.waitMs) : undefined;
      const head = await opts.timeline.head(id);
      events = head > after || q.waitMs > 0 ? await reader.next(q.limit) : [];
      clearTimeout(timer);
    } finally {
      reader.close();
    }
    const head = await opts.timeline.head(id);
    const last = events.length > 0 ? events[events.length - 1]!.offset : formatOffset(after);
    return { events: await inspect(events), next: last, head: formatOffset(head) };
  });

  if (opts.demo) {
    app.post('/demo/session', async (req, reply) => {
      const body = parseRequest(DemoSessionBody, req.body ?? {}, 'body');
      const record = await opts.timeline.createSession({ metadata: { demo: true } });
      opts.workers.assign({ sessionId: record.id, role: DEMO_AGENT_ROLE, reason: 'created' });
      const participant = body.participant ?? `user-${record.id.slice(0, 6)}`;
      const token = await mintToken(opts.secret, { session: record.id, participant, role: 'user', ttlSeconds: 24 * 3600 });
      return reply.status(201).send({ session: record.id, participant, token });
    });
  }
}
