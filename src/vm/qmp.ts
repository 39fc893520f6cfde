import { EventEmitter } from 'node:events'
import net from 'node:net'

/**
 * A QMP (QEMU Machine Protocol) client over a unix socket. No maintained npm package exists, and
 * the protocol is small: one JSON object per line; a greeting, `qmp_capabilities`, then commands
 * answered in order (we still match them by `id`), interleaved with asynchronous events.
 *
 * Events are emitted twice: as `'event'` with the whole message, and under their own name
 * (`'SHUTDOWN'`, `'STOP'`, `'RESUME'`, `'POWERDOWN'`...) with `(data, timestamp)`. `'close'` is
 * emitted once when the connection ends for any reason (QEMU exited, `close()`, protocol error);
 * every pending command is then rejected.
 */

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string } }
}

export interface QmpEvent {
  event: string
  data?: Record<string, unknown>
  timestamp?: { seconds: number; microseconds: number }
}

export interface QmpConnectOptions {
  /** Time allowed for connect + greeting + capabilities negotiation. */
  timeoutMs?: number
  /** Default timeout of `execute`. */
  commandTimeoutMs?: number
  /** A line longer than this is a protocol error (bounded memory on a hostile or broken peer). */
  maxLineBytes?: number
}

export class QmpError extends Error {
  constructor(
    readonly errorClass: string,
    readonly desc: string,
    readonly command: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`)
    this.name = 'QmpError'
  }
}

export class QmpClosedError extends Error {
  constructor(message = 'QMP connection closed') {
    super(message)
    this.name = 'QmpClosedError'
  }
}

interface Pending {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
  command: string
}

/** Names that must not be re-emitted as events, as EventEmitter gives them meaning of its own. */
const RESERVED_EVENT_NAMES = new Set(['close', 'error', 'event', 'newListener', 'removeListener'])

export class QmpClient extends EventEmitter {
  private buffer = ''
  private nextId = 1
  private readonly pending = new Map<string, Pending>()
  private closedFlag = false
  private closeReason: Error | null = null

  private constructor(
    private readonly socket: net.Socket,
    readonly greeting: QmpGreeting,
    private readonly commandTimeoutMs: number,
    private readonly maxLineBytes: number,
    leftover: string,
  ) {
    super()
    socket.on('data', (chunk: string) => this.onData(chunk))
    socket.on('error', (err) =>
      this.shutdown(new QmpClosedError(`QMP connection lost: ${err.message}`)),
    )
    socket.on('close', () => this.shutdown(null))
    if (leftover) this.onData(leftover)
  }

  /** Connects, reads the greeting and negotiates capabilities. Rejects if the socket is absent. */
  static connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 10_000
    const maxLineBytes = opts.maxLineBytes ?? 8 * 1024 * 1024
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path })
      socket.setEncoding('utf8')
      let buf = ''
      let stage: 'greeting' | 'caps' = 'greeting'
      let greeting: QmpGreeting | null = null
      const fail = (err: Error) => {
        clearTimeout(timer)
        socket.removeAllListeners()
        socket.on('error', () => {})
        socket.destroy()
        reject(err)
      }
      const timer = setTimeout(
        () => fail(new Error(`QMP handshake timed out on ${path}`)),
        timeoutMs,
      )
      socket.on('error', fail)
      socket.on('close', () => fail(new QmpClosedError(`QMP ${path} closed during handshake`)))
      socket.on('data', (chunk: string) => {
        buf += chunk
        for (;;) {
          const nl = buf.indexOf('\n')
          if ((nl < 0 ? buf.length : nl) > maxLineBytes) return fail(new Error('QMP line too long'))
          if (nl < 0) return
          const line = buf.slice(0, nl).trim()
          buf = buf.slice(nl + 1)
          if (!line) continue
          let msg: Record<string, unknown>
          try {
            msg = JSON.parse(line) as Record<string, unknown>
          } catch {
            return fail(new Error(`QMP sent invalid JSON: ${line.slice(0, 200)}`))
          }
          if (stage === 'greeting') {
            if (!('QMP' in msg)) return fail(new Error('QMP greeting missing'))
            greeting = msg as unknown as QmpGreeting
            stage = 'caps'
            socket.write('{"execute":"qmp_capabilities","id":"caps"}\n')
          } else if ('error' in msg) {
            const e = msg.error as { class: string; desc: string }
            return fail(new QmpError(e.class, e.desc, 'qmp_capabilities'))
          } else if ('return' in msg) {
            clearTimeout(timer)
            socket.removeAllListeners()
            const commandTimeoutMs = opts.commandTimeoutMs ?? 30_000
            resolve(new QmpClient(socket, greeting!, commandTimeoutMs, maxLineBytes, buf))
            return
          }
          // Events before capabilities are accepted cannot happen; ignore anything else.
        }
      })
    })
  }

  /** Retries `connect` until `deadlineMs` (QEMU creates the socket a moment after it starts). */
  static async connectWithRetry(
    path: string,
    deadlineMs: number,
    opts: QmpConnectOptions & { isAlive?: () => boolean } = {},
  ): Promise<QmpClient> {
    let lastErr: unknown = null
    while (Date.now() < deadlineMs) {
      if (opts.isAlive && !opts.isAlive()) break
      try {
        const left = Math.max(500, deadlineMs - Date.now())
        return await QmpClient.connect(path, { ...opts, timeoutMs: opts.timeoutMs ?? left })
      } catch (err) {
        lastErr = err
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    const why = lastErr instanceof Error ? lastErr.message : 'process exited'
    throw new Error(`cannot connect to QMP at ${path}: ${why}`)
  }

  get closed(): boolean {
    return this.closedFlag
  }

  /** Runs a command; resolves with its `return` value, rejects with QmpError or on timeout. */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.closedFlag) {
      return Promise.reject(this.closeReason ?? new QmpClosedError())
    }
    const id = `c${this.nextId++}`
    const msg: Record<string, unknown> = { execute: command, id }
    if (args) msg.arguments = args
    return new Promise<T>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs
      const timer = setTimeout(() => {
        // A late answer is dropped by onMessage since its id is no longer pending.
        this.pending.delete(id)
        reject(new Error(`QMP ${command} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, command })
      this.socket.write(JSON.stringify(msg) + '\n')
    })
  }

  /** HMP passthrough (`human-monitor-command`); resolves with the monitor's text output. */
  async humanMonitorCommand(commandLine: string, opts: { timeoutMs?: number } = {}) {
    const out = await this.execute<string>(
      'human-monitor-command',
      { 'command-line': commandLine },
      opts,
    )
    return typeof out === 'string' ? out : ''
  }

  /**
   * QMP `getfd` needs the descriptor as SCM_RIGHTS ancillary data on the same message. Node's
   * `net.Socket` cannot send ancillary data, so this always rejects; callers that need to hand
   * QEMU a file use an approach without fd passing (e.g. `migrate` to `unix:SOCK` that the host
   * listens on, or an fd inherited at spawn). Kept so the limitation is explicit at the call site.
   */
  getfd(fdname: string, _fd: number): Promise<never> {
    return Promise.reject(
      new Error(
        `QMP getfd ${fdname}: passing a descriptor needs SCM_RIGHTS, which Node's net.Socket ` +
          'cannot send; use a unix-socket migration URI or an fd inherited at spawn instead',
      ),
    )
  }

  /** Releases a descriptor QEMU holds under `fdname` (from an inherited fd or getfd). */
  async closefd(fdname: string): Promise<void> {
    await this.execute('closefd', { fdname })
  }

  /** Closes the connection (QEMU keeps running); emits `'close'`. */
  close(): void {
    this.shutdown(null)
  }

  private onData(chunk: string): void {
    this.buffer += chunk
    for (;;) {
      const nl = this.buffer.indexOf('\n')
      if (nl < 0) break
      if (nl > this.maxLineBytes) break
      const line = this.buffer.slice(0, nl).trim()
      this.buffer = this.buffer.slice(nl + 1)
      if (line) this.onLine(line)
      if (this.closedFlag) return
    }
    const nl = this.buffer.indexOf('\n')
    if ((nl < 0 ? this.buffer.length : nl) > this.maxLineBytes) {
      this.shutdown(new Error(`QMP line exceeds ${this.maxLineBytes} bytes`))
    }
  }

  private onLine(line: string): void {
    let msg: Record<string, unknown>
    try {
      msg = JSON.parse(line) as Record<string, unknown>
    } catch {
      this.shutdown(new Error(`QMP sent invalid JSON: ${line.slice(0, 200)}`))
      return
    }
    if (typeof msg.event === 'string') {
      const ev = msg as unknown as QmpEvent
      this.emit('event', ev)
      if (!RESERVED_EVENT_NAMES.has(ev.event)) this.emit(ev.event, ev.data ?? {}, ev.timestamp)
      return
    }
    const id = typeof msg.id === 'string' ? msg.id : null
    const p = id ? this.pending.get(id) : undefined
    if (!p || !id) return
    this.pending.delete(id)
    clearTimeout(p.timer)
    if ('error' in msg) {
      const e = msg.error as { class?: string; desc?: string }
      p.reject(new QmpError(e.class ?? 'GenericError', e.desc ?? 'unknown error', p.command))
    } else {
      p.resolve(msg.return)
    }
  }

  private shutdown(err: Error | null): void {
    if (this.closedFlag) return
    this.closedFlag = true
    this.closeReason = err ?? new QmpClosedError()
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(this.closeReason)
    }
    this.pending.clear()
    this.socket.destroy()
    this.emit('close', err)
  }
}
