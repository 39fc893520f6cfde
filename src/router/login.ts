import type http from 'node:http'
import { clearSessionCookieHeader, sessionCookieHeader, sessionCookies } from './access.ts'
import { errors, sendError } from './pages.ts'
import { issueSession, SESSION_TTL_MS, verifyLoginToken, verifySession } from './tokens.ts'
import type { AppRoute, RouterDeps } from './types.ts'

/** Paths the router answers itself on every app host; nothing under it reaches the app. */
export const RESERVED_PREFIX = '/__rigbox/'

/** Only a same-origin path may follow a login: `/x?y`, never `//evil`, `/\evil` or a scheme. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.length > 2048) return '/'
  if (next.startsWith('//') || next.startsWith('/\\')) return '/'
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(next)) return '/'
  return next
}

const noStore = { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' }

/**
 * `/__rigbox/login?token=…&next=…` (GET only: it uses the link up, so a HEAD from a link
 * checker must not) and `/__rigbox/logout`; anything else under the prefix is 404.
 */
export async function handleReserved(
  deps: RouterDeps,
  route: AppRoute,
  secure: boolean,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://router.invalid')
  if (url.pathname === '/__rigbox/login' && req.method === 'GET') {
    const claims = verifyLoginToken(
      deps.sessionSecret,
      url.searchParams.get('token') ?? '',
      route.subdomain,
    )
    const expiresAt = Date.now() + SESSION_TTL_MS
    const started = claims && (await deps.redeemLogin(claims.id, route.subdomain, expiresAt))
    if (!started) {
      sendError(req, res, errors.badLogin())
      return
    }
    const value = issueSession(deps.sessionSecret, {
      id: started.sessionId,
      subdomain: route.subdomain,
      userId: started.caller.userId,
      email: started.caller.email,
      expiresAt,
    })
    // The redirect also takes the token out of the address bar, history and later Referers.
    res.writeHead(302, {
      ...noStore,
      location: safeNext(url.searchParams.get('next')),
      'set-cookie': sessionCookieHeader(value, expiresAt, secure),
      'content-length': 0,
    })
    res.end()
    return
  }
  if (url.pathname === '/__rigbox/logout' && (req.method === 'GET' || req.method === 'HEAD')) {
    // Ends the session on the server too: a copy of the cookie is worthless from now on.
    for (const value of sessionCookies(req.headers)) {
      const claims = verifySession(deps.sessionSecret, value, route.subdomain)
      if (claims) await deps.endSession(claims.id)
    }
    res.writeHead(302, {
      ...noStore,
      location: '/',
      'set-cookie': clearSessionCookieHeader(secure),
      'content-length': 0,
    })
    res.end()
    return
  }
  sendError(req, res, errors.notFound())
}
