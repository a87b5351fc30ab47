import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { IdSchema, JsonSchema, LifelineError, RoleNameSchema, mintToken } from '../protocol/index.js';
import type { PresenceTracker, Timeline } from '../timeline/index.js';
import type { Authenticator } from './auth.js';
import type { ConnectionRegistry } from './connection-registry.js';
import type { WorkerPool } from './worker-pool.js';
import { parseRequest } from './http-errors.js';

const CreateSessionBody = z.object({
  id: IdSchema.optional(),
  ttlSeconds: z.number().positive().max(366 * 24 * 3600).optional(),
  idleTtlSeconds: z.number().positive().max(366 * 24 * 3600).optional(),
  metadata: z.record(z.string(), JsonSchema).optional(),
  /** Hand the session to a registered worker of this role right away. */
  agent: z.object({ role: RoleNameSchema }).optional(),
});

const MintTokenBody = z.object({
  participant: IdSchema,
  role: z.enum(['user', 'agent']),
  ttlSeconds: z.number().positive().max(30 * 24 * 3600).optional(),
});

const Params = z.object({ id: IdSchema });

const ListQuery = z.object({
  after: IdSchema.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export interface SessionRoutesOptions {
  timeline: Timeline;
  auth: Authenticator;
  registry: ConnectionRegistry;
  presence: PresenceTracker;
  workers: WorkerPool;
  secret: string;
}

/** The session API: create (admin), describe, delete (admin), mint tokens (admin). */
export function registerSessionRoutes(app: FastifyInstance, opts: SessionRoutesOptions): void {
  const { timeline, auth, registry } = opts;

  app.post('/v1/sessions', async (req, reply) => {
    await auth.admin(req);
    const { agent, ...body } = parseRequest(CreateSessionBody, req.body ?? {}, 'body');
    const record = await timeline.createSession(body);
    if (agent) opts.workers.assign({ sessionId: record.id, role: agent.role, reason: 'created' });
    return reply.status(201).send({ ...record, head: '-1' });
  });

  app.get('/v1/sessions', async (req) => {
    await auth.admin(req);
    const q = parseRequest(ListQuery, req.query ?? {}, 'query');
    const sessions = await timeline.listSessions(q.after, q.limit);
    return { sessions, next: sessions.length === q.limit ? sessions[sessions.length - 1]!.id : null };
  });

  app.get('/v1/sessions/:id', async (req) => {
    const { id } = parseRequest(Params, req.params, 'params');
    await auth.forSession(req, id);
    const info = await timeline.describe(id);
    return { ...info, participants: await opts.presence.clusterView(id) };
  });

  app.delete('/v1/sessions/:id', async (req, reply) => {
    const { id } = parseRequest(Params, req.params, 'params');
    await auth.admin(req);
    for (const c of registry.connections(id)) c.fail(new LifelineError('SESSION_NOT_FOUND', 'session was deleted'));
    if (!(await timeline.deleteSession(id))) throw new LifelineError('SESSION_NOT_FOUND');
    return reply.status(204).send();
  });

  app.post('/v1/sessions/:id/tokens', async (req) => {
    const { id } = parseRequest(Params, req.params, 'params');
    await auth.admin(req);
    const body = parseRequest(MintTokenBody, req.body ?? {}, 'body');
    await timeline.session(id);
    const token = await mintToken(opts.secret, { session: id, ...body });
    return { token };
  });
}
