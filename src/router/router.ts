import fs from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import { authenticate, isAllowed } from './access.ts'
import { answerPreflight, isPreflight } from './cors.ts'
import { requestFraming } from './framing.ts'
import type { ForwardContext } from './headers.ts'
import { parseHost } from './host.ts'
import { silentLogger, type RouterLogger } from './log.ts'
import { handleReserved, RESERVED_PREFIX } from './login.ts'
import { meterRequest } from './metering.ts'
import { errors, rawErrorResponse, sendError, type RouterError } from './pages.ts'
import { forwardHttp, Upstreams, type ProxyTimeouts, type Target } from './proxy.ts'
import { ensureWildcardCertificate } from './tls.ts'
import type { AppRoute, RouterDeps } from './types.ts'
import { forwardUpgrade, refuseUpgrade, upgradeHasBody } from './upgrade.ts'

export interface RouterOptions {
  /** Listen address for both servers; default 127.0.0.1. */
  host?: string
  port: number
  tlsPort?: number
  /** A wildcard certificate for `*.<domain>`, or a local CA + certificate made into `dir`. */
  tls?: { certPath: string; keyPath: string } | { generate: { dir: string } }
  log?: RouterLogger
  connectTimeoutMs?: number
  responseTimeoutMs?: number
  /** Largest request or upstream response head accepted, bytes. */
  maxHeaderSize?: number
}

export interface Router {
  http: http.Server
  https?: https.Server
  /** The generated local CA, to print for the user to trust (only with `tls.generate`). */
  caPath?: string
  close(): Promise<void>
}

const DOMAIN =
  /^(?=.{1,200}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/

/** `denied`: the caller failed the access check (as opposed to the app being unreachable). */
type Decision = { error: RouterError; denied?: boolean } | { route: AppRoute; target: Target }

/**
 * The app router: `<sub>.<domain>` → access check → the app's loopback port. Everything that
 * decides whether a request may reach the VM happens in `admit`, before any byte is sent to it.
 */
export async function createRouter(deps: RouterDeps, opts: RouterOptions): Promise<Router> {
  const domain = deps.domain.toLowerCase()
  if (!DOMAIN.test(domain)) throw new Error(`invalid router domain ${JSON.stringify(deps.domain)}`)
  const log = opts.log ?? silentLogger
  const timeouts: ProxyTimeouts = {
    connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
    responseTimeoutMs: opts.responseTimeoutMs ?? 60_000,
    maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024,
  }
  const upstreams = new Upstreams()
  const upgraded = new Set<net.Socket>()
  // The request each client connection is being answered for: a body that breaks its framing
  // midway surfaces as a clientError on the socket, and is answered on that request.
  const inFlight = new WeakMap<
    net.Socket,
    { req: http.IncomingMessage; res: http.ServerResponse }
  >()
  const track = (s: net.Socket) => {
    upgraded.add(s)
    s.once('close', () => upgraded.delete(s))
  }

  const context = (req: http.IncomingMessage, proto: 'http' | 'https', port: number | null) =>
    ({
      clientIp: req.socket.remoteAddress ?? '',
      proto,
      port: port ?? (proto === 'https' ? 443 : 80),
    }) satisfies ForwardContext

  async function admit(req: http.IncomingMessage, route: AppRoute): Promise<Decision> {
    // A public app needs no caller; its platform credentials are still stripped on the way.
    if (route.visibility !== 'public') {
      const cred = await authenticate(deps, req, route.subdomain)
      if (cred.retryAfterS) return { error: errors.rateLimited(cred.retryAfterS), denied: true }
      if (cred.badKey) return { error: errors.badKey(), denied: true }
      if (!isAllowed(route, cred.caller))
        return { error: errors.forbidden(route.visibility, !!cred.caller), denied: true }
    }
    const target = await deps.upstream(route)
    if ('error' in target)
      return { error: target.error === 'not_running' ? errors.notRunning() : errors.portClosed() }
    return { route, target } satisfies Decision
  }

  async function findRoute(req: http.IncomingMessage) {
    const host = parseHost(req.headers.host, domain)
    if (!host) return null
    const route = await deps.lookup(host.subdomain)
    return route && route.enabled ? { route, port: host.port } : null
  }

  const onRequest =
    (proto: 'http' | 'https') => async (req: http.IncomingMessage, res: http.ServerResponse) => {
      const current = { req, res }
      inFlight.set(req.socket, current)
      res.once('close', () => {
        if (inFlight.get(req.socket) === current) inFlight.delete(req.socket)
      })
      const url = req.url ?? ''
      const framing = requestFraming(req)
      // Where this body ends is unclear, so where the next request starts is too: close after.
      if ('error' in framing)
        return sendError(req, res, errors.badRequest(framing.error), { close: true })
      // Absolute-form targets would let the URL and Host disagree about which app is meant.
      if (!url.startsWith('/')) return sendError(req, res, errors.badRequest('Bad request target.'))
      const found = await findRoute(req)
      if (!found) return sendError(req, res, errors.notFound())
      if (url.startsWith(RESERVED_PREFIX))
        return handleReserved(deps, found.route, proto === 'https', req, res)
      if (deps.onRequestDone) meterRequest(req, res, found.route, deps.onRequestDone)
      const ctx = context(req, proto, found.port)
      const d = await admit(req, found.route)
      if ('error' in d) {
        // Browsers send preflights without credentials: the router answers those itself.
        if (d.denied && isPreflight(req))
          return answerPreflight(deps, domain, found.route, req, res, ctx)
        return sendError(req, res, d.error)
      }
      // Answered meanwhile (its body broke its framing) or gone: nothing to forward.
      if (res.writableEnded || res.destroyed) return
      forwardHttp(d.target, req, res, framing, ctx, timeouts, upstreams, log)
    }

  const onUpgrade =
    (proto: 'http' | 'https') =>
    async (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      track(socket)
      socket.on('error', () => socket.destroy())
      const url = req.url ?? ''
      const framing = requestFraming(req)
      if ('error' in framing) return refuseUpgrade(req, socket, errors.badRequest(framing.error))
      if (upgradeHasBody(req))
        return refuseUpgrade(req, socket, errors.badRequest('An upgrade request has no body.'))
      const found = url.startsWith('/') ? await findRoute(req) : null
      if (!found || url.startsWith(RESERVED_PREFIX))
        return refuseUpgrade(req, socket, errors.notFound())
      const d = await admit(req, found.route)
      if ('error' in d) return refuseUpgrade(req, socket, d.error)
      const ctx = context(req, proto, found.port)
      forwardUpgrade(d.target, req, socket, head, ctx, timeouts, log, track)
    }

  const guard =
    <A extends unknown[]>(what: string, fn: (...a: A) => Promise<void>, fail: (...a: A) => void) =>
    (...a: A) => {
      fn(...a).catch((err: unknown) => {
        log.error({ err }, `router ${what} failed`)
        fail(...a)
      })
    }

  const wire = (server: http.Server, proto: 'http' | 'https') => {
    server.on(
      'request',
      guard('request', onRequest(proto), (req, res) => sendError(req, res, errors.internal())),
    )
    server.on(
      'upgrade',
      guard('upgrade', onUpgrade(proto), (req, socket) =>
        refuseUpgrade(req, socket, errors.internal()),
      ),
    )
    // Requests Node's parser refuses (see framing.ts), in the router's error shape; then close.
    server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW'
      const answer = tooLarge
        ? errors.headersTooLarge()
        : errors.badRequest('The request is malformed or its framing is ambiguous.')
      const current = inFlight.get(socket)
      if (current && !current.res.writableEnded) {
        if (current.req.complete) {
          // A later pipelined request is bad: finish this answer, then close.
          if (!current.res.headersSent) current.res.setHeader('connection', 'close')
          current.res.once('finish', () => socket.end())
        } else if (current.res.headersSent) socket.destroy()
        // Its head was fine, its body broke framing: any upstream copy is torn down as the
        // request ends incomplete (proxy.ts).
        else sendError(current.req, current.res, answer, { close: true })
        return
      }
      if (!socket.writable || err.code === 'ECONNRESET') return socket.destroy()
      socket.end(rawErrorResponse(answer, undefined))
      socket.setTimeout(5000, () => socket.destroy())
    })
    return server
  }

  const httpServer = wire(http.createServer({ maxHeaderSize: timeouts.maxHeaderSize }), 'http')
  let httpsServer: https.Server | undefined
  let caPath: string | undefined
  if (opts.tls) {
    let pair: { certPath: string; keyPath: string }
    if ('generate' in opts.tls) {
      if (!domain.includes('.'))
        log.warn(
          { domain },
          `TLS clients (browsers, curl, Node) refuse a wildcard certificate for *.${domain}: ` +
            `use a domain with two labels, e.g. rigbox.${domain}, for https`,
        )
      const made = await ensureWildcardCertificate(opts.tls.generate.dir, domain)
      pair = made
      caPath = made.caPath
    } else pair = opts.tls
    const [cert, key] = await Promise.all([fs.readFile(pair.certPath), fs.readFile(pair.keyPath)])
    httpsServer = wire(
      https.createServer({ cert, key, maxHeaderSize: timeouts.maxHeaderSize }),
      'https',
    ) as https.Server
  }

  const host = opts.host ?? '127.0.0.1'
  const listen = (server: http.Server, port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  await listen(httpServer, opts.port)
  const tlsPort = opts.tlsPort ?? 8443
  if (httpsServer) {
    try {
      await listen(httpsServer, tlsPort)
    } catch (err) {
      httpServer.close()
      throw err
    }
  }
  log.info(
    { host, port: opts.port, tlsPort: httpsServer ? tlsPort : undefined, domain },
    'app router listening',
  )

  const closeServer = (server: http.Server) =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      // Streams (SSE) and idle keep-alive connections would hold close() open forever.
      server.closeAllConnections()
    })

  return {
    http: httpServer,
    https: httpsServer,
    caPath,
    async close() {
      for (const s of upgraded) s.destroy()
      await Promise.all([closeServer(httpServer), httpsServer && closeServer(httpsServer)])
      upstreams.destroy()
    },
  }
}
