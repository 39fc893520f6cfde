/**
 * The proxy's one way out: an HTTP(S) request to an upstream over kept-alive connections, with
 * connect and first-byte timeouts, abortable at any moment (the client hung up). Only the headers
 * named here travel in either direction: the VM's hop-by-hop and auth headers never reach an
 * upstream (the upstream's credential is added here, on the host), and only harmless upstream
 * headers come back.
 */
import http from 'node:http'
import https from 'node:https'
import { ApiError } from '../../http/errors.ts'

export interface Timeouts {
  /** To open the TCP (and TLS) connection. */
  connectMs: number
  /** From sending the request to the response's headers (a non-streamed call waits its whole generation). */
  firstByteMs: number
  /** Between two chunks of a response body. */
  idleMs: number
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  connectMs: 10_000,
  firstByteMs: 300_000,
  idleMs: 300_000,
}

/** Request headers a client may pass on: content negotiation and API versions, never credentials. */
const FORWARDED = ['accept', 'anthropic-version', 'anthropic-beta', 'user-agent']
/** Response headers passed back: what clients use for diagnosis and back-off. */
const RETURNED = ['request-id', 'x-request-id', 'retry-after', 'openai-processing-ms']

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 512 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 512 }),
}

export interface UpstreamCall {
  method: 'GET' | 'POST'
  url: string
  /** The upstream's credential headers (x-api-key or authorization), added on the host. */
  auth: Record<string, string>
  /** Headers sent unless the client sent its own (the Anthropic API version). */
  defaults?: Record<string, string>
  /** The client's request headers; only FORWARDED ones go on. */
  incoming: http.IncomingHttpHeaders
  body?: Buffer
  signal: AbortSignal
  timeouts: Timeouts
}

export function forwardedHeaders(call: UpstreamCall): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of FORWARDED) {
    const v = call.incoming[name]
    if (typeof v === 'string') out[name] = v
  }
  // Bodies come back as sent: metering reads them, so no compression.
  out['accept-encoding'] = 'identity'
  if (call.body) {
    out['content-type'] = 'application/json'
    out['content-length'] = String(call.body.length)
  }
  return { ...call.defaults, ...out, ...call.auth }
}

export function returnedHeaders(res: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of RETURNED) {
    const v = res.headers[name]
    if (typeof v === 'string') out[name] = v
  }
  return out
}

/** Sends the request; resolves with the response once its headers are in. */
export function requestUpstream(call: UpstreamCall): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const url = new URL(call.url)
    const secure = url.protocol === 'https:'
    const req = (secure ? https : http).request(url, {
      method: call.method,
      headers: forwardedHeaders(call),
      agent: secure ? agents.https : agents.http,
      signal: call.signal,
    })
    const fail = (why: string) => req.destroy(new ApiError('AI_UPSTREAM_ERROR', why))
    const firstByte = setTimeout(
      () => fail(`the AI upstream did not answer within ${call.timeouts.firstByteMs / 1000} s`),
      call.timeouts.firstByteMs,
    )
    req.on('socket', (socket) => {
      if (!socket.connecting) return
      const connect = setTimeout(
        () =>
          fail(`could not connect to the AI upstream within ${call.timeouts.connectMs / 1000} s`),
        call.timeouts.connectMs,
      )
      socket.once('connect', () => clearTimeout(connect))
      req.once('close', () => clearTimeout(connect))
    })
    req.on('response', (res) => {
      clearTimeout(firstByte)
      resolve(res)
    })
    req.on('error', (err) => {
      clearTimeout(firstByte)
      reject(upstreamError(err))
    })
    req.end(call.body)
  })
}

/** A failure on the way to the upstream, in words that name no host, path or key. */
export function upstreamError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  const e = err as NodeJS.ErrnoException
  if (e.name === 'AbortError') return new ApiError('AI_UPSTREAM_ERROR', 'the call was cancelled')
  return new ApiError(
    'AI_UPSTREAM_ERROR',
    `the AI upstream could not be reached (${e.code ?? 'error'})`,
  )
}

/** The whole body of a response, at most `limit` bytes (else AI_UPSTREAM_ERROR). */
export async function readBody(
  res: http.IncomingMessage,
  limit: number,
  idleMs: number,
): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  const idle = () =>
    res.destroy(new ApiError('AI_UPSTREAM_ERROR', 'the AI upstream stopped sending'))
  let timer = setTimeout(idle, idleMs)
  try {
    for await (const c of res) {
      clearTimeout(timer)
      timer = setTimeout(idle, idleMs)
      size += (c as Buffer).length
      if (size > limit) {
        res.destroy()
        throw new ApiError('AI_UPSTREAM_ERROR', 'the AI upstream answer is too large')
      }
      chunks.push(c as Buffer)
    }
  } catch (err) {
    throw upstreamError(err)
  } finally {
    clearTimeout(timer)
  }
  return Buffer.concat(chunks)
}

/** Removes every secret from text bound for a client or a log. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text
  for (const s of secrets) if (out.includes(s)) out = out.replaceAll(s, '[redacted]')
  return out
}
