import type { FastifyRequest } from 'fastify'
import { ApiError } from '../http/errors.ts'
import type { RateLimiter } from '../http/rate-limit.ts'
import type { AuthMode, RateClass } from '../http/route.ts'
import type { AuthStore, User } from './store.ts'

const BEARER = /^Bearer\s+(\S+)\s*$/i

export function bearerToken(header: string | undefined): string | undefined {
  return header ? BEARER.exec(header)?.[1] : undefined
}

/** Authenticates the caller (unless public) and charges the rate limit of the route's class. */
export function makeGuard(auth: AuthStore, limiter: RateLimiter) {
  return async (
    req: FastifyRequest,
    mode: AuthMode,
    rateClass: RateClass,
  ): Promise<User | null> => {
    if (mode === 'public') {
      limiter.hit(`ip:${req.ip}`, rateClass)
      return null
    }
    const token = bearerToken(req.headers.authorization)
    if (!token) {
      throw new ApiError('UNAUTHORIZED', 'missing API key: send "Authorization: Bearer <key>"')
    }
    const found = await auth.authenticate(token)
    if (!found) throw new ApiError('UNAUTHORIZED', 'invalid or revoked API key')
    limiter.hit(`user:${found.user.id}`, rateClass)
    if (mode === 'admin' && !found.user.is_admin) {
      throw new ApiError('FORBIDDEN', 'this endpoint is for administrators')
    }
    return found.user
  }
}
