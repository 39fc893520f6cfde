import http from 'node:http'
import { downstreamHeaders, upstreamHeaders, type ForwardContext } from './headers.ts'
import { errors, sendError, type RouterError } from './pages.ts'
import type { RouterLogger } from './log.ts'

export interface Target {
  host: string
  port: number
}

export interface ProxyTimeouts {
  /** TCP connect to the upstream (the hostfwd port). */
  connectTimeoutMs: number
  /** From the request fully sent to the response's headers. */
  responseTimeoutMs: number
  maxHeaderSize: number
}

class UpstreamTimeout extends Error {
  code = 'UPSTREAM_TIMEOUT'
}

const AGENT_CACHE_MAX = 512

/**
 * One keep-alive agent per upstream address. Apps' hostfwd ports change as VMs restart, so the
 * map is bounded; the least recently used agent (and its idle sockets) goes first.
 */
export class Upstreams {
  private agents = new Map<string, http.Agent>()

  agent(t: Target): http.Agent {
    const key = `${t.host}:${t.port}`
    let agent = this.agents.get(key)
    if (agent) {
      this.agents.delete(key)
    } else {
      agent = new http.Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64 })
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
  // QEMU's hostfwd accepts and then closes at once when the guest port is closed.
  if (err.code === 'ECONNREFUSED' || (err.code === 'ECONNRESET' && freshSocket))
    return errors.portClosed()
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

/**
 * Streams the request to the upstream and its answer back, chunk by chunk (no buffering, so SSE
 * and chunked responses arrive as they are produced).
 */
export function forwardHttp(
  target: Target,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  ctx: ForwardContext,
  timeouts: ProxyTimeouts,
  upstreams: Upstreams,
  log: RouterLogger,
): void {
  const headers = upstreamHeaders(req, ctx)
  const bodyless =
    (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') &&
    !req.headers['content-length'] &&
    !req.headers['transfer-encoding']

  const attempt = (mayRetry: boolean) => {
    const up = http.request({
      host: target.host,
      port: target.port,
      method: req.method,
      path: req.url,
      headers,
      agent: upstreams.agent(target),
      maxHeaderSize: timeouts.maxHeaderSize,
      setHost: false,
    })
    let responseTimer: NodeJS.Timeout | undefined
    let fresh = false
    up.on('socket', (socket) => {
      fresh = socket.connecting
      startConnectTimer(socket, timeouts.connectTimeoutMs, (err) => up.destroy(err))
    })
    up.on('finish', () => {
      responseTimer = setTimeout(
        () => up.destroy(new UpstreamTimeout('upstream response timed out')),
        timeouts.responseTimeoutMs,
      )
    })
    const onClientGone = () => {
      if (!res.writableFinished) up.destroy()
    }
    res.on('close', onClientGone)

    up.on('response', (ur) => {
      clearTimeout(responseTimer)
      try {
        res.writeHead(ur.statusCode ?? 502, ur.statusMessage, downstreamHeaders(ur))
      } catch (err) {
        // A head Node parsed but will not write (odd status or header bytes): the app's fault.
        log.warn({ err: (err as Error).message, target }, 'app sent an unusable response head')
        ur.destroy()
        sendError(req, res, errors.badGateway())
        return
      }
      // A streamed answer (no length) must show its headers now, not with its first chunk.
      if (ur.headers['content-length'] === undefined) res.flushHeaders()
      ur.pipe(res)
      ur.on('error', () => res.destroy())
    })

    up.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(responseTimer)
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
      const answer = upstreamError(err, fresh)
      log.warn({ err: err.message, code: err.code, target }, 'app upstream failed')
      sendError(req, res, answer)
    })

    if (bodyless) up.end()
    else req.pipe(up)
  }
  attempt(bodyless)
}
