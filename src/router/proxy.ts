import http from 'node:http'
import net from 'node:net'
import { applyFraming, responseFramingOk, type RequestFraming } from './framing.ts'
import { downstreamHeaders, upstreamHeaders, type ForwardContext } from './headers.ts'
import { errors, sendError, type RouterError } from './pages.ts'
import type { RouterLogger } from './log.ts'

/**
 * The way to an app's guest port, as the node gives it: a fresh connection per `connect()`
 * (usable at once), and a `key` naming the way, so equal keys share a connection pool.
 */
export interface Target {
  key: string
  connect(): net.Socket
}

export interface ProxyTimeouts {
  /** Connecting to the upstream (the VM's inbound relay). */
  connectTimeoutMs: number
  /** From the request fully sent to the response's headers. */
  responseTimeoutMs: number
  maxHeaderSize: number
}

class UpstreamTimeout extends Error {
  code = 'UPSTREAM_TIMEOUT'
}

const AGENT_CACHE_MAX = 512

/** Every connection the router opens to an app starts here (pooled or for an upgrade). */
export function connectUpstream(t: Target): net.Socket {
  return t.connect()
}

/**
 * One keep-alive agent per upstream (Target.key). The ways to apps change as VMs restart, so the
 * map is bounded; the least recently used agent (and its idle sockets) goes first.
 */
export class Upstreams {
  private agents = new Map<string, http.Agent>()

  agent(t: Target): http.Agent {
    const key = t.key
    let agent = this.agents.get(key)
    if (agent) {
      this.agents.delete(key)
    } else {
      agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 })
      agent.createConnection = () => connectUpstream(t)
      if (this.agents.size >= AGENT_CACHE_MAX) {
        const [oldKey, old] = this.agents.entries().next().value as [string, http.Agent]
        this.agents.delete(oldKey)
        old.destroy()
      }
    }
    this.agents.set(key, agent)
    return agent
  }

  destroy(): void {
    for (const agent of this.agents.values()) agent.destroy()
    this.agents.clear()
  }
}

/** What a failed connection to the app means to the user. */
export function upstreamError(err: NodeJS.ErrnoException, freshSocket: boolean): RouterError {
  if (err instanceof UpstreamTimeout || err.code === 'ETIMEDOUT') return errors.timeout()
  // The VM's inbound relay (and QEMU's hostfwd behind it) accepts and then closes at once when the
  // guest port is closed; a relay socket not there (yet) is the same to the user.
  const refused = err.code === 'ECONNREFUSED' || err.code === 'ENOENT'
  if (refused || (err.code === 'ECONNRESET' && freshSocket)) return errors.portClosed()
  return errors.badGateway()
}

export function startConnectTimer(
  socket: { connecting: boolean; once(ev: 'connect' | 'close', fn: () => void): unknown },
  ms: number,
  onTimeout: (err: Error) => void,
): void {
  if (!socket.connecting) return
  const timer = setTimeout(() => onTimeout(new UpstreamTimeout('upstream connect timed out')), ms)
  socket.once('connect', () => clearTimeout(timer))
  socket.once('close', () => clearTimeout(timer))
}

export function responseTimer(ms: number, onTimeout: (err: Error) => void): NodeJS.Timeout {
  return setTimeout(() => onTimeout(new UpstreamTimeout('upstream response timed out')), ms)
}

/**
 * Streams the request to the upstream and its answer back, chunk by chunk (no buffering, so SSE
 * and chunked responses arrive as they are produced). The upstream copy carries exactly the body
 * the client declared, framed by the router (see framing.ts). A pooled connection goes back to
 * the pool only after a clean exchange: the whole body sent before the app answered, and the
 * whole answer delivered; anything else (client gone mid-body, app answering early, errors)
 * closes it, since the app's parser may be mid-message on it.
 */
export function forwardHttp(
  target: Target,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  framing: RequestFraming,
  ctx: ForwardContext,
  timeouts: ProxyTimeouts,
  upstreams: Upstreams,
  log: RouterLogger,
): void {
  const headers = upstreamHeaders(req, ctx)
  applyFraming(headers, framing)
  // Only a request with no body bytes can be sent again on a new connection.
  const bodyless = framing.kind === 'none' || (framing.kind === 'length' && framing.length === 0)

  const attempt = (mayRetry: boolean) => {
    const up = http.request({
      method: req.method,
      path: req.url,
      headers,
      agent: upstreams.agent(target),
      maxHeaderSize: timeouts.maxHeaderSize,
      setHost: false,
    })
    let timer: NodeJS.Timeout | undefined
    let fresh = false
    let answered = false
    let delivered = false
    up.on('socket', (socket) => {
      fresh = socket.connecting
      startConnectTimer(socket, timeouts.connectTimeoutMs, (err) => up.destroy(err))
    })
    up.on('finish', () => {
      if (!answered) timer = responseTimer(timeouts.responseTimeoutMs, (err) => up.destroy(err))
    })
    // The client's body left unsent (app answered or failed first) is read and dropped, so the
    // client's own connection stays in step; the upstream one is closed, never pooled.
    const dropRestOfBody = () => {
      if (req.complete) return
      req.unpipe(up)
      req.resume()
    }
    const onClientGone = () => {
      if (!res.writableFinished) up.destroy()
    }
    res.on('close', onClientGone)
    req.on('close', () => {
      if (!req.complete) up.destroy()
    })
    req.on('error', () => up.destroy())

    up.on('response', (ur) => {
      answered = true
      clearTimeout(timer)
      // Answered already (its body broke its framing, see router.ts), or the client is gone.
      if (res.writableEnded || res.destroyed) {
        up.destroy()
        return
      }
      // The app answered before it had the whole body: it may not read the rest, and then its
      // parser is not where ours thinks on this connection. It closes after this exchange.
      if (!up.writableFinished) up.shouldKeepAlive = false
      if (!responseFramingOk(ur)) {
        log.warn({ te: ur.headers['transfer-encoding'], target }, 'app sent an unusable framing')
        up.destroy()
        dropRestOfBody()
        sendError(req, res, errors.badGateway())
        return
      }
      try {
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, downstreamHeaders(ur))
      } catch (err) {
        // A head Node parsed but will not write (odd status or header bytes): the app's fault.
        log.warn({ err: (err as Error).message, target }, 'app sent an unusable response head')
        up.destroy()
        dropRestOfBody()
        sendError(req, res, errors.badGateway())
        return
      }
      // A streamed answer (no length) must show its headers now, not with its first chunk.
      if (ur.headers['content-length'] === undefined) res.flushHeaders()
      ur.pipe(res)
      ur.on('error', () => res.destroy())
      ur.on('end', () => {
        delivered = true
        dropRestOfBody()
      })
    })

    up.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      // The whole answer arrived (only the rest of an unwanted body failed to go), or the
      // client was answered by the router meanwhile.
      if (delivered || res.writableEnded) return
      res.off('close', onClientGone)
      if (res.headersSent || res.destroyed) {
        res.destroy()
        return
      }
      // A pooled connection the app closed while idle: try once more on a new one.
      if (mayRetry && up.reusedSocket && err.code === 'ECONNRESET') {
        attempt(false)
        return
      }
      dropRestOfBody()
      log.warn({ err: err.message, code: err.code, target }, 'app upstream failed')
      sendError(req, res, upstreamError(err, fresh))
    })

    if (bodyless) up.end()
    else req.pipe(up)
  }
  attempt(bodyless)
}
