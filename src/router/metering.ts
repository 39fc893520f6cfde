import type http from 'node:http'
import type { AppRoute, RequestRecord } from './types.ts'

const bytesOf = (chunk: unknown, encoding?: unknown) =>
  typeof chunk === 'string'
    ? Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
    : chunk instanceof Uint8Array
      ? chunk.byteLength
      : 0

/**
 * Reports one request to an app once its answer is over: the status, the body bytes sent to the
 * client, the time from arrival to the end, and the Host asked for. A client that left before
 * any answer counts as 499 (nginx's "client closed request").
 */
export function meterRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  route: AppRoute,
  report: (r: RequestRecord) => void,
): void {
  const started = performance.now()
  let bytesOut = 0
  const write = res.write.bind(res) as (...a: unknown[]) => boolean
  const end = res.end.bind(res) as (...a: unknown[]) => http.ServerResponse
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    bytesOut += bytesOf(chunk, rest[0])
    return write(chunk, ...rest)
  }) as typeof res.write
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'function') bytesOut += bytesOf(chunk, rest[0])
    return end(chunk, ...rest)
  }) as typeof res.end
  res.once('close', () => {
    try {
      report({
        appId: route.appId,
        subdomain: route.subdomain,
        status: res.headersSent ? res.statusCode : 499,
        bytesOut,
        latencyMs: performance.now() - started,
        host: (req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '').slice(0, 253),
      })
    } catch {
      // Counting must never break serving.
    }
  })
}
