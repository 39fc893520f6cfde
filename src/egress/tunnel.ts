import net from 'node:net'
import type { Duplex } from 'node:stream'

/** Why an upstream connection failed, as a status and a sentence for the workspace. */
export class UpstreamError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/**
 * Opens a TCP connection to an already-checked IP address (never a name: resolving again here
 * would let DNS answer differently from what the policy saw). `allowHalfOpen` so a client that
 * has finished sending still gets the whole answer.
 */
export function connectUpstream(
  address: string,
  port: number,
  timeoutMs: number,
  idleTimeoutMs: number,
  shown: string,
): { socket: net.Socket; ready: Promise<void> } {
  const socket = net.connect({ host: address, port, allowHalfOpen: true })
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new UpstreamError(504, `egress to ${shown} failed: connect timed out`))
      socket.destroy()
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.off('error', onError)
      resolve()
    })
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new UpstreamError(502, `egress to ${shown} failed: ${describe(err)}`))
    }
    socket.once('error', onError)
    // Closed before connecting without an error event: settle all the same.
    socket.once('close', () => {
      clearTimeout(timer)
      reject(new UpstreamError(502, `egress to ${shown} failed: connection closed`))
    })
  })
  // The caller's handlers take over after connect; this one keeps a late error from throwing.
  socket.on('error', () => {})
  // No byte either way for this long: whatever was on the other end is gone or stuck.
  socket.setTimeout(idleTimeoutMs, () => {
    const err = Object.assign(new Error('idle timeout'), { code: 'ETIMEDOUT' })
    socket.destroy(err)
  })
  return { socket, ready }
}

export function describe(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused'
    case 'ECONNRESET':
      return 'connection reset'
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'no route to host'
    case 'ETIMEDOUT':
      return 'timed out waiting for data'
    default:
      return err.code ?? err.message
  }
}

/** How long a side that was ended cleanly may take to take in what is queued for it. */
const LINGER_MS = 30_000

/**
 * Carries bytes both ways until both sides are done. Half-close passes through (an end from one
 * side ends the other's writable, after what was queued before it). A side that closes after
 * its end (a clean close) does not cut the other off: that one still gets everything queued for
 * it, then its end, and only then goes — a slow client must not lose the tail of a download
 * because the origin closed first. An error, or a close without an end (a reset), ends both now.
 */
export function splice(client: Duplex, upstream: net.Socket): void {
  const kill = () => {
    client.destroy()
    upstream.destroy()
  }
  const closed = (gone: Duplex, other: Duplex) => {
    if (gone.readableEnded) closeWhenFlushed(other)
    else kill()
  }
  // Piped first: on a close, the pipes come apart before the survivor's unread input is dropped.
  client.pipe(upstream)
  upstream.pipe(client)
  client.on('error', kill)
  upstream.on('error', kill)
  client.once('close', () => closed(client, upstream))
  upstream.once('close', () => closed(upstream, client))
}

/**
 * Ends `conn` and destroys it once what is queued has been handed over (or after LINGER_MS, for
 * a peer that never reads). Whatever the peer still sends is read and dropped: a TCP socket
 * closed with unread bytes resets, and a reset can discard the data still on its way.
 */
export function closeWhenFlushed(conn: Duplex): void {
  if (conn.destroyed) return
  conn.resume()
  if (conn.writableFinished) return void conn.destroy()
  const timer = setTimeout(() => conn.destroy(), LINGER_MS)
  timer.unref()
  conn.once('close', () => clearTimeout(timer))
  conn.once('finish', () => conn.destroy())
  if (!conn.writableEnded) conn.end()
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
}

/**
 * A complete answer written straight to a connection that has left HTTP (CONNECT, upgrade), then
 * closed. What the client already sent is read and dropped: closing with unread bytes would reset
 * the connection and could lose the answer before the client reads it.
 */
export function answerRaw(conn: Duplex, status: number, message: string): void {
  const body = `${message}\n`
  const head =
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n'
  conn.on('error', () => conn.destroy())
  conn.resume()
  conn.end(head + body)
  const timer = setTimeout(() => conn.destroy(), 2000)
  timer.unref()
  conn.once('close', () => clearTimeout(timer))
}
