import type { FastifyRequest } from 'fastify';
import { ANY_SESSION, LifelineError, verifyToken } from '../protocol/index.js';
import type { TokenClaims } from '../protocol/index.js';

/** The bearer token of a request: `Authorization: Bearer …`, or `?token=…` (browsers' WebSocket). */
export function tokenOf(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice(7).trim();
  const query = req.query as Record<string, unknown> | undefined;
  const t = query?.['token'];
  return typeof t === 'string' && t.length > 0 ? t : undefined;
}

export class Authenticator {
  readonly #secret: string;
  constructor(secret: string) {
    this.#secret = secret;
  }

  async claims(req: FastifyRequest): Promise<TokenClaims> {
    const token = tokenOf(req);
    if (!token) throw new LifelineError('UNAUTHORIZED', 'no token');
    return verifyToken(this.#secret, token);
  }

  /** A token for this session (or an admin token). */
  async forSession(req: FastifyRequest, sessionId: string): Promise<TokenClaims> {
    const claims = await this.claims(req);
    // Admin tokens and worker (agent, every-session) tokens reach any session.
    if (claims.session === ANY_SESSION && (claims.role === 'admin' || claims.role === 'agent')) return claims;
    if (claims.session !== sessionId) throw new LifelineError('FORBIDDEN', 'token is for another session');
    return claims;
  }

  async admin(req: FastifyRequest): Promise<TokenClaims> {
    const claims = await this.claims(req);
    if (claims.role !== 'admin') throw new LifelineError('FORBIDDEN', 'needs an admin token');
    return claims;
  }
}
