import type { FastifyError, FastifyInstance } from 'fastify';
import { z } from 'zod';
import { LifelineError, isLifelineError } from '../protocol/index.js';

/** Validates a request part with a zod schema; throws LifelineError(BAD_REQUEST). */
export function parseRequest<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new LifelineError('BAD_REQUEST', `${what}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

const FASTIFY_CODES: Record<string, LifelineError['code']> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
};

/** Every HTTP error leaves as `{ error: { code, message } }` with the code's status. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | LifelineError, req, reply) => {
    let e: LifelineError;
    if (isLifelineError(err)) e = err;
    else if (err.code && FASTIFY_CODES[err.code]) e = new LifelineError(FASTIFY_CODES[err.code]!, err.message);
    else if (err.statusCode && err.statusCode < 500) e = new LifelineError('BAD_REQUEST', err.message);
    else {
      req.log.error({ err }, 'request failed');
      e = new LifelineError('INTERNAL');
    }
    void reply.status(e.status).send({ error: { code: e.code, message: e.message } });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });
}
