import http from 'node:http'
import type net from 'node:net'
import { describe } from './tunnel.ts'

export const VIA = '1.1 rigbox'

// Hop-by-hop (RFC 9110 §7.6.1) or replaced by the proxy. `expect` goes because the proxy has
// already answered `100 Continue` itself; `host` is rebuilt from the absolute-form target.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'upgrade',
  'host',
  'expect',
  'transfer-encoding',
])

function dropped(name: string, listed: Set<string>): boolean {
  const k = name.toLowerCase()
  return HOP_BY_HOP.has(k) || k.startsWith('proxy-') || listed.has(k)
}

/** Header names the sender listed in `Connection`: hop-by-hop as well. */
function connectionTokens(value: string | string[] | undefined): Set<string> {
  const all = Array.isArray(value) ? value.join(',') : (value ?? '')
  return new Set(
    all
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  )
}

/** The absolute-form target of a proxied request, or why it cannot be one. */
export function parseTarget(url: string | undefined): URL | { error: string } {
  if (!url || url.startsWith('/') || url === '*')
    return {
      error:
        'this is an HTTP proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port',
    }
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return { error: `invalid request target ${JSON.stringify(url.slice(0, 200))}` }
  }
  if (u.protocol !== 'http:')
    return { error: `only http:// is proxied this way; use CONNECT for ${u.protocol}//` }
  if (u.username || u.password) return { error: 'credentials in the request target are refused' }
  return u
}

/** `host:port` or `[v6]:port` of a CONNECT request. */
export function parseAuthority(target: string | undefined): { host: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:[\]]+):([0-9]{1,5})$/.exec(target ?? '')
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return null
  return { host: m[1], port: Number(m[2]) }
}

/** The request's headers for the origin server, as a raw `[name, value, …]` list. */
export function upstreamRequestHeaders(req: http.IncomingMessage, url: URL): string[] {
  const listed = connectionTokens(req.headers.connection)
  const out = ['Host', url.host]
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) if (!dropped(raw[i], listed)) out.push(raw[i], raw[i + 1])
  // Node's parser has undone the chunked framing; keeping the header makes the client request
  // frame the body again (a GET with a chunked body would otherwise lose its framing).
  const te = req.headers['transfer-encoding']
  if (te) out.push('Transfer-Encoding', te)
  out.push('Via', VIA)
  return out
}

/** The origin server's response headers for the client; Node frames the body again itself. */
export function downstreamHeaders(res: http.IncomingMessage): string[] {
  const listed = connectionTokens(res.headers.connection)
  const out: string[] = []
  const raw = res.rawHeaders
  for (let i = 0; i < raw.length; i += 2) if (!dropped(raw[i], listed)) out.push(raw[i], raw[i + 1])
  out.push('Via', VIA)
  return out
}

/** The head of an upgrade request (WebSocket over plain HTTP), written raw to the upstream. */
export function upgradeHead(req: http.IncomingMessage, url: URL): string {
  const headers = upstreamRequestHeaders(req, url)
  let head = `${req.method} ${url.pathname}${url.search} HTTP/1.1\r\n`
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`
  head += `Connection: Upgrade\r\nUpgrade: ${req.headers.upgrade ?? ''}\r\n\r\n`
  return head
}

export interface ForwardHooks {
  /** Answer the client with an error (only while no response head has gone out). */
  fail(status: number, message: string): void
}

/**
 * Sends one client request to the origin over its own new connection (already connecting to the
 * checked address) and streams the answer back. One connection per request keeps the client's
 * keep-alive and the origin's apart: nothing the origin does can make the next request on this
 * client connection land somewhere the policy did not check.
 */
export function forwardRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  upstream: net.Socket,
  maxHeaderSize: number,
  hooks: ForwardHooks,
  shown: string,
): void {
  const up = http.request({
    createConnection: () => upstream,
    method: req.method,
    path: `${url.pathname}${url.search}`,
    headers: upstreamRequestHeaders(req, url),
    maxHeaderSize,
  })
  up.on('response', (ures) => {
    res.writeHead(ures.statusCode ?? 502, ures.statusMessage, downstreamHeaders(ures))
    // A streamed answer (no length) must show its head now, not with its first chunk.
    if (ures.headers['content-length'] === undefined) res.flushHeaders()
    ures.pipe(res)
    ures.on('error', () => res.destroy())
    ures.on('close', () => {
      if (!ures.complete) res.destroy()
    })
  })
  up.on('error', (err: NodeJS.ErrnoException) => {
    if (res.headersSent) res.destroy()
    else if (err.code === 'HPE_HEADER_OVERFLOW')
      hooks.fail(502, `egress to ${shown} failed: the response head is too large`)
    else
      hooks.fail(
        err.code === 'ETIMEDOUT' ? 504 : 502,
        `egress to ${shown} failed: ${describe(err)}`,
      )
  })
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy()
  })
  req.on('error', () => upstream.destroy())
  req.pipe(up)
}
