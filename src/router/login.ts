import type http from 'node:http'
import { clearSessionCookieHeader, sessionCookieHeader } from './access.ts'
import { errors, sendError } from './pages.ts'
import { issueSession, verifyLoginToken } from './tokens.ts'
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

/** `/__rigbox/login?token=…&next=…` and `/__rigbox/logout`; anything else under the prefix is 404. */
export function handleReserved(
  deps: RouterDeps,
  route: AppRoute,
  secure: boolean,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): void {
  const url = new URL(req.url ?? '/', 'http://router.invalid')
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendError(req, res, errors.notFound())
    return
  }
  if (url.pathname === '/__rigbox/login') {
    const claims = verifyLoginToken(
      deps.sessionSecret,
      url.searchParams.get('token') ?? '',
      route.subdomain,
    )
    if (!claims) {
      sendError(req, res, errors.badLogin())
      return
    }
    const session = issueSession(deps.sessionSecret, {
      subdomain: route.subdomain,
      userId: claims.userId,
      email: claims.email,
    })
    // The redirect also takes the token out of the address bar, history and later Referers.
    res.writeHead(302, {
      ...noStore,
      location: safeNext(url.searchParams.get('next')),
      'set-cookie': sessionCookieHeader(session.value, session.expiresAt, secure),
      'content-length': 0,
    })
    res.end()
    return
  }
  if (url.pathname === '/__rigbox/logout') {
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
