// Streaming reads on `bulk`: a file as a capped Readable, and the journal as NDJSON lines.
import http2 from 'node:http2'
import { Transform, type Readable } from 'node:stream'
import type { PortConnection } from './connection.ts'
import { GuestError, GuestProtocolError } from './errors.ts'
import { openStream, query } from './request.ts'
import { LogLineSchema, type LogLine } from './types.ts'

const FOLLOW_MAX_LINE = 256 * 1024

/** GET /v1/files as a stream that fails past `maxBytes` or on a size mismatch. */
export async function fileStream(
  bulk: PortConnection,
  path: string,
  o: { maxBytes: number; signal?: AbortSignal; timeoutMs?: number },
): Promise<{ size: number; mode: string; stream: Readable }> {
  const { stream, headers } = await openStream(
    bulk,
    {
      method: 'GET',
      path: `/v1/files${query({ path, max: o.maxBytes })}`,
      signal: o.signal,
      timeoutMs: o.timeoutMs,
    },
    (s) => s.end(),
  )
  const size = Number(headers['content-length'])
  if (!Number.isSafeInteger(size) || size < 0) {
    stream.close(http2.constants.NGHTTP2_CANCEL)
    throw new GuestProtocolError(`${path}: bad size ${headers['content-length']}`)
  }
  if (size > o.maxBytes) {
    stream.close(http2.constants.NGHTTP2_CANCEL)
    throw fileTooLarge(path, o.maxBytes)
  }
  let seen = 0
  const capped = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length
      if (seen > size) return cb(new GuestProtocolError(`${path}: more bytes than announced`))
      cb(null, chunk)
    },
    flush(cb) {
      cb(seen === size ? null : new GuestProtocolError(`${path}: ${seen} of ${size} bytes`))
    },
  })
  stream.once('close', () => {
    if (!stream.readableEnded) capped.destroy(new GuestProtocolError(`${path}: transfer cut`))
  })
  capped.once('close', () => stream.close(http2.constants.NGHTTP2_CANCEL))
  stream.pipe(capped)
  return { size, mode: String(headers['x-file-mode'] ?? ''), stream: capped }
}

/** What the agent answers for a file over the caller's limit. */
export function fileTooLarge(path: string, maxBytes: number): GuestError {
  return new GuestError(413, 'TOO_LARGE', `${path} is larger than the limit of ${maxBytes} bytes`)
}

/** GET /v1/logs/follow: validated lines to `onLine` until the stream ends or `signal` aborts. */
export async function followLogs(
  bulk: PortConnection,
  o: { cursor?: string; unit?: string },
  onLine: (line: LogLine) => void,
  signal?: AbortSignal,
): Promise<void> {
  const { stream } = await openStream(
    bulk,
    {
      method: 'GET',
      path: `/v1/logs/follow${query({ cursor: o.cursor, unit: o.unit })}`,
      signal,
    },
    (s) => s.end(),
  )
  await new Promise<void>((resolve, reject) => {
    let buf = ''
    stream.setEncoding('utf8')
    stream.on('data', (c: string) => {
      buf += c
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const raw = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        let parsed
        try {
          parsed = LogLineSchema.safeParse(JSON.parse(raw))
        } catch {
          parsed = null
        }
        if (!parsed?.success) {
          stream.close(http2.constants.NGHTTP2_CANCEL)
          return reject(new GuestProtocolError('followLogs: malformed line'))
        }
        onLine(parsed.data)
      }
      if (buf.length > FOLLOW_MAX_LINE) {
        stream.close(http2.constants.NGHTTP2_CANCEL)
        reject(new GuestProtocolError('followLogs: line too long'))
      }
    })
    // Ends when the guest ends it, the session dies, or `signal` aborts (it cancels the stream).
    stream.once('close', () => resolve())
  })
}
