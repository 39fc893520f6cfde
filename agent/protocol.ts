// Wire format shared by the guest agent and the host client (src/guest imports this file), so
// the two sides cannot drift apart. Only node builtins: the agent bundle must stay dependency-free.

export const AGENT_VERSION = '0.1.0'

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
