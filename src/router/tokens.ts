import crypto from 'node:crypto'

/**
 * Login tokens (in a link, minutes) and sessions (in a cookie, hours) share one format:
 * base64url(JSON payload) "." base64url(HMAC-SHA256). The HMAC input starts with the token's
 * purpose, so a login token is never accepted as a session or the other way round, and the
 * payload names the subdomain, so neither carries over to another app. The signature only spares
 * the database forged tokens: each names a row (`id`) that must still be there, a link's row is
 * used up by its first visit and a session's row ends with logout or its key.
 */
export interface TokenClaims {
  /** The login link's or the session's row id. */
  id: string
  subdomain: string
  userId: string
  email: string
  /** Expiry, ms since the epoch. */
  expiresAt: number
}

type Purpose = 'login' | 'session'

export const SESSION_TTL_MS = 12 * 60 * 60 * 1000
/** Upper bound for a login link, whatever the caller asks: it travels in URLs and histories. */
export const MAX_LOGIN_TTL_MS = 15 * 60 * 1000

function mac(secret: Buffer, purpose: Purpose, body: string): Buffer {
  return crypto.createHmac('sha256', secret).update(`rigbox-${purpose}\n${body}`).digest()
}

function sign(secret: Buffer, purpose: Purpose, claims: TokenClaims): string {
  const body = Buffer.from(
    JSON.stringify({
      i: claims.id,
      s: claims.subdomain,
      u: claims.userId,
      e: claims.email,
      x: claims.expiresAt,
    }),
  ).toString('base64url')
  return `${body}.${mac(secret, purpose, body).toString('base64url')}`
}

function verify(
  secret: Buffer,
  purpose: Purpose,
  token: string,
  subdomain: string,
  now: number,
): TokenClaims | null {
  if (token.length > 4096) return null
  const dot = token.indexOf('.')
  if (dot < 1) return null
  const body = token.slice(0, dot)
  const given = Buffer.from(token.slice(dot + 1), 'base64url')
  const expected = mac(secret, purpose, body)
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null
  let p: unknown
  try {
    p = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
  } catch {
    return null
  }
  if (!p || typeof p !== 'object') return null
  const { i, s, u, e, x } = p as Record<string, unknown>
  if (typeof i !== 'string' || !i || i.length > 100) return null
  if (typeof s !== 'string' || typeof u !== 'string' || typeof e !== 'string') return null
  if (typeof x !== 'number' || !(x > now)) return null
  if (s !== subdomain) return null
  return { id: i, subdomain: s, userId: u, email: e, expiresAt: x }
}

/** A signed, short-lived login link token for one app's subdomain (the API hands it out). */
export function issueLoginToken(
  secret: Buffer,
  opts: {
    id: string
    subdomain: string
    userId: string
    email: string
    ttlMs: number
    now?: number
  },
): string {
  const ttl = Math.min(Math.max(0, opts.ttlMs), MAX_LOGIN_TTL_MS)
  return sign(secret, 'login', {
    id: opts.id,
    subdomain: opts.subdomain.toLowerCase(),
    userId: opts.userId,
    email: opts.email.toLowerCase(),
    expiresAt: (opts.now ?? Date.now()) + ttl,
  })
}

export function verifyLoginToken(
  secret: Buffer,
  token: string,
  subdomain: string,
  now = Date.now(),
): TokenClaims | null {
  return verify(secret, 'login', token, subdomain, now)
}

/** The cookie value for a session the control plane has recorded (its id and expiry). */
export function issueSession(secret: Buffer, claims: TokenClaims): string {
  return sign(secret, 'session', claims)
}

export function verifySession(
  secret: Buffer,
  value: string,
  subdomain: string,
  now = Date.now(),
): TokenClaims | null {
  return verify(secret, 'session', value, subdomain, now)
}
