// Bounded HTTP/2 requests to the guest: every response has a size cap and a deadline, and every
// JSON body is checked against a schema before anyone sees it.
import http2 from 'node:http2'
import type { z } from 'zod'
import type { PortConnection } from './connection.ts'
import {
  GuestError,
  GuestProtocolError,
  GuestTimeoutError,
  GuestUnavailableError,
} from './errors.ts'
import { ErrorBodySchema } from './types.ts'

export const DEFAULT_MAX_JSON = 1 << 20
export const DEFAULT_TIMEOUT_MS = 15_000
const MAX_ERROR_BODY = 64 * 1024

export interface StreamRequest {
  method: string
  path: string
  headers?: http2.OutgoingHttpHeaders
  /** Deadline for the response headers. */
  timeoutMs?: number
  signal?: AbortSignal
}

export interface OpenedStream {
  stream: http2.ClientHttp2Stream
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader
}

/**
 * Sends a request and waits for the response headers. A non-2xx answer is read (capped) and
 * thrown as GuestError. The body is left for the caller to write (`stream`'s writable side).
 */
export async function openStream(
  conn: PortConnection,
  req: StreamRequest,
  writeBody?: (s: http2.ClientHttp2Stream) => void,
): Promise<OpenedStream> {
  const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const session = await conn.get()
  if (req.signal?.aborted) throw abortError(req.signal)
  let stream: http2.ClientHttp2Stream
  try {
    stream = session.request(
      { ':method': req.method, ':path': req.path, ...req.headers },
      { endStream: false, signal: req.signal },
    )
  } catch (e) {
    // The session died between get() and here (GOAWAY, destroyed): a connection problem.
    throw new GuestUnavailableError(`${req.method} ${req.path}: ${(e as Error).message}`)
  }
  stream.on('error', () => {}) // surfaced through the promises below
  writeBody?.(stream)
  const headers = await new Promise<OpenedStream['headers']>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL)
      reject(new GuestTimeoutError(`${req.method} ${req.path}: no answer in ${timeoutMs} ms`))
    }, timeoutMs)
    stream.once('response', (h) => {
      clearTimeout(timer)
      resolve(h)
    })
    stream.once('close', () => {
      clearTimeout(timer)
      reject(
        req.signal?.aborted
          ? abortError(req.signal)
          : new GuestUnavailableError(`${req.method} ${req.path}: stream closed before answering`),
      )
    })
  })
  const status = Number(headers[':status'])
  if (status >= 200 && status < 300) return { stream, headers }
  const body = await readAll(stream, MAX_ERROR_BODY, timeoutMs).catch(() => Buffer.alloc(0))
  throw toGuestError(status, body)
}

function toGuestError(status: number, body: Buffer): GuestError {
  try {
    const parsed = ErrorBodySchema.safeParse(JSON.parse(body.toString('utf8')))
    if (parsed.success)
      return new GuestError(status, parsed.data.error.code, parsed.data.error.message)
  } catch {
    // not JSON
  }
  return new GuestError(status, 'GUEST_ERROR', `guest answered ${status}`)
}

/** Reads a whole body, failing past `maxBytes` or `timeoutMs` (the stream is then cancelled). */
export function readAll(
  stream: http2.ClientHttp2Stream,
  maxBytes: number,
  timeoutMs?: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const timer =
      timeoutMs === undefined
        ? null
        : setTimeout(
            () => fail(new GuestTimeoutError(`body not complete in ${timeoutMs} ms`)),
            timeoutMs,
          )
    const fail = (e: Error): void => {
      if (timer) clearTimeout(timer)
      stream.off('data', onData)
      stream.close(http2.constants.NGHTTP2_CANCEL)
      reject(e)
    }
    const onData = (c: Buffer): void => {
      size += c.length
      if (size > maxBytes) return fail(new GuestProtocolError(`response over ${maxBytes} bytes`))
      chunks.push(c)
    }
    stream.on('data', onData)
    stream.once('end', () => {
      if (timer) clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
    stream.once('close', () => {
      // 'close' without 'end': reset by the guest or the session died.
      if (!stream.readableEnded) fail(new GuestUnavailableError('stream closed before its end'))
    })
  })
}

export interface JsonRequest<T> {
  method: string
  path: string
  body?: unknown
  schema: z.ZodType<T>
  timeoutMs?: number
  maxBytes?: number
  signal?: AbortSignal
}

/** A small JSON call with a size cap, a deadline (headers + body) and shape validation. */
export async function requestJson<T>(conn: PortConnection, req: JsonRequest<T>): Promise<T> {
  const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const started = Date.now()
  const data = req.body === undefined ? null : Buffer.from(JSON.stringify(req.body))
  const { stream } = await openStream(
    conn,
    {
      method: req.method,
      path: req.path,
      headers: data ? { 'content-type': 'application/json' } : {},
      timeoutMs,
      signal: req.signal,
    },
    (s) => s.end(data ?? undefined),
  )
  const remaining = Math.max(1, timeoutMs - (Date.now() - started))
  const body = await readAll(stream, req.maxBytes ?? DEFAULT_MAX_JSON, remaining)
  let value: unknown
  try {
    value = JSON.parse(body.toString('utf8'))
  } catch {
    throw new GuestProtocolError(`${req.path}: response is not JSON`)
  }
  const parsed = req.schema.safeParse(value)
  if (!parsed.success) {
    throw new GuestProtocolError(`${req.path}: unexpected response shape: ${parsed.error.message}`)
  }
  return parsed.data
}

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  if (reason instanceof Error) return reason
  const e = new Error('aborted')
  e.name = 'AbortError'
  return e
}

export function query(
  params: Record<string, string | number | boolean | undefined | null>,
): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === false) continue
    q.set(k, v === true ? '1' : String(v))
  }
  const s = q.toString()
  return s ? `?${s}` : ''
}
