// Minimal HTTP/2 request routing and JSON helpers for the agent (no framework: one bundled file).
import http2 from 'node:http2'
import { MAX_SPEC_BYTES } from './protocol.ts'

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
      throw new HttpError(404, 'NO_ROUTE', `no route for ${url.pathname}`)
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

/**
 * Failures of a system call, by errno: what the request asked for cannot be done (a 4xx with the
 * system's reason) or the guest itself is failing (500). Unknown codes count as the guest's.
 */
const ERRNO_STATUS: Record<string, [number, string]> = {
  ENOENT: [404, 'NOT_FOUND'],
  EEXIST: [409, 'ALREADY_EXISTS'],
  ENOTEMPTY: [409, 'NOT_EMPTY'],
  EBUSY: [409, 'BUSY'],
  ETXTBSY: [409, 'BUSY'],
  EAGAIN: [409, 'WOULD_BLOCK'],
  // The workspace's own disk is full: its owner can free space, nothing is wrong with the guest.
  ENOSPC: [409, 'NO_SPACE'],
  EDQUOT: [409, 'NO_SPACE'],
  EISDIR: [400, 'IS_A_DIRECTORY'],
  ENOTDIR: [400, 'NOT_A_DIRECTORY'],
  ENAMETOOLONG: [400, 'NAME_TOO_LONG'],
  ELOOP: [400, 'TOO_MANY_SYMLINKS'],
  EINVAL: [400, 'INVALID_ARGUMENT'],
  EXDEV: [400, 'CROSS_DEVICE'],
  ENXIO: [400, 'NO_SUCH_DEVICE'],
  ENODEV: [400, 'NO_SUCH_DEVICE'],
  EACCES: [403, 'PERMISSION_DENIED'],
  EPERM: [403, 'PERMISSION_DENIED'],
  EROFS: [403, 'READ_ONLY'],
  EFBIG: [413, 'TOO_LARGE'],
}

export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e
  const code = (e as NodeJS.ErrnoException)?.code
  const msg = e instanceof Error ? e.message : String(e)
  const known = code === undefined ? undefined : ERRNO_STATUS[code]
  return known ? new HttpError(known[0], known[1], msg) : new HttpError(500, 'INTERNAL', msg)
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

/**
 * Reads the spec preamble `[len u32be][UTF-8 JSON]` at the start of a request body (protocol.ts)
 * and leaves the stream paused at the first byte after it: the rest is the request's stdin.
 */
export function readSpec(
  stream: http2.ServerHttp2Stream,
  timeoutMs = BODY_TIMEOUT_MS,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let want = -1
    const timer = setTimeout(
      () => done(new HttpError(408, 'TIMEOUT', 'request spec timed out')),
      timeoutMs,
    )
    const done = (err: Error | null, value?: unknown): void => {
      clearTimeout(timer)
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('aborted', onAborted)
      if (err) reject(err)
      else resolve(value)
    }
    const onData = (c: Buffer): void => {
      chunks.push(c)
      size += c.length
      if (want < 0 && size >= 4) {
        want = 4 + Buffer.concat(chunks).readUInt32BE(0)
        if (want - 4 > MAX_SPEC_BYTES) {
          return done(new HttpError(413, 'TOO_LARGE', `spec over ${MAX_SPEC_BYTES} bytes`))
        }
      }
      if (want < 0 || size < want) return
      stream.pause()
      const all = Buffer.concat(chunks)
      if (all.length > want) stream.unshift(all.subarray(want))
      let value: unknown
      try {
        value = JSON.parse(utf8.decode(all.subarray(4, want)))
      } catch {
        return done(badRequest('the spec is not UTF-8 JSON'))
      }
      done(null, value)
    }
    const onEnd = (): void => done(badRequest('the body ended before its spec'))
    const onAborted = (): void => done(new HttpError(499, 'ABORTED', 'request aborted'))
    stream.on('data', onData)
    stream.once('end', onEnd)
    stream.once('aborted', onAborted)
  })
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

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
