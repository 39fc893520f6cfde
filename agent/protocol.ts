// Wire format shared by the guest agent and the host client (src/guest imports this file), so
// the two sides cannot drift apart. Only node builtins: the agent bundle must stay dependency-free.

export const AGENT_VERSION = '0.2.0'

/** Port names (virtio-serial `virtserialport` names, and the dev relay's socket names). */
export const PORT_AGENT = 'agent'
export const PORT_BULK = 'bulk'

/** Exec response frames: `[type u8][len u32be][payload]`. */
export const FRAME_STDOUT = 1
export const FRAME_STDERR = 2
export const FRAME_EXIT = 3
export const FRAME_STARTED = 4
export const FRAME_HEADER_BYTES = 5
/** The agent never sends bigger frames; the host treats a bigger one as a protocol violation. */
export const MAX_FRAME_PAYLOAD = 1 << 20

export interface Frame {
  type: number
  payload: Buffer
}

export function frameHeader(type: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  h.writeUInt8(type, 0)
  h.writeUInt32BE(length, 1)
  return h
}

/** Incremental decoder; throws on an oversized frame (the peer is not trusted). */
export class FrameDecoder {
  private chunks: Buffer[] = []
  private buffered = 0

  constructor(private readonly maxPayload = MAX_FRAME_PAYLOAD) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    const out: Frame[] = []
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break
      const head = this.peek(FRAME_HEADER_BYTES)
      const len = head.readUInt32BE(1)
      if (len > this.maxPayload) throw new Error(`frame of ${len} bytes exceeds the limit`)
      if (this.buffered < FRAME_HEADER_BYTES + len) break
      const all = this.take(FRAME_HEADER_BYTES + len)
      out.push({ type: all[0], payload: all.subarray(FRAME_HEADER_BYTES) })
    }
    return out
  }

  /** Bytes of an incomplete frame left at the end of the stream. */
  get pending(): number {
    return this.buffered
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n)
    const joined = Buffer.concat(this.chunks)
    this.chunks = [joined]
    return joined.subarray(0, n)
  }

  private take(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)]
    const first = this.chunks[0]
    const out = first.subarray(0, n)
    if (first.length === n) this.chunks.shift()
    else this.chunks[0] = first.subarray(n)
    this.buffered -= n
    return out
  }
}

// ---- handshake -------------------------------------------------------------------------------
// Host repeats `SYNC <nonce>\n` (every ~100 ms) until it reads `OK <nonce>\n`; the guest drops
// everything before a SYNC line, because bytes written while either side was away may arrive
// late or not at all. After the OK, HTTP/2 (guest = server) runs over the same byte stream.

export const SYNC_INTERVAL_MS = 100
const NONCE = '[0-9A-Za-z_-]{8,64}'
const SYNC_LINE = new RegExp(`^SYNC (${NONCE})\\r?$`)
const SYNC_ANYWHERE = new RegExp(`SYNC (${NONCE})\\r?\n`)
/** A line longer than this is never a handshake line; junk beyond it is dropped. */
const MAX_LINE = 128

export function syncLine(nonce: string): string {
  return `SYNC ${nonce}\n`
}
export function okLine(nonce: string): string {
  return `OK ${nonce}\n`
}

/**
 * Guest side, waiting for a host: finds the first complete `SYNC <nonce>\n`. It may follow stale
 * bytes without a newline (the tail of a dead session), so it is searched anywhere, not only at
 * a line start. A stale SYNC of an earlier host only earns an OK that nobody waits for.
 */
export function scanForSync(buf: Buffer): { nonce: string; rest: Buffer } | { keep: Buffer } {
  const text = buf.toString('latin1')
  const m = SYNC_ANYWHERE.exec(text)
  if (m) return { nonce: m[1], rest: buf.subarray(m.index + m[0].length) }
  // Keep what could still become a SYNC line: from the last 'S' within reach of the end.
  const from = text.lastIndexOf('SYNC ', text.length)
  const keepFrom = from >= 0 && text.length - from <= MAX_LINE ? from : Math.max(0, text.length - 5)
  return { keep: buf.subarray(keepFrom) }
}

/**
 * Host side: finds `OK <nonce>\n` for our nonce anywhere in what arrived (stale bytes from the
 * guest's previous session may precede it without a newline). The nonce is random, so a match
 * inside stale data is not a concern.
 */
export function scanForOk(buf: Buffer, nonce: string): { rest: Buffer } | { keep: Buffer } {
  const line = Buffer.from(okLine(nonce), 'latin1')
  const i = buf.indexOf(line)
  if (i >= 0) return { rest: buf.subarray(i + line.length) }
  return { keep: buf.subarray(Math.max(0, buf.length - (line.length - 1))) }
}

export type AfterOk =
  | { kind: 'more'; keep: Buffer }
  | { kind: 'resync'; nonce: string; rest: Buffer }
  | { kind: 'http2'; rest: Buffer }

/**
 * Guest side, after answering OK: the host may have sent more SYNC lines before it read our OK.
 * Drop repeats of our nonce; a different nonce is a new host (answer it again); anything else is
 * the start of HTTP/2 (its preface starts with `PRI `, never with `SYNC `).
 */
export function afterOk(buf: Buffer, nonce: string): AfterOk {
  const prefix = Buffer.from('SYNC ')
  let b = buf
  for (;;) {
    if (b.length === 0) return { kind: 'more', keep: b }
    const n = Math.min(b.length, prefix.length)
    if (!b.subarray(0, n).equals(prefix.subarray(0, n))) return { kind: 'http2', rest: b }
    const nl = b.indexOf(10)
    if (nl < 0) return b.length > MAX_LINE ? { kind: 'http2', rest: b } : { kind: 'more', keep: b }
    const m = SYNC_LINE.exec(b.toString('latin1', 0, nl))
    if (!m) return { kind: 'http2', rest: b }
    if (m[1] !== nonce) return { kind: 'resync', nonce: m[1], rest: b.subarray(nl + 1) }
    b = b.subarray(nl + 1)
  }
}

// ---- API shapes shared by both sides ----------------------------------------------------------

export interface ExecSpec {
  command: string
  user?: 'developer' | 'root'
  cwd?: string
  env?: Record<string, string>
  timeout_ms?: number
  tty?: false
  /** Keep the process running when its session dies (default: killed with the session). */
  detached?: boolean
}

export interface ExecExit {
  exit_code: number | null
  signal: string | null
  timed_out: boolean
}

export interface PtySpec {
  cols: number
  rows: number
  command?: string
  user?: 'developer' | 'root'
  cwd?: string
  env?: Record<string, string>
}

export const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

// ---- request specs (exec, pty): in the body, byte-exact, with one set of limits ---------------
// A spec travels as the body's preamble, `[len u32be][spec as UTF-8 JSON]`, followed by stdin
// (exec) or terminal input (pty). Not in a header: node's HTTP/2 keeps only the low byte of each
// character of a header value (`ħ` arrives as `'`), and HPACK bounds one header field at 64 KiB,
// beyond which the whole session fails, taking every other stream with it.
//
// The API's schema, the host client and the agent all check specs with the functions below, so
// whatever the API accepts the agent accepts and runs exactly as sent.

export const EXEC_LIMITS = {
  /** UTF-8 bytes of `command` (the bash script). */
  commandBytes: 256 * 1024,
  envEntries: 1000,
  /** UTF-8 bytes of one value: `KEY=value` must stay under the kernel's 128 KiB per string. */
  envValueBytes: 64 * 1024,
  envKeyBytes: 256,
  /** UTF-8 bytes of all keys and values together. */
  envTotalBytes: 256 * 1024,
} as const

/**
 * Largest preamble a valid spec can need: JSON escapes a character into at most 6 bytes
 * (`\u0001`), plus room for the other fields and the punctuation of every env entry.
 */
export const MAX_SPEC_BYTES =
  6 * (EXEC_LIMITS.commandBytes + EXEC_LIMITS.envTotalBytes) + 16 * EXEC_LIMITS.envEntries + 65536

const LONE_SURROGATE = /\p{Surrogate}/u

/** Why `s` cannot be carried exactly as text of at most `maxBytes` UTF-8 bytes (null: it can). */
export function textProblem(what: string, s: unknown, maxBytes: number): string | null {
  if (typeof s !== 'string') return `${what} must be a string`
  if (s.includes('\0')) return `${what} cannot contain NUL characters`
  // A lone surrogate has no UTF-8 form: it would arrive as U+FFFD, not as sent.
  if (LONE_SURROGATE.test(s)) return `${what} is not valid Unicode (lone surrogate)`
  const bytes = Buffer.byteLength(s, 'utf8')
  if (bytes > maxBytes) return `${what} is ${bytes} bytes of UTF-8; the limit is ${maxBytes}`
  return null
}

export function commandProblem(command: unknown): string | null {
  if (command === '') return 'command is empty'
  return textProblem('command', command, EXEC_LIMITS.commandBytes)
}

export function envProblem(env: unknown): string | null {
  if (env === undefined || env === null) return null
  if (typeof env !== 'object' || Array.isArray(env)) return 'env must be an object'
  const entries = Object.entries(env as Record<string, unknown>)
  if (entries.length > EXEC_LIMITS.envEntries) {
    return `env has ${entries.length} entries; the limit is ${EXEC_LIMITS.envEntries}`
  }
  let total = 0
  for (const [k, v] of entries) {
    if (!ENV_KEY_RE.test(k))
      return `env key ${JSON.stringify(k.slice(0, 64))} is not a variable name`
    if (k.length > EXEC_LIMITS.envKeyBytes) {
      return `env key ${k.slice(0, 64)}… is over ${EXEC_LIMITS.envKeyBytes} bytes`
    }
    const p = textProblem(`env value of ${k}`, v, EXEC_LIMITS.envValueBytes)
    if (p) return p
    total += k.length + Buffer.byteLength(v as string, 'utf8')
  }
  if (total > EXEC_LIMITS.envTotalBytes) {
    return `env is ${total} bytes of UTF-8; the limit is ${EXEC_LIMITS.envTotalBytes}`
  }
  return null
}

/** The body preamble that carries `spec`. */
export function specPreamble(spec: object): Buffer {
  const json = Buffer.from(JSON.stringify(spec), 'utf8')
  return Buffer.concat([lengthPrefix(json.length), json])
}

function lengthPrefix(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n, 0)
  return b
}

// ---- logs and files -------------------------------------------------------------------------

/** Most journal entries one GET /v1/logs returns (the API pages up to 5000, plus one to look ahead). */
export const MAX_LOG_LINES = 10_000

/** GET /v1/files without `max`: how much a file that cannot tell its size (procfs) may yield. */
export const DEFAULT_READ_MAX = 64 * 1024 * 1024
