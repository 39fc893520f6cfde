import http from 'node:http'
import type net from 'node:net'
import type { Duplex } from 'node:stream'
import { parseHost } from './address.ts'
import { forwardRequest, parseAuthority, parseTarget, upgradeHead } from './forward.ts'
import { defaultResolve, interfaceAddresses, withTimeout } from './lookup.ts'
import { decide, decideByName, type EgressPolicy } from './policy.ts'
import { answerRaw, connectUpstream, splice, UpstreamError } from './tunnel.ts'

/** The slice of a pino logger the proxy uses. */
export interface EgressLogger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface EgressProxyOptions {
  /** The workspace's current policy; asked on every connection, so changes apply at once. */
  policyFor(workspaceId: string): Promise<EgressPolicy>
  /** Host name → IP addresses; default `dns.promises.lookup` with `all: true`. */
  resolve?: (host: string) => Promise<string[]>
  /** TCP connect to the origin; also the longest wait for `resolve` and `policyFor`. 10 s. */
  connectTimeoutMs?: number
  /** An origin connection with no byte either way for this long is closed. Default 5 min. */
  idleTimeoutMs?: number
  /** A client connection waiting this long for (the rest of) a request head is closed. 60 s. */
  clientIdleTimeoutMs?: number
  /** Largest request head (client) and response head (origin), bytes. Default 16 KiB. */
  maxHeaderSize?: number
  /** Open origin connections per workspace; more are answered 429. Default 256. */
  maxConnectionsPerWorkspace?: number
  /** The node's own addresses (refused); default every address of `os.networkInterfaces()`. */
  nodeAddresses?: () => Iterable<string>
  /** Let explicit allow entries open loopback and other host-local addresses (tests only). */
  allowHostLocal?: boolean
  /** The operator's allow list (RIGBOX_EGRESS_ALLOW): addresses and CIDRs open to every workspace. */
  operatorAllow?: readonly string[]
  log?: EgressLogger
}

/** Per workspace: egress attempts, how many the policy refused, bytes from / to the origins. */
export interface EgressStats {
  connections: number
  refused: number
  /** Bytes received from origins (towards the workspace). */
  bytes_in: number
  /** Bytes sent to origins (from the workspace). */
  bytes_out: number
  /** Origin connections open now. */
  active: number
}

export interface EgressProxy {
  /** Serve one connection from a workspace; identity is the channel it arrived on. */
  handle(conn: Duplex, workspaceId: string): void
  stats(workspaceId: string): EgressStats
  /** Ends every connection; later ones are closed at once. */
  close(): void
}

interface Counters {
  connections: number
  refused: number
  bytesIn: number
  bytesOut: number
  live: Set<net.Socket>
}

interface ClientState {
  workspaceId: string
  inFlight: number
  timer?: NodeJS.Timeout
  tunnelled: boolean
}

type Admission = { address: string } | { status: number; message: string }

const silent: EgressLogger = { info() {}, warn() {} }

/**
 * The node's egress proxy (DESIGN.md §3): every outbound connection a workspace makes arrives here
 * over its tunnel, speaks HTTP proxy (CONNECT, or absolute-form requests), is checked against the
 * workspace's policy, and goes out to the one address that was checked.
 */
export function createEgressProxy(opts: EgressProxyOptions): EgressProxy {
  const log = opts.log ?? silent
  const resolve = opts.resolve ?? defaultResolve
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000
  const idleTimeoutMs = opts.idleTimeoutMs ?? 300_000
  const clientIdleTimeoutMs = opts.clientIdleTimeoutMs ?? 60_000
  const maxHeaderSize = opts.maxHeaderSize ?? 16 * 1024
  const maxLive = opts.maxConnectionsPerWorkspace ?? 256
  const nodeAddresses = opts.nodeAddresses ?? interfaceAddresses
  const counters = new Map<string, Counters>()
  const clients = new Map<Duplex, ClientState>()
  let closed = false

  const countersFor = (ws: string) => {
    let c = counters.get(ws)
    if (!c)
      counters.set(
        ws,
        (c = { connections: 0, refused: 0, bytesIn: 0, bytesOut: 0, live: new Set() }),
      )
    return c
  }

  // Never listens: connections come from the tunnels through `handle`. Node's own header and
  // keep-alive timers only run on a listening server, so the idle timers below do that work.
  const server = http.createServer({ maxHeaderSize, requireHostHeader: false })
  server.keepAliveTimeout = 0
  server.requestTimeout = 0
  // A client that has sent its request and half-closed (shutdown(SHUT_WR), `nc -N`) still gets
  // the whole answer, then its end; Node's default answers such a client's end by aborting the
  // request in flight. Not in Node's types, nor settable through createServer's options.
  Object.assign(server, { httpAllowHalfOpen: true })

  const arm = (conn: Duplex, st: ClientState) => {
    clearTimeout(st.timer)
    if (st.inFlight === 0 && !st.tunnelled)
      st.timer = setTimeout(() => conn.destroy(), clientIdleTimeoutMs)
  }
  const disarm = (st: ClientState) => clearTimeout(st.timer)

  async function admit(ws: string, rawHost: string, port: number): Promise<Admission> {
    const c = countersFor(ws)
    c.connections++
    const refuse = (reason: string): Admission => {
      c.refused++
      log.info({ workspaceId: ws, host: rawHost, port, reason }, 'egress refused')
      return { status: 403, message: reason }
    }
    const host = parseHost(rawHost)
    if (!host) return refuse(`egress to ${JSON.stringify(rawHost)} refused: not a valid host`)
    if (c.live.size >= maxLive)
      return { status: 429, message: `too many open egress connections (${maxLive})` }
    let policy: EgressPolicy
    try {
      policy = await withTimeout(opts.policyFor(ws), connectTimeoutMs)
    } catch (err) {
      log.warn({ workspaceId: ws, err: (err as Error).message }, 'egress policy unavailable')
      return { status: 503, message: 'egress policy unavailable; try again' }
    }
    const decideOpts = { allowHostLocal: opts.allowHostLocal, operatorAllow: opts.operatorAllow }
    const early = decideByName(policy, rawHost, port, decideOpts)
    if (early) return refuse(early.reason)
    let resolved: string[] = []
    if (host.kind === 'name') {
      try {
        resolved = await withTimeout(resolve(host.name), connectTimeoutMs)
      } catch {
        return { status: 502, message: `egress to ${host.name} failed: could not resolve the name` }
      }
    }
    const d = decide(
      policy,
      { host: rawHost, port, resolved },
      new Set(nodeAddresses()),
      decideOpts,
    )
    if (!d.allowed || !d.address) return refuse(d.reason)
    log.info({ workspaceId: ws, host: rawHost, port, address: d.address }, 'egress allowed')
    return { address: d.address }
  }

  /** Opens the origin connection, counted against the workspace from the first byte. */
  function open(ws: string, address: string, port: number, shown: string) {
    const c = countersFor(ws)
    const up = connectUpstream(address, port, connectTimeoutMs, idleTimeoutMs, shown)
    c.live.add(up.socket)
    up.socket.once('close', () => {
      c.live.delete(up.socket)
      c.bytesIn += up.socket.bytesRead
      c.bytesOut += up.socket.bytesWritten
    })
    return up
  }

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const conn = req.socket as Duplex
    const st = clients.get(conn)
    if (!st) return void conn.destroy()
    st.inFlight++
    disarm(st)
    res.once('close', () => {
      st.inFlight--
      arm(conn, st)
    })
    const fail = (status: number, message: string) => {
      if (res.destroyed) return
      if (res.headersSent) return void res.destroy()
      // The request body may be unread and unbounded: end the connection with the answer.
      res.writeHead(status, {
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': Buffer.byteLength(`${message}\n`),
        Connection: 'close',
      })
      res.end(`${message}\n`)
    }
    const url = parseTarget(req.url)
    if ('error' in url) return fail(400, url.error)
    const port = url.port ? Number(url.port) : 80
    const shown = `${url.hostname}:${port}`
    admit(st.workspaceId, url.hostname, port)
      .then(async (a) => {
        if ('status' in a) return fail(a.status, a.message)
        if (res.destroyed) return
        const up = open(st.workspaceId, a.address, port, shown)
        res.once('close', () => {
          if (!res.writableFinished) up.socket.destroy()
        })
        await up.ready
        forwardRequest(req, res, url, up.socket, maxHeaderSize, { fail }, shown)
      })
      .catch((err: Error) => fail(err instanceof UpstreamError ? err.status : 502, err.message))
  })

  // CONNECT (`host:port`) and upgrades (`GET http://…` with `Upgrade:`) leave HTTP: once
  // admitted, bytes are carried as they are until either side closes.
  const tunnel = (req: http.IncomingMessage, conn: Duplex, head: Buffer) => {
    const st = clients.get(conn)
    if (!st) return void conn.destroy()
    st.tunnelled = true
    disarm(st)
    // Node's HTTP handlers are gone from the connection now: without this an error would throw.
    conn.on('error', () => conn.destroy())
    let target: { host: string; port: number } | null
    let url: URL | null = null
    if (req.method === 'CONNECT') {
      target = parseAuthority(req.url)
      if (!target) return answerRaw(conn, 400, 'CONNECT needs host:port')
    } else {
      const u = parseTarget(req.url)
      if ('error' in u) return answerRaw(conn, 400, u.error)
      url = u
      target = { host: u.hostname, port: u.port ? Number(u.port) : 80 }
    }
    const { host, port } = target
    const shown = `${host}:${port}`
    admit(st.workspaceId, host, port)
      .then(async (a) => {
        if ('status' in a) return answerRaw(conn, a.status, a.message)
        if (conn.destroyed) return
        const up = open(st.workspaceId, a.address, port, shown)
        // Until the bytes flow, a client gone takes the origin connection with it; from then
        // on splice decides, so a clean close still lets the other side drain.
        const abandon = () => up.socket.destroy()
        conn.once('close', abandon)
        await up.ready
        if (conn.destroyed) return
        conn.off('close', abandon)
        if (url) up.socket.write(upgradeHead(req, url))
        else conn.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        if (head.length) up.socket.write(head)
        splice(conn, up.socket)
      })
      .catch((err: Error) =>
        answerRaw(conn, err instanceof UpstreamError ? err.status : 502, err.message),
      )
  }
  server.on('connect', tunnel)
  server.on('upgrade', tunnel)

  // A head that does not parse or is too large: answer and close (Node would otherwise just
  // drop the connection, since this server never listens on its own).
  server.on('clientError', (err: NodeJS.ErrnoException, conn: Duplex) => {
    if (!conn.writable || conn.destroyed) return void conn.destroy()
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
    conn.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    conn.once('finish', () => conn.destroy())
    setTimeout(() => conn.destroy(), 1000).unref()
  })

  return {
    handle(conn, workspaceId) {
      if (closed) return void conn.destroy()
      const st: ClientState = { workspaceId, inFlight: 0, tunnelled: false }
      clients.set(conn, st)
      conn.once('close', () => {
        disarm(st)
        clients.delete(conn)
      })
      arm(conn, st)
      server.emit('connection', conn)
    },
    stats(workspaceId) {
      const c = counters.get(workspaceId)
      if (!c) return { connections: 0, refused: 0, bytes_in: 0, bytes_out: 0, active: 0 }
      let bytesIn = c.bytesIn
      let bytesOut = c.bytesOut
      for (const s of c.live) {
        bytesIn += s.bytesRead
        bytesOut += s.bytesWritten
      }
      return {
        connections: c.connections,
        refused: c.refused,
        bytes_in: bytesIn,
        bytes_out: bytesOut,
        active: c.live.size,
      }
    },
    close() {
      closed = true
      for (const conn of clients.keys()) conn.destroy()
      for (const c of counters.values()) for (const s of c.live) s.destroy()
    },
  }
}
