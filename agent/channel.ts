// One port's life in the guest: open → handshake → HTTP/2 session → (watchdog | error | EOF |
// fresh SYNC) → tear everything down → reopen. Everything a session started is tied to its
// streams, so destroying the session releases child processes, files and pipes with it.
import http2 from 'node:http2'
import type net from 'node:net'
import { afterOk, okLine, scanForSync } from './protocol.ts'

export interface ChannelOptions {
  /** Reset when nothing arrived from the host for this long (host PINGs every ~2 s). */
  watchdogMs: number
  /** Pause before reopening the port (the device needs ~100–150 ms anyway). */
  reopenDelayMs: number
  /** Give up on a host that answered nothing after our OK for this long. */
  prefaceTimeoutMs: number
  log: (msg: string) => void
}

export const defaultChannelOptions: Omit<ChannelOptions, 'log'> = {
  watchdogMs: 7000,
  reopenDelayMs: 150,
  prefaceTimeoutMs: 10_000,
}

const WATCHDOG_TICK_MS = 1000

/**
 * Starts HTTP/2 on a port once the handshake is done. On `agent` and `bulk` the guest serves
 * (see serveOn); on `tunnel` it is the client, since there the guest opens the streams.
 */
export type SessionStarter = (sock: net.Socket) => http2.Http2Session | null

/** The guest as the HTTP/2 server of a port: the session `server` makes for the socket. */
export function serveOn(server: http2.Http2Server): SessionStarter {
  return (sock) => {
    let session: http2.ServerHttp2Session | null = null
    // The server emits 'session' synchronously from its connection listener.
    const onSession = (s: http2.ServerHttp2Session): void => {
      session = s
    }
    server.once('session', onSession)
    server.emit('connection', sock)
    server.off('session', onSession)
    return session
  }
}

export class PortChannel {
  private stopped = false
  private current: (() => void) | null = null
  private readonly startSession: SessionStarter
  /** Number of HTTP/2 sessions established so far (for logs and tests). */
  sessions = 0

  constructor(
    readonly name: string,
    private readonly open: () => Promise<net.Socket>,
    server: http2.Http2Server | SessionStarter,
    private readonly opts: ChannelOptions,
  ) {
    this.startSession = typeof server === 'function' ? server : serveOn(server)
  }

  start(): void {
    this.loop().catch((e: unknown) => this.opts.log(`${this.name}: loop crashed: ${String(e)}`))
  }

  stop(): void {
    this.stopped = true
    this.current?.()
  }

  private async loop(): Promise<void> {
    let quiet = 0
    while (!this.stopped) {
      let sock: net.Socket
      try {
        sock = await this.open()
      } catch (e) {
        // Log once per streak: the port may legitimately be missing for a while in dev mode.
        if (quiet++ === 0) this.opts.log(`${this.name}: cannot open port: ${(e as Error).message}`)
        await sleep(500)
        continue
      }
      quiet = 0
      const reason = await this.run(sock)
      // EOF before any handshake is how a port says "no host connected": do not log those.
      if (reason !== 'eof-idle') this.opts.log(`${this.name}: connection closed (${reason})`)
      await sleep(reason === 'eof-idle' ? 250 : this.opts.reopenDelayMs)
    }
  }

  /** Runs one open port until it is finished; resolves with the reason. */
  private run(sock: net.Socket): Promise<string> {
    return new Promise((resolve) => {
      let phase: 'wait' | 'afterOk' | 'http2' = 'wait'
      let buf: Buffer = Buffer.alloc(0)
      let nonce = ''
      let session: http2.Http2Session | null = null
      let gotData = false
      let lastRx = Date.now()
      let lastTick = Date.now()
      let prefaceTimer: NodeJS.Timeout | null = null
      let done = false

      const finish = (reason: string): void => {
        if (done) return
        done = true
        this.current = null
        clearInterval(watchdog)
        if (prefaceTimer) clearTimeout(prefaceTimer)
        sock.off('data', onData)
        // Destroying the session destroys its streams; their 'close' handlers kill children
        // and close files. Then the fd is closed so the port can be reopened clean.
        session?.destroy()
        sock.destroy()
        resolve(reason)
      }
      this.current = () => finish('stopped')

      const watchdog = setInterval(() => {
        const now = Date.now()
        // If this tick is late, the event loop was blocked and input may be waiting unread:
        // judge on the next tick, after the loop has had a chance to read it.
        const late = now - lastTick > 2 * WATCHDOG_TICK_MS
        lastTick = now
        if (phase === 'http2' && !late && now - lastRx > this.opts.watchdogMs) {
          finish(`watchdog: nothing from host for ${now - lastRx} ms`)
        }
      }, WATCHDOG_TICK_MS)

      const answer = (n: string): void => {
        nonce = n
        phase = 'afterOk'
        sock.write(okLine(n))
        if (prefaceTimer) clearTimeout(prefaceTimer)
        prefaceTimer = setTimeout(
          () => finish('no HTTP/2 preface after OK'),
          this.opts.prefaceTimeoutMs,
        )
      }

      const onData = (chunk: Buffer): void => {
        gotData = true
        lastRx = Date.now()
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
        for (;;) {
          if (phase === 'wait') {
            const r = scanForSync(buf)
            if ('keep' in r) {
              buf = r.keep
              return
            }
            buf = r.rest
            answer(r.nonce)
            continue
          }
          const r = afterOk(buf, nonce)
          if (r.kind === 'more') {
            buf = r.keep
            return
          }
          if (r.kind === 'resync') {
            buf = r.rest
            answer(r.nonce)
            continue
          }
          startHttp2(r.rest)
          return
        }
      }

      const startHttp2 = (rest: Buffer): void => {
        phase = 'http2'
        if (prefaceTimer) clearTimeout(prefaceTimer)
        sock.off('data', onData)
        sock.pause()
        if (rest.length) sock.unshift(rest)
        session = this.startSession(sock)
        if (!session) return finish('no HTTP/2 session')
        const s: http2.Http2Session = session
        this.sessions++
        const alive = (): void => {
          lastRx = Date.now()
        }
        s.on('ping', alive)
        s.on('stream', alive)
        s.on('remoteSettings', alive)
        s.on('error', (e) => finish(`session error: ${e.message}`))
        s.on('frameError', (type, code) => finish(`frame error type ${type} code ${code}`))
        s.on('goaway', () => finish('goaway from host'))
        s.on('close', () => finish('session closed'))
        s.once('localSettings', () => s.setLocalWindowSize(16 << 20))
      }

      sock.on('data', onData)
      sock.on('error', (e) => finish(`socket error: ${e.message}`))
      // EOF: the host side went away (a virtio port reads 0 when no host is connected).
      sock.on('end', () => finish(gotData ? 'eof' : 'eof-idle'))
      sock.on('close', () => finish('socket closed'))
    })
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
