// Minimal HTTP/2 request routing and JSON helpers for the agent (no framework: one bundled file).
import http2 from 'node:http2'

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

export const badRequest = (msg: string): HttpError => new HttpError(400, 'BAD_REQUEST', msg)

export interface Ctx {
  stream: http2.ServerHttp2Stream
  headers: http2.IncomingHttpHeaders
  method: string
  path: string
  query: URLSearchParams
  /** Capture groups of the route pattern. */
  params: string[]
  /** Which port the request came in on (agent | bulk). */
  port: string
}

type Handler = (ctx: Ctx) => Promise<void> | void

interface Route {
  method: string
  pattern: RegExp
  handler: Handler
}

export const MAX_JSON_BODY = 1 << 20
const BODY_TIMEOUT_MS = 30_000

export class Router {
  private routes: Route[] = []

  add(method: string, pattern: RegExp, handler: Handler): this {
    this.routes.push({ method, pattern, handler })
    return this
  }

  async handle(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    port: string,
  ): Promise<void> {
    // A stream reset by the host must not take the agent down with an unhandled 'error'.
    stream.on('error', () => {})
    const method = String(headers[':method'] ?? '')
    const url = new URL(String(headers[':path'] ?? '/'), 'http://guest')
    try {
      let pathMatched = false
      for (const r of this.routes) {
        const m = r.pattern.exec(url.pathname)
        if (!m) continue
        pathMatched = true
        if (r.method !== method) continue
        const ctx: Ctx = {
          stream,
          headers,
          method,
          path: url.pathname,
          query: url.searchParams,
          params: m.slice(1),
          port,
        }
        await r.handler(ctx)
        return
      }
      if (pathMatched) throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${method} not allowed`)
      throw new HttpError(404, 'NOT_FOUND', `no route for ${url.pathname}`)
    } catch (e) {
      sendError(stream, e)
    }
  }
}

export function sendJson(stream: http2.ServerHttp2Stream, status: number, body: unknown): void {
  if (stream.destroyed || stream.closed) return
  const data = Buffer.from(JSON.stringify(body))
  if (!stream.headersSent) {
    stream.respond({
      ':status': status,
      'content-type': 'application/json',
      'content-length': data.length,
    })
  }
  stream.end(data)
}

export function sendError(stream: http2.ServerHttp2Stream, e: unknown): void {
  if (stream.destroyed || stream.closed) return
  if (stream.headersSent) {
    // Too late for a status: resetting tells the host the body is incomplete.
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
    return
  }
  const err = toHttpError(e)
  sendJson(stream, err.status, { error: { code: err.code, message: err.message } })
}

export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e
  const code = (e as NodeJS.ErrnoException)?.code
  const msg = e instanceof Error ? e.message : String(e)
  switch (code) {
    case 'ENOENT':
      return new HttpError(404, 'NOT_FOUND', msg)
    case 'EEXIST':
      return new HttpError(409, 'ALREADY_EXISTS', msg)
    case 'ENOTEMPTY':
      return new HttpError(409, 'NOT_EMPTY', msg)
    case 'EISDIR':
      return new HttpError(400, 'IS_A_DIRECTORY', msg)
    case 'ENOTDIR':
      return new HttpError(400, 'NOT_A_DIRECTORY', msg)
    case 'EACCES':
    case 'EPERM':
      return new HttpError(403, 'PERMISSION_DENIED', msg)
    case 'ENOSPC':
      return new HttpError(507, 'NO_SPACE', msg)
    default:
      return new HttpError(500, 'INTERNAL', msg)
  }
}

/** Reads a request body with a size cap and a deadline (every request is bounded). */
export function readBody(
  stream: http2.ServerHttp2Stream,
  maxBytes = MAX_JSON_BODY,
  timeoutMs = BODY_TIMEOUT_MS,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const timer = setTimeout(
      () => fail(new HttpError(408, 'TIMEOUT', 'request body timed out')),
      timeoutMs,
    )
    const fail = (e: Error): void => {
      clearTimeout(timer)
      stream.off('data', onData)
      reject(e)
    }
    const onData = (c: Buffer): void => {
      size += c.length
      if (size > maxBytes)
        return fail(new HttpError(413, 'TOO_LARGE', `body over ${maxBytes} bytes`))
      chunks.push(c)
    }
    stream.on('data', onData)
    stream.once('end', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
    stream.once('aborted', () => fail(new HttpError(499, 'ABORTED', 'request aborted')))
  })
}

export async function readJson(stream: http2.ServerHttp2Stream): Promise<unknown> {
  const body = await readBody(stream)
  if (body.length === 0) return {}
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw badRequest('body is not valid JSON')
  }
}

export function headerJson(headers: http2.IncomingHttpHeaders, name: string): unknown {
  const raw = headers[name]
  if (typeof raw !== 'string') throw badRequest(`missing header ${name}`)
  try {
    return JSON.parse(raw)
  } catch {
    throw badRequest(`header ${name} is not valid JSON`)
  }
}

// ---- small validators (the agent bundle carries no schema library) ----------------------------

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function optString(o: Record<string, unknown>, key: string, max = 4096): string | undefined {
  const v = o[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string' || v.length > max || v.includes('\0')) throw badRequest(`bad ${key}`)
  return v
}

export function reqString(o: Record<string, unknown>, key: string, max = 4096): string {
  const v = optString(o, key, max)
  if (v === undefined || v === '') throw badRequest(`missing ${key}`)
  return v
}

export function optInt(
  o: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
): number | undefined {
  const v = o[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw badRequest(`bad ${key}`)
  return v
}
