import http from 'node:http'
import type net from 'node:net'
import { responseFramingOk } from './framing.ts'
import { downstreamHeaders, upstreamHeaders, type ForwardContext } from './headers.ts'
import type { RouterLogger } from './log.ts'
import { errors, rawErrorResponse, type RouterError } from './pages.ts'
import {
  connectUpstream,
  responseTimer,
  startConnectTimer,
  upstreamError,
  type ProxyTimeouts,
  type Target,
} from './proxy.ts'

/** Refuses an upgrade on the raw socket (there is no ServerResponse for it). */
export function refuseUpgrade(req: http.IncomingMessage, socket: net.Socket, err: RouterError) {
  if (socket.destroyed) return
  socket.end(rawErrorResponse(err, req.headers.accept))
  // Do not wait forever for a client that never reads the refusal.
  socket.setTimeout(5000, () => socket.destroy())
}

/** An upgrade request must not carry a body: its bytes would be sent as if after the switch. */
export function upgradeHasBody(req: http.IncomingMessage): boolean {
  const cl = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0')
}

/**
 * A WebSocket (or any Upgrade) after the access check: the rewritten request head on a new
 * connection of its own (never pooled). Only a 101 turns it into a byte pipe both ways, and only
 * then do the bytes the client sent after its head go on. Any other answer is relayed with
 * `connection: close` and both connections end: nothing more the client sends on this socket
 * reaches the app unchecked.
 */
export function forwardUpgrade(
  target: Target,
  req: http.IncomingMessage,
  socket: net.Socket,
  head: Buffer,
  ctx: ForwardContext,
  timeouts: ProxyTimeouts,
  log: RouterLogger,
  track: (s: net.Socket) => void,
): void {
  const up = http.request({
    method: req.method,
    path: req.url,
    headers: upstreamHeaders(req, ctx, { upgrade: true }),
    createConnection: () => connectUpstream(target),
    maxHeaderSize: timeouts.maxHeaderSize,
    setHost: false,
  })
  let timer: NodeJS.Timeout | undefined
  let settled = false
  up.on('socket', (s: net.Socket) => {
    track(s)
    startConnectTimer(s, timeouts.connectTimeoutMs, (err) => up.destroy(err))
    timer = responseTimer(timeouts.responseTimeoutMs, (err) => up.destroy(err))
  })
  const giveUp = () => up.destroy()
  socket.on('close', giveUp)

  up.on('upgrade', (ur: http.IncomingMessage, upSocket: net.Socket, upHead: Buffer) => {
    settled = true
    clearTimeout(timer)
    socket.off('close', giveUp)
    upSocket.setNoDelay(true)
    socket.setNoDelay(true)
    socket.setTimeout(0)
    socket.write(rawHead(ur, true))
    if (upHead.length) socket.write(upHead)
    if (head.length) upSocket.write(head)
    upSocket.pipe(socket)
    socket.pipe(upSocket)
    // One side gone: finish writing what is queued for the other, then drop it if it lingers.
    upSocket.on('error', () => socket.destroy())
    socket.on('error', () => upSocket.destroy())
    upSocket.on('close', () => closeSoon(socket))
    socket.on('close', () => closeSoon(upSocket))
  })

  up.on('response', (ur) => {
    settled = true
    clearTimeout(timer)
    // The app declined to switch: relay its answer, then close; the client's further bytes
    // (already in `head` or still coming) are never sent.
    if (!responseFramingOk(ur)) {
      up.destroy()
      refuseUpgrade(req, socket, errors.badGateway())
      return
    }
    socket.write(rawHead(ur, false))
    ur.pipe(socket, { end: false })
    ur.on('end', () => {
      up.destroy()
      closeSoon(socket)
    })
    ur.on('error', () => socket.destroy())
  })

  up.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(timer)
    if (settled) {
      socket.destroy()
      return
    }
    log.warn({ err: err.message, code: err.code, target }, 'app upgrade upstream failed')
    // The relay accepts even when the guest port is closed, then hangs up without a byte.
    refuseUpgrade(req, socket, upstreamError(err, true))
  })
  up.end()
}

/**
 * The app's response head for the raw client socket, its header lines as the app wrote them
 * minus what `downstreamHeaders` drops. A 101 keeps its Connection/Upgrade; any other answer
 * ends with the connection (its body is delimited by the close unless it has a length).
 */
function rawHead(ur: http.IncomingMessage, switching: boolean): string {
  const kept = downstreamHeaders(ur)
  const cookies = new Set(kept['set-cookie'] as string[] | undefined)
  let out = `HTTP/1.1 ${ur.statusCode} ${ur.statusMessage ?? ''}\r\n`
  for (let i = 0; i < ur.rawHeaders.length; i += 2) {
    const [name, value] = [ur.rawHeaders[i], ur.rawHeaders[i + 1]]
    const lower = name.toLowerCase()
    const pass =
      lower === 'set-cookie'
        ? cookies.has(value)
        : lower in kept || (switching && (lower === 'connection' || lower === 'upgrade'))
    if (pass) out += `${name}: ${value}\r\n`
  }
  return `${out}${switching ? '' : 'connection: close\r\n'}\r\n`
}

function closeSoon(s: net.Socket): void {
  if (s.destroyed) return
  s.end()
  setTimeout(() => s.destroy(), 5000).unref()
}
