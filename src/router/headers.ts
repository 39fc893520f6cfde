import type http from 'node:http'
import { filterSetCookie, stripCredentials } from './access.ts'

/** RFC 9110 §7.6.1 connection-specific fields, plus the proxy ones nobody should pass on. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** Hop-by-hop names for this message: the fixed set and whatever its Connection header lists. */
function hopNames(headers: http.IncomingHttpHeaders): Set<string> {
  const connection = headers.connection?.toLowerCase()
  // The common cases name nothing beyond the fixed set: skip the copy (hot path).
  if (!connection || connection === 'keep-alive' || connection === 'close') return HOP_BY_HOP
  const names = new Set(HOP_BY_HOP)
  for (const token of connection.split(',')) {
    const name = token.trim()
    // A client must not be able to make the router drop the Host it routes by.
    if (name && name !== 'host') names.add(name)
  }
  return names
}

export interface ForwardContext {
  clientIp: string
  proto: 'http' | 'https'
  /** Port the client addressed (Host header, else the scheme's default). */
  port: number
}

/**
 * Headers for the upstream request: end-to-end fields only, credentials removed, X-Forwarded-*
 * set. X-Forwarded-For is appended to (earlier proxies' entries kept, this client last); Proto,
 * Host and Port are replaced, since the router is the edge and a client must not be able to claim
 * it came over TLS.
 */
export function upstreamHeaders(
  req: http.IncomingMessage,
  ctx: ForwardContext,
  opts: { upgrade?: boolean } = {},
): http.OutgoingHttpHeaders {
  const drop = hopNames(req.headers)
  const out: http.OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || drop.has(name)) continue
    out[name] = value
  }
  if (opts.upgrade) {
    out.connection = 'upgrade'
    if (req.headers.upgrade) out.upgrade = req.headers.upgrade
  }
  stripCredentials(out)
  // Node already answered `100 Continue` to the client; the upstream must not wait for one.
  delete out.expect
  const prior = req.headers['x-forwarded-for']
  out['x-forwarded-for'] = prior ? `${prior}, ${ctx.clientIp}` : ctx.clientIp
  out['x-forwarded-proto'] = ctx.proto
  out['x-forwarded-host'] = req.headers.host ?? ''
  out['x-forwarded-port'] = String(ctx.port)
  return out
}

/** Headers of the upstream response as sent to the client. */
export function downstreamHeaders(res: http.IncomingMessage): http.OutgoingHttpHeaders {
  const drop = hopNames(res.headers)
  const out: http.OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined || drop.has(name)) continue
    out[name] = value
  }
  const cookies = filterSetCookie(res.headers['set-cookie'])
  if (cookies) out['set-cookie'] = cookies
  else delete out['set-cookie']
  return out
}

/** Raw request head for an upgrade, written on a plain socket to the upstream. */
export function serializeHead(method: string, url: string, headers: http.OutgoingHttpHeaders) {
  let head = `${method} ${url} HTTP/1.1\r\n`
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`
  }
  return `${head}\r\n`
}
