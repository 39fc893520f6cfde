import type http from 'node:http'
import type { ForwardContext } from './headers.ts'
import { parseHost } from './host.ts'
import type { AppRoute, RouterDeps } from './types.ts'

/** A browser's CORS preflight: it never carries credentials (Fetch standard). */
export function isPreflight(req: http.IncomingMessage): boolean {
  return (
    req.method === 'OPTIONS' &&
    !!req.headers.origin &&
    !!req.headers['access-control-request-method']
  )
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
const METHOD = new RegExp(`^${TOKEN}$`)
const TOKEN_LIST = new RegExp(`^${TOKEN}(?:[ \\t]*,[ \\t]*${TOKEN})*$`)

/**
 * A preflight for a private or privileged app from a caller the router did not admit is answered
 * here, and the app never sees it (nothing from an unauthenticated caller reaches a non-public
 * app). CORS is granted only to an origin that is another app of the same owner on this router
 * (same scheme and port): an owner's apps trust each other. Any other origin gets a 204 without
 * Access-Control-Allow-*, so the browser does not send the real request.
 */
export async function answerPreflight(
  deps: RouterDeps,
  domain: string,
  route: AppRoute,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: ForwardContext,
): Promise<void> {
  const headers: http.OutgoingHttpHeaders = {
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    'content-length': 0,
  }
  const origin = req.headers.origin ?? ''
  const method = req.headers['access-control-request-method'] ?? ''
  if (METHOD.test(method) && (await sameOwnerOrigin(deps, domain, route, origin, ctx))) {
    headers['access-control-allow-origin'] = origin
    headers['access-control-allow-credentials'] = 'true'
    headers['access-control-allow-methods'] = method
    const asked = req.headers['access-control-request-headers']?.trim()
    if (asked && TOKEN_LIST.test(asked)) headers['access-control-allow-headers'] = asked
    headers['access-control-max-age'] = '600'
  }
  res.writeHead(204, headers)
  res.end()
}

async function sameOwnerOrigin(
  deps: RouterDeps,
  domain: string,
  route: AppRoute,
  origin: string,
  ctx: ForwardContext,
): Promise<boolean> {
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return false
  }
  // Only a serialized origin (scheme://host[:port], lowercase, no path), as browsers send it.
  if (url.origin !== origin || url.protocol !== `${ctx.proto}:`) return false
  const port = url.port ? Number(url.port) : ctx.proto === 'https' ? 443 : 80
  if (port !== ctx.port) return false
  const host = parseHost(url.hostname, domain)
  if (!host) return false
  const other = await deps.lookup(host.subdomain)
  return !!other && other.enabled && other.ownerId === route.ownerId
}
