import type http from 'node:http'
import net from 'node:net'
import { serializeHead, upstreamHeaders, type ForwardContext } from './headers.ts'
import type { RouterLogger } from './log.ts'
import { errors, rawErrorResponse, type RouterError } from './pages.ts'
import { startConnectTimer, upstreamError, type ProxyTimeouts, type Target } from './proxy.ts'

/** Refuses an upgrade on the raw socket (there is no ServerResponse for it). */
export function refuseUpgrade(req: http.IncomingMessage, socket: net.Socket, err: RouterError) {
  if (socket.destroyed) return
  socket.end(rawErrorResponse(err, req.headers.accept))
  // Do not wait forever for a client that never reads the refusal.
  socket.setTimeout(5000, () => socket.destroy())
}

/**
 * A WebSocket (or any Upgrade) after the access check: a plain TCP connection to the app, the
 * rewritten request head written on it, then bytes piped both ways. The app's own answer (101 or
 * a refusal) goes back untouched.
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
  const up = net.connect({ host: target.host, port: target.port })
  track(up)
  let connected = false
  startConnectTimer(up, timeouts.connectTimeoutMs, (err) => up.destroy(err))
  up.once('connect', () => {
    connected = true
    up.setNoDelay(true)
    socket.setNoDelay(true)
    socket.setTimeout(0)
    up.write(
      serializeHead(
        req.method ?? 'GET',
        req.url ?? '/',
        upstreamHeaders(req, ctx, { upgrade: true }),
      ),
    )
    if (head.length) up.write(head)
    up.pipe(socket, { end: false })
    socket.pipe(up)
  })
  let answered = false
  up.once('data', () => (answered = true))
  // hostfwd accepts even when the guest port is closed, then hangs up without a byte: say so.
  up.on('end', () => {
    if (answered) socket.end()
    else refuseUpgrade(req, socket, errors.portClosed())
  })
  up.on('error', (err: NodeJS.ErrnoException) => {
    if (connected) {
      socket.destroy()
      return
    }
    log.warn({ err: err.message, code: err.code, target }, 'app upgrade upstream failed')
    refuseUpgrade(req, socket, upstreamError(err, true))
  })
  // One side gone: finish writing what is queued for the other, then drop it if it lingers.
  up.on('close', () => {
    if (connected) closeSoon(socket)
  })
  socket.on('error', () => up.destroy())
  socket.on('close', () => closeSoon(up))
}

function closeSoon(s: net.Socket): void {
  if (s.destroyed) return
  s.end()
  setTimeout(() => s.destroy(), 5000).unref()
}
