import type http from 'node:http'
import { API_KEY_PATTERN } from '../auth/keys.ts'
import { verifySession } from './tokens.ts'
import type { AppRoute, Caller, RouterDeps } from './types.ts'

/** Host-only cookie holding the signed session for one app (see tokens.ts). */
export const SESSION_COOKIE = 'rigbox_session'

/**
 * Who is calling, from the headers, and the headers rewritten so no platform credential goes on:
 * a Bearer that has the platform key's shape is always removed (valid, revoked or mistyped), the
 * session cookie too. Any other Authorization (an app's own Bearer JWT, Basic) and the app's own
 * cookies pass through untouched.
 */
export interface Credentials {
  caller: Caller | null
  /** A platform key was presented and refused. */
  badKey: boolean
  /** Too many failed authentications from this address: try again in this many seconds. */
  retryAfterS?: number
}

function platformBearer(headers: http.IncomingHttpHeaders): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '')
  return m && API_KEY_PATTERN.test(m[1]) ? m[1] : null
}

/** The values of every `rigbox_session` cookie in the request (an app may toss its own in). */
export function sessionCookies(headers: http.IncomingHttpHeaders): string[] {
  const out: string[] = []
  for (const part of (headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) out.push(part.slice(eq + 1).trim())
  }
  return out
}

export async function authenticate(
  deps: RouterDeps,
  req: http.IncomingMessage,
  subdomain: string,
): Promise<Credentials> {
  const { headers } = req
  const key = platformBearer(headers)
  if (key) {
    const caller = await deps.authenticateKey(key, req.socket.remoteAddress ?? '')
    if (caller && 'retryAfterS' in caller)
      return { caller: null, badKey: true, retryAfterS: caller.retryAfterS }
    return { caller, badKey: !caller }
  }
  for (const value of sessionCookies(headers)) {
    // The signature keeps forgeries away from the database; the session's row decides.
    const claims = verifySession(deps.sessionSecret, value, subdomain)
    const caller = claims && (await deps.sessionCaller(claims.id, subdomain))
    if (caller) return { caller, badKey: false }
  }
  return { caller: null, badKey: false }
}

/** Visibility: public — anyone; private — the owner; privileged — the owner and listed e-mails. */
export function isAllowed(route: AppRoute, caller: Caller | null): boolean {
  if (route.visibility === 'public') return true
  if (!caller) return false
  if (caller.userId === route.ownerId) return true
  return (
    route.visibility === 'privileged' && route.allowedEmails.includes(caller.email.toLowerCase())
  )
}

/** Removes the platform's credentials from headers about to go upstream (in place). */
export function stripCredentials(headers: http.OutgoingHttpHeaders): void {
  const auth = headers.authorization
  if (typeof auth === 'string' && platformBearer({ authorization: auth }))
    delete headers.authorization
  const cookie = headers.cookie
  if (typeof cookie === 'string') {
    const kept = cookie
      .split(';')
      .filter((part) => {
        const eq = part.indexOf('=')
        return part.trim() && (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE)
      })
      .map((p) => p.trim())
    if (kept.length) headers.cookie = kept.join('; ')
    else delete headers.cookie
  }
}

/** Drops upstream Set-Cookie lines that would overwrite the router's own cookie. */
export function filterSetCookie(values: string[] | undefined): string[] | undefined {
  if (!values) return values
  const kept = values.filter((v) => v.split('=', 1)[0].trim() !== SESSION_COOKIE)
  return kept.length ? kept : undefined
}

export function sessionCookieHeader(value: string, expiresAt: number, secure: boolean): string {
  const maxAge = Math.max(0, Math.floor((expiresAt - Date.now()) / 1000))
  // No Domain attribute: the cookie stays on this exact host, never on sibling apps.
  return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`
}

export function clearSessionCookieHeader(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`
}
