import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { LifelineError } from './errors.js';
import { IdSchema } from './events.js';

/**
 * Access tokens are JWTs signed with HMAC-SHA256 (HS256) using the relay secret. The app's backend
 * mints them; the relay verifies them. A token is scoped to one session (or `*` for admin tokens),
 * one participant and one role, and always expires.
 */
export const TOKEN_ISSUER = 'lifeline';
export const ANY_SESSION = '*';

export const TokenRoleSchema = z.enum(['user', 'agent', 'admin']);
export type TokenRole = z.infer<typeof TokenRoleSchema>;

export interface TokenClaims {
  session: string;
  participant: string;
  role: TokenRole;
  /** Expiry, seconds since the epoch. */
  exp: number;
}

export interface MintOptions {
  session: string;
  participant: string;
  role: TokenRole;
  /** Lifetime in seconds (default one hour). */
  ttlSeconds?: number;
}

const ClaimsSchema = z.object({
  sid: z.union([IdSchema, z.literal(ANY_SESSION)]),
  sub: IdSchema,
  role: TokenRoleSchema,
  exp: z.number(),
});

function keyOf(secret: string): Uint8Array {
  if (secret.length < 16) throw new LifelineError('BAD_REQUEST', 'the relay secret must be at least 16 characters');
  return new TextEncoder().encode(secret);
}

/**
 * Admin tokens are for every session; user tokens for one; agent tokens for one session, or for
 * every session (`*`): a worker's credential, with which it joins the sessions it is assigned.
 */
function scopeOk(role: TokenRole, session: string): boolean {
  if (role === 'admin') return session === ANY_SESSION;
  if (role === 'user') return session !== ANY_SESSION;
  return true;
}

export async function mintToken(secret: string, opts: MintOptions): Promise<string> {
  const ttl = opts.ttlSeconds ?? 3600;
  if (!(ttl > 0)) throw new LifelineError('BAD_REQUEST', 'ttlSeconds must be positive');
  if (!scopeOk(opts.role, opts.session)) {
    throw new LifelineError('BAD_REQUEST', `admin tokens are for every session ("${ANY_SESSION}"); user tokens for one`);
  }
  return new SignJWT({ sid: opts.session, role: opts.role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(TOKEN_ISSUER)
    .setSubject(opts.participant)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + Math.ceil(ttl))
    .sign(keyOf(secret));
}

/** Verifies signature, issuer and expiry. Throws LifelineError(UNAUTHORIZED | TOKEN_EXPIRED). */
export async function verifyToken(secret: string, token: string): Promise<TokenClaims> {
  let payload: unknown;
  try {
    ({ payload } = await jwtVerify(token, keyOf(secret), { issuer: TOKEN_ISSUER, algorithms: ['HS256'] }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw new LifelineError('TOKEN_EXPIRED');
    throw new LifelineError('UNAUTHORIZED');
  }
  const claims = ClaimsSchema.safeParse(payload);
  if (!claims.success) throw new LifelineError('UNAUTHORIZED', 'token claims are malformed');
  if (!scopeOk(claims.data.role, claims.data.sid)) {
    throw new LifelineError('UNAUTHORIZED', 'token scope is malformed');
  }
  return { session: claims.data.sid, participant: claims.data.sub, role: claims.data.role, exp: claims.data.exp };
}
