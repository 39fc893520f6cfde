import { createRequire } from 'node:module'
import { WireReader } from './wire.ts'

/*
 * ssh2 1.17's server decodes the terminal modes of a `pty-req` wrongly (it starts one byte into
 * the mode string and looks opcodes up in a table keyed by name): OpenSSH's modes come out empty,
 * other clients' can make it drop the whole request info. Every session would reach the guest
 * with default termios (no IUTF8, the client's erase character lost). So we parse the raw packet
 * just before ssh2 handles it and hand the request to our `pty` listener, which ssh2 calls
 * synchronously inside that handler. This wraps one entry of ssh2's message-handler table; if a
 * future ssh2 changes that table, capture stays off and ssh2's own (partial) info is used.
 */

type Handler = (self: unknown, payload: Buffer) => unknown
const CHANNEL_REQUEST = 98
const TTY_OP_END = 0
const wrapped = Symbol('rigbox.ptyModes')

/** A `pty-req` as the client sent it; `modes` is the re-encoded, well-formed mode list. */
export interface PtyRequest {
  term: string
  cols: number
  rows: number
  width: number
  height: number
  modes: Buffer
}

let current: PtyRequest | undefined

export function installPtyModesCapture(): boolean {
  const require = createRequire(import.meta.url)
  const handlers = require('ssh2/lib/protocol/handlers.js') as unknown
  if (!Array.isArray(handlers)) return false
  const original = handlers[CHANNEL_REQUEST] as (Handler & { [wrapped]?: true }) | undefined
  if (typeof original !== 'function') return false
  if (original[wrapped]) return true
  const wrapper: Handler & { [wrapped]?: true } = (self, payload) => {
    current = parsePtyRequest(payload)
    try {
      return original(self, payload)
    } finally {
      current = undefined
    }
  }
  wrapper[wrapped] = true
  handlers[CHANNEL_REQUEST] = wrapper
  return true
}

/** The `pty-req` being handled right now (valid only synchronously inside `pty` events). */
export function capturedPtyRequest(): PtyRequest | undefined {
  return current
}

/** Parses a CHANNEL_REQUEST payload if it is a pty-req (RFC 4254 §6.2, modes per §8). */
export function parsePtyRequest(payload: Buffer): PtyRequest | undefined {
  const r = new WireReader(payload.subarray(1))
  if (r.uint32() === undefined || r.ascii() !== 'pty-req' || r.byte() === undefined) {
    return undefined
  }
  const term = r.bytes()?.toString('utf8')
  const dims = [r.uint32(), r.uint32(), r.uint32(), r.uint32()]
  const modes = r.bytes()
  if (term === undefined || modes === undefined) return undefined
  const [cols, rows, width, height] = dims
  if (cols === undefined || rows === undefined || width === undefined || height === undefined) {
    return undefined
  }

  const out: Buffer[] = []
  let pos = 0
  // Opcodes 1–159 carry a uint32; 0 ends the list and 160+ are undefined, which ends parsing.
  while (pos + 5 <= modes.length && modes[pos] > TTY_OP_END && modes[pos] < 160) {
    out.push(modes.subarray(pos, pos + 5))
    pos += 5
  }
  out.push(Buffer.from([TTY_OP_END]))
  return { term, cols, rows, width, height, modes: Buffer.concat(out) }
}
