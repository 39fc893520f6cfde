// Host side of one guest port (agent or bulk): connect to QEMU's chardev socket, handshake,
// HTTP/2 client session, keepalive PINGs, and reconnect after loss.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import http2 from 'node:http2'
import net from 'node:net'
import { scanForOk, SYNC_INTERVAL_MS, syncLine } from '../../agent/protocol.ts'
import { GuestUnavailableError } from './errors.ts'

export interface ConnectionOptions {
  /** PING period; the guest resets a session after ~7 s without traffic, so keep this well below. */
  pingIntervalMs: number
  /** Drop the session when a PING stays unanswered this long. */
  pingTimeoutMs: number
  /** How long a call waits for a lost session to come back. */
  reconnectTimeoutMs: number
  log: (msg: string) => void
}

export const defaultConnectionOptions: ConnectionOptions = {
  pingIntervalMs: 2000,
  pingTimeoutMs: 10_000,
  reconnectTimeoutMs: 15_000,
  log: () => {},
}

const CONNECT_RETRY_MS = 100
const CLIENT_SETTINGS: http2.Settings = {
  initialWindowSize: 4 << 20,
  maxHeaderListSize: 64 * 1024,
  enablePush: false,
}

export class PortConnection extends EventEmitter {
  private session: http2.ClientHttp2Session | null = null
  private pending: Promise<http2.ClientHttp2Session> | null = null
  private closed = false
  /** Sessions established so far (tests and logs). */
  sessions = 0

  constructor(
    readonly name: string,
    readonly sockPath: string,
    private readonly opts: ConnectionOptions,
  ) {
    super()
  }

  /** The live session, or a new one (connect + handshake) within `timeoutMs`. */
  get(timeoutMs = this.opts.reconnectTimeoutMs): Promise<http2.ClientHttp2Session> {
    if (this.closed)
      return Promise.reject(new GuestUnavailableError(`${this.name}: channel closed`))
    const s = this.session
    if (s && !s.closed && !s.destroyed) return Promise.resolve(s)
    // One connect attempt at a time; concurrent callers share it.
    this.pending ??= this.open(Date.now() + timeoutMs).finally(() => {
      this.pending = null
    })
    return this.pending
  }

  close(): void {
    this.closed = true
    const s = this.session
    this.session = null
    if (s && !s.destroyed) s.close()
    // A clean GOAWAY first; do not wait forever for streams the guest keeps open.
    setTimeout(() => s?.destroy(), 1000).unref()
  }

  private async open(deadline: number): Promise<http2.ClientHttp2Session> {
    const { sock, rest } = await handshake(this.sockPath, deadline, () => this.closed, this.name)
    if (this.closed) {
      sock.destroy()
      throw new GuestUnavailableError(`${this.name}: channel closed`)
    }
    if (rest.length) sock.unshift(rest)
    const session = http2.connect('http://guest', {
      createConnection: () => sock,
      settings: CLIENT_SETTINGS,
      maxSessionMemory: 64,
    })
    session.on('error', (e) => this.opts.log(`${this.name}: session error: ${e.message}`))
    session.on('connect', () => session.setLocalWindowSize(32 << 20))
    this.session = session
    this.sessions++
    this.keepalive(session)
    session.once('close', () => {
      if (this.session === session) this.session = null
      this.emit('lost', session)
    })
    this.emit('connected', session)
    return session
  }

  /** PINGs keep the guest's watchdog fed and tell us when the guest stopped answering. */
  private keepalive(session: http2.ClientHttp2Session): void {
    keepalive(session, this.opts, this.name)
  }
}

/**
 * Connects to the chardev socket and repeats `SYNC <nonce>` until the guest answers. The socket
 * may not exist yet (QEMU starting) and the guest may not be listening yet (booting): both are
 * retried until the deadline. Returns the socket and any bytes read past the OK line.
 */
export async function handshake(
  sockPath: string,
  deadline: number,
  cancelled: () => boolean = () => false,
  name = sockPath,
): Promise<{ sock: net.Socket; rest: Buffer }> {
  let lastErr = 'no attempt'
  while (Date.now() < deadline && !cancelled()) {
    let sock: net.Socket
    try {
      sock = await connectUnix(sockPath, deadline - Date.now())
    } catch (e) {
      lastErr = (e as Error).message
      await sleep(CONNECT_RETRY_MS)
      continue
    }
    const rest = await sync(sock, deadline, cancelled)
    if (rest) return { sock, rest }
    lastErr = 'no answer to SYNC'
    sock.destroy()
    await sleep(CONNECT_RETRY_MS)
  }
  throw new GuestUnavailableError(`${name}: guest did not answer in time (${lastErr})`)
}

/**
 * PINGs a session of a guest port (client or server side) every `pingIntervalMs`: they keep the
 * guest's watchdog fed, and a PING unanswered for `pingTimeoutMs` destroys the session.
 */
export function keepalive(
  session: http2.Http2Session,
  opts: Pick<ConnectionOptions, 'pingIntervalMs' | 'pingTimeoutMs' | 'log'>,
  name: string,
): void {
  let outstanding = 0
  const timer = setInterval(() => {
    if (session.destroyed) return clearInterval(timer)
    if (outstanding && Date.now() - outstanding > opts.pingTimeoutMs) {
      opts.log(`${name}: no PING answer for ${opts.pingTimeoutMs} ms; dropping`)
      clearInterval(timer)
      session.destroy()
      return
    }
    if (outstanding) return
    const sent = Date.now()
    outstanding = sent
    const ok = session.ping((err) => {
      if (!err && outstanding === sent) outstanding = 0
    })
    if (!ok) outstanding = 0
  }, opts.pingIntervalMs)
  timer.unref()
  session.once('close', () => clearInterval(timer))
}

function connectUnix(p: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path: p, allowHalfOpen: true })
    const timer = setTimeout(
      () => {
        sock.destroy()
        reject(new Error('connect timeout'))
      },
      Math.max(1, timeoutMs),
    )
    sock.once('connect', () => {
      clearTimeout(timer)
      sock.off('error', onError)
      // Errors after this point surface as a closed socket or session; never as a crash.
      sock.on('error', () => {})
      resolve(sock)
    })
    const onError = (e: Error): void => {
      clearTimeout(timer)
      reject(e)
    }
    sock.once('error', onError)
  })
}

/** Resolves with the bytes after `OK <nonce>`, or null if the socket closed or time ran out. */
function sync(
  sock: net.Socket,
  deadline: number,
  cancelled: () => boolean,
): Promise<Buffer | null> {
  const nonce = randomBytes(12).toString('hex')
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0)
    const done = (v: Buffer | null): void => {
      clearInterval(timer)
      sock.off('data', onData)
      sock.off('close', onClose)
      sock.off('error', onClose)
      if (v) sock.pause()
      resolve(v)
    }
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
      const r = scanForOk(buf, nonce)
      if ('rest' in r) return done(r.rest)
      buf = r.keep
    }
    const onClose = (): void => done(null)
    // Repeat: the guest may have the port closed (bytes lost) or not be running yet.
    const timer = setInterval(() => {
      if (Date.now() >= deadline || cancelled()) return done(null)
      sock.write(syncLine(nonce))
    }, SYNC_INTERVAL_MS)
    sock.on('data', onData)
    sock.once('close', onClose)
    sock.once('error', onClose)
    sock.write(syncLine(nonce))
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
