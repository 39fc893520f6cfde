import fs from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import { authenticate, isAllowed } from './access.ts'
import type { ForwardContext } from './headers.ts'
import { parseHost } from './host.ts'
import { silentLogger, type RouterLogger } from './log.ts'
import { handleReserved, RESERVED_PREFIX } from './login.ts'
import { errors, sendError, type RouterError } from './pages.ts'
import { forwardHttp, Upstreams, type ProxyTimeouts, type Target } from './proxy.ts'
import { ensureWildcardCertificate } from './tls.ts'
import type { AppRoute, RouterDeps } from './types.ts'
import { forwardUpgrade, refuseUpgrade } from './upgrade.ts'

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

type Decision = { error: RouterError } | { route: AppRoute; target: Target }

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

  async function admit(req: http.IncomingMessage, route: AppRoute, checkAccess: boolean) {
    // A public app needs no caller; its platform credentials are still stripped on the way.
    if (checkAccess && route.visibility !== 'public') {
      const cred = await authenticate(deps, req.headers, route.subdomain)
      if (cred.badKey) return { error: errors.badKey() }
      if (!isAllowed(route, cred.caller))
        return { error: errors.forbidden(route.visibility, !!cred.caller) }
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
      const url = req.url ?? ''
      // Absolute-form targets would let the URL and Host disagree about which app is meant.
      if (!url.startsWith('/')) return sendError(req, res, errors.badRequest('Bad request target.'))
      const found = await findRoute(req)
      if (!found) return sendError(req, res, errors.notFound())
      if (url.startsWith(RESERVED_PREFIX))
        return handleReserved(deps, found.route, proto === 'https', req, res)
      // CORS preflights carry no credentials by design; the app answers them itself.
      const preflight =
        req.method === 'OPTIONS' &&
        !!req.headers.origin &&
        !!req.headers['access-control-request-method']
      const d: Decision = await admit(req, found.route, !preflight)
      if ('error' in d) return sendError(req, res, d.error)
      forwardHttp(d.target, req, res, context(req, proto, found.port), timeouts, upstreams, log)
    }

  const onUpgrade =
    (proto: 'http' | 'https') =>
    async (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      track(socket)
      socket.on('error', () => socket.destroy())
      const url = req.url ?? ''
      const found = url.startsWith('/') ? await findRoute(req) : null
      if (!found || url.startsWith(RESERVED_PREFIX))
        return refuseUpgrade(req, socket, errors.notFound())
      const d: Decision = await admit(req, found.route, true)
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
    server.on('clientError', (_err, socket: net.Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n')
      else socket.destroy()
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
