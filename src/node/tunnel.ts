// The outbound tunnel, node side (DESIGN.md §3, path 3): for each VM, connect to its `tunnel`
// chardev socket, handshake like the other ports, then serve HTTP/2 on it — the guest agent opens
// one stream per TCP connection a program in the VM made to 172.16.0.1:9090 (bridge) or :3128
// (egress). Identity is the socket: the workspace id a stream is handed over with is the one
// attach() bound to that socket path, never anything the VM sent.
import http2 from 'node:http2'
import type net from 'node:net'
import { Duplex } from 'node:stream'
import {
  cancelStream,
  TUNNEL_SERVICES,
  tunnelPath,
  type TunnelService,
} from '../../agent/tunnel.ts'
import { defaultConnectionOptions, handshake, keepalive } from '../guest/connection.ts'

export interface TunnelHandlers {
  bridge(conn: Duplex, workspaceId: string): void
  egress(conn: Duplex, workspaceId: string): void
}

export interface TunnelHostOptions {
  handlers: TunnelHandlers
  /** PING period (the guest resets a session after ~7 s without traffic). Default 2 s. */
  pingIntervalMs?: number
  /** Drop a session whose PING stays unanswered this long. Default 10 s. */
  pingTimeoutMs?: number
  log?: (msg: string) => void
}

/** One handshake attempt (it retries inside) before starting over; only bounds log noise. */
const HANDSHAKE_WINDOW_MS = 30_000
const RECONNECT_DELAY_MS = 100
/** How long a connection closed after its end may take to drain to the guest (see destroy). */
const LINGER_MS = 30_000
const SERVICE_BY_PATH = new Map<string, TunnelService>(
  TUNNEL_SERVICES.map((s) => [tunnelPath(s), s]),
)

interface Link {
  sockPath: string
  session: http2.ServerHttp2Session | null
  sessions: number
  stopped: boolean
}

export class TunnelHost {
  private readonly links = new Map<string, Link>()
  private readonly server: http2.Http2Server
  private readonly log: (msg: string) => void
  private closed = false

  constructor(private readonly opts: TunnelHostOptions) {
    this.log = opts.log ?? (() => {})
    // The guest is untrusted: small headers, bounded streams and session memory.
    this.server = http2.createServer({
      settings: { initialWindowSize: 1 << 20, maxConcurrentStreams: 512, maxHeaderListSize: 8192 },
      maxSessionMemory: 64,
    })
  }

  /**
   * Serves the tunnel of `workspaceId` at `tunnelSockPath` (QEMU's `tunnel` chardev, server
   * mode) until detach: connects, handshakes and reconnects for as long as it takes — the VM
   * may still be booting, its agent may restart, or this process may be adopting a running VM.
   * Attaching again with the same path is a no-op; with another path it replaces the link.
   */
  attach(workspaceId: string, tunnelSockPath: string): void {
    if (this.closed) throw new Error('tunnel host closed')
    const cur = this.links.get(workspaceId)
    if (cur?.sockPath === tunnelSockPath) return
    if (cur) stop(cur)
    const link: Link = { sockPath: tunnelSockPath, session: null, sessions: 0, stopped: false }
    this.links.set(workspaceId, link)
    this.loop(workspaceId, link).catch((e: unknown) =>
      this.log(`tunnel ${workspaceId}: loop crashed: ${String(e)}`),
    )
  }

  /** Stops serving a workspace's tunnel; its open connections are reset. */
  detach(workspaceId: string): void {
    const l = this.links.get(workspaceId)
    if (l) stop(l)
    this.links.delete(workspaceId)
  }

  close(): void {
    this.closed = true
    for (const l of this.links.values()) stop(l)
    this.links.clear()
  }

  /** Whether a session with the guest is up now, and how many there have been (tests, status). */
  status(workspaceId: string): { connected: boolean; sessions: number } | null {
    const l = this.links.get(workspaceId)
    return l ? { connected: !!l.session && !l.session.destroyed, sessions: l.sessions } : null
  }

  /** Handshake → HTTP/2 server session → (lost) → again, until the link is stopped. */
  private async loop(ws: string, link: Link): Promise<void> {
    const name = `tunnel ${ws}`
    let quiet = 0
    while (!link.stopped) {
      let sock: net.Socket
      let rest: Buffer
      try {
        const deadline = Date.now() + HANDSHAKE_WINDOW_MS
        ;({ sock, rest } = await handshake(link.sockPath, deadline, () => link.stopped, name))
      } catch (e) {
        if (!link.stopped && quiet++ === 0) this.log(`${name}: ${(e as Error).message}`)
        continue
      }
      quiet = 0
      if (link.stopped) {
        sock.destroy()
        break
      }
      if (rest.length) sock.unshift(rest)
      await this.serve(ws, link, sock)
      await new Promise((r) => setTimeout(r, RECONNECT_DELAY_MS))
    }
  }

  /** Runs one session; resolves when it is gone. */
  private serve(ws: string, link: Link, sock: net.Socket): Promise<void> {
    const name = `tunnel ${ws}`
    let s: http2.ServerHttp2Session | null = null
    // The server emits 'session' synchronously from its connection listener.
    const onSession = (session: http2.ServerHttp2Session): void => {
      s = session
    }
    this.server.once('session', onSession)
    this.server.emit('connection', sock)
    this.server.off('session', onSession)
    const session = s as http2.ServerHttp2Session | null
    if (!session) {
      sock.destroy()
      return Promise.resolve()
    }
    link.session = session
    link.sessions++
    const { pingIntervalMs, pingTimeoutMs } = defaultConnectionOptions
    keepalive(
      session,
      {
        pingIntervalMs: this.opts.pingIntervalMs ?? pingIntervalMs,
        pingTimeoutMs: this.opts.pingTimeoutMs ?? pingTimeoutMs,
        log: this.log,
      },
      name,
    )
    session.on('stream', (stream, headers) => this.route(stream, headers, ws))
    session.on('error', (e) => this.log(`${name}: session error: ${e.message}`))
    // A closed socket (the guest side is gone for good, e.g. QEMU exited) ends the session.
    sock.once('close', () => session.destroy())
    return new Promise((resolve) => {
      session.once('close', () => {
        if (link.session === session) link.session = null
        sock.destroy()
        resolve()
      })
    })
  }

  private route(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ws: string) {
    stream.on('error', () => {}) // a reset from the guest shows as 'close' on the adapter
    const path = headers[':path'] ?? ''
    const service = headers[':method'] === 'POST' ? SERVICE_BY_PATH.get(path) : undefined
    if (!service) {
      stream.respond({ ':status': 404 }, { endStream: true })
      stream.close(http2.constants.NGHTTP2_CANCEL) // and read nothing more of it
      return
    }
    stream.respond({ ':status': 200 })
    const conn = new StreamSocket(stream)
    try {
      this.opts.handlers[service](conn, ws)
    } catch (e) {
      this.log(`tunnel ${ws}: ${service} handler: ${String(e)}`)
      conn.destroy()
    }
  }
}

function stop(link: Link): void {
  link.stopped = true
  // Destroying the session destroys its streams: every tunnelled connection is reset.
  link.session?.destroy()
}

/**
 * An HTTP/2 stream dressed as the socket Node's HTTP servers (Fastify's, the egress proxy's)
 * expect. Handing them the stream itself does not work: they write their response head as
 * string chunks through writev, and an Http2Stream garbles those (measured on Node 20.20: the
 * first ~17 bytes of every response arrived corrupted); it also lacks setNoDelay/setKeepAlive.
 * Strings become Buffers here (decodeStrings), ends are carried both ways (half-close), and
 * flow control is kept by pausing the stream when the consumer is full.
 *
 * Like a TCP socket, a write is done once the stream (the "kernel buffer") has taken it, and
 * destroy() after end() still delivers what was taken: the egress proxy destroys a client as
 * soon as the origin has closed, which would otherwise cut the tail off every slow download.
 */
export class StreamSocket extends Duplex {
  /** Not an IP connection: there is no peer address (identity is the workspace id). */
  readonly remoteAddress: string | undefined = undefined
  readonly remotePort: number | undefined = undefined
  /** destroy() was called; the real one waits for what was written to be handed over. */
  private closing = false

  constructor(private readonly stream: http2.ServerHttp2Stream) {
    super({ allowHalfOpen: true })
    stream.on('data', (c: Buffer) => {
      // Once this is closing the stream keeps flowing: what the guest still sends is dropped.
      if (!this.closing && !this.destroyed && !this.push(c)) stream.pause()
    })
    // Node also ends the readable side of a stream whose session is destroyed: only an end
    // seen before that is the guest's END_STREAM (its client half-closed).
    let ended = false
    stream.once('end', () => {
      if (stream.destroyed) return
      ended = true
      this.push(null)
    })
    stream.on('timeout', () => this.emit('timeout'))
    stream.once('close', () => {
      // Both sides ended: this closes by itself (autoDestroy) once its consumer is done.
      // Anything else — a reset from the guest, the session gone — ends it now.
      if (!ended || !stream.writableFinished) Duplex.prototype.destroy.call(this)
    })
  }

  /**
   * A handler that ended its side and then destroys (the egress proxy does, once the origin
   * has closed) still gets everything it wrote delivered, as a socket would: the destroy waits
   * for 'finish'. Without end() first, or with an error, it is immediate (the guest resets).
   */
  override destroy(err?: Error): this {
    if (err || this.destroyed || this.closing || !this.writableEnded || this.writableFinished) {
      return super.destroy(err)
    }
    this.closing = true
    this.stream.resume()
    // Bounded: a VM client that never reads must not pin this forever.
    const t = setTimeout(() => super.destroy(), LINGER_MS)
    t.unref()
    this.once('finish', () => {
      clearTimeout(t)
      super.destroy()
    })
    return this
  }

  override _read(): void {
    this.stream.resume()
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    const s = this.stream
    // A gone stream: 'close' above tears this down; the write is dropped like a socket's.
    if (s.destroyed || s.closed || s.writableEnded || s.write(chunk)) return cb()
    const done = (): void => {
      s.off('drain', done)
      s.off('close', done)
      cb()
    }
    s.on('drain', done)
    s.on('close', done)
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.stream.closed && !this.stream.writableEnded) this.stream.end()
    cb()
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    const s = this.stream
    if (s.writableEnded && !s.closed) {
      // Ended: let what the stream holds drain to the guest and its END_STREAM follow, and
      // read nothing more. Never a NO_ERROR reset: node reads one as a clean end of stream,
      // and it could overtake the data still queued (the client would get a cut-off answer).
      s.resume()
      const t = setTimeout(() => cancelStream(s), LINGER_MS)
      t.unref()
      s.once('close', () => clearTimeout(t))
    } else {
      // Cut off mid-answer: CANCEL, and the guest resets the client's TCP connection.
      cancelStream(s)
    }
    cb(err)
  }

  setTimeout(ms: number, cb?: () => void): this {
    this.stream.setTimeout(ms)
    if (cb) this.once('timeout', cb)
    return this
  }

  setNoDelay(): this {
    return this
  }

  setKeepAlive(): this {
    return this
  }
}
