import type { FastifyRequest } from 'fastify'
import { ApiError } from '../http/errors.ts'
import type { RateLimiter } from '../http/rate-limit.ts'
import type { AuthMode, RateClass } from '../http/route.ts'
import type { AuthStore, User } from './store.ts'

const BEARER = /^Bearer\s+(\S+)\s*$/i

export function bearerToken(header: string | undefined): string | undefined {
  return header ? BEARER.exec(header)?.[1] : undefined
}

/** The limiter class counting failed authentications per client address. */
export const AUTH_FAILURES = 'failed-auth'

/**
 * The subject failed authentications are counted under: the address, except that an IPv6 client
 * is counted by its /64, which one host usually owns whole and could otherwise rotate through.
 */
export function clientSubject(ip: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (v4) return `ip:${v4[1]}`
  if (!ip.includes(':')) return `ip:${ip}`
  const [head = '', tail = ''] = ip.toLowerCase().split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  const groups = ip.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left
  return `ip6:${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`
}

/**
 * A presented key, checked on behalf of a client address. Failures are counted per address;
 * past the limit the address gets 429 (RATE_LIMITED) before its key is even looked at, so guessing
 * keys is as slow as the limit says. The API guard and the app router share one, so neither is a
 * faster way to guess.
 */
export class KeyCheck {
  constructor(
    private readonly auth: AuthStore,
    private readonly limiter: RateLimiter,
  ) {}

  /** The key's user, or null (a wrong, revoked or missing key: counted as a failure). */
  async authenticate(token: string | undefined, ip: string) {
    const client = clientSubject(ip)
    this.limiter.check(client, AUTH_FAILURES)
    const found = token ? await this.auth.authenticate(token) : undefined
    if (found) return found
    this.limiter.hit(client, AUTH_FAILURES)
    return null
  }
}

/** Authenticates the caller (unless public) and charges the rate limit of the route's class. */
export function makeGuard(keys: KeyCheck, limiter: RateLimiter) {
  return async (
    req: FastifyRequest,
    mode: AuthMode,
    rateClass: RateClass,
  ): Promise<User | null> => {
    if (mode === 'public') {
      limiter.hit(`ip:${req.ip}`, rateClass)
      return null
    }
    const header = req.headers.authorization
    if (!header) {
      throw new ApiError('UNAUTHORIZED', 'missing API key: send "Authorization: Bearer <key>"')
    }
    const token = bearerToken(header)
    const found = await keys.authenticate(token, req.ip)
    if (!found) {
      throw new ApiError(
        'UNAUTHORIZED',
        token
          ? 'invalid or revoked API key'
          : 'malformed Authorization header: send "Authorization: Bearer <key>"',
      )
    }
    limiter.hit(`user:${found.user.id}`, rateClass)
    if (mode === 'admin' && !found.user.is_admin) {
      throw new ApiError('FORBIDDEN', 'this endpoint is for administrators')
    }
    return found.user
  }
}
