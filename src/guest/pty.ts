// Host side of POST /v1/pty: an interactive terminal (for the browser terminal and the SSH
// gateway). Output arrives as 'data' events; input, resize and hang-up are methods.
import { EventEmitter } from 'node:events'
import http2 from 'node:http2'
import { z } from 'zod'
import type { PtySpec } from '../../agent/protocol.ts'
import type { PortConnection } from './connection.ts'
import { GuestProtocolError } from './errors.ts'
import { validateSpec } from './exec.ts'
import { openStream, requestJson } from './request.ts'
import { specRequest } from './spec-form.ts'
import { PtyExitSchema, type PtyExit } from './types.ts'

export type { PtySpec }

const PTY_ID_RE = /^pty-[0-9a-f]{1,32}$/

/**
 * Events: 'data' (Buffer; output flows from the first listener on), 'exit' (PtyExit), 'drain'.
 */
export class PtyHandle extends EventEmitter {
  /** Resolves when the terminal's program ended (or the channel lost it: both fields null). */
  readonly exited: Promise<PtyExit>

  constructor(
    readonly id: string,
    private readonly stream: http2.ClientHttp2Stream,
    private readonly control: PortConnection,
  ) {
    super()
    // Output starts flowing with the first 'data' listener, so none is lost before it.
    const onListener = (event: string | symbol): void => {
      if (event !== 'data') return
      this.off('newListener', onListener)
      stream.on('data', (c: Buffer) => this.emit('data', c))
    }
    this.on('newListener', onListener)
    this.exited = new Promise((resolve) => {
      let exit: PtyExit = { exit_code: null, signal: null }
      stream.on('trailers', (t) => {
        try {
          const p = PtyExitSchema.safeParse(JSON.parse(String(t['x-pty-exit'] ?? '')))
          if (p.success) exit = p.data
        } catch {
          // malformed trailer: report unknown status
        }
      })
      let done = false
      const finish = (): void => {
        if (done) return
        done = true
        // Our input side may still be open: the session is over either way.
        if (!stream.destroyed) stream.close()
        this.emit('exit', exit)
        resolve(exit)
      }
      stream.once('end', finish)
      stream.once('close', finish)
    })
  }

  /** Sends keystrokes; false means the guest is not keeping up (wait for 'drain'). */
  write(data: string | Buffer): boolean {
    if (this.stream.destroyed || this.stream.writableEnded) return false
    const ok = this.stream.write(data)
    if (!ok) this.stream.once('drain', () => this.emit('drain'))
    return ok
  }

  /** Pauses output (backpressure towards the guest) until resume(). */
  pause(): void {
    this.stream.pause()
  }
  resume(): void {
    this.stream.resume()
  }

  async resize(cols: number, rows: number): Promise<void> {
    await requestJson(this.control, {
      method: 'POST',
      path: `/v1/pty/${this.id}/resize`,
      body: { cols, rows },
      schema: z.object({ ok: z.boolean() }),
    })
  }

  /** Hangs up: the guest sends SIGHUP to the session, like a closed terminal window. */
  close(): void {
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL)
  }
}

/** `agentVersion`: what the agent reported in its health answer (spec-form.ts); null if unknown. */
export async function openPty(
  bulk: PortConnection,
  control: PortConnection,
  spec: PtySpec,
  agentVersion: string | null = null,
): Promise<PtyHandle> {
  validateSpec(spec, 'pty')
  const send = specRequest('pty', spec, agentVersion)
  const { stream, headers } = await openStream(
    bulk,
    { method: 'POST', path: '/v1/pty', headers: send.headers },
    (s) => {
      if (send.preamble) s.write(send.preamble)
    },
  )
  const id = String(headers['x-pty-id'] ?? '')
  if (!PTY_ID_RE.test(id)) {
    stream.close(http2.constants.NGHTTP2_CANCEL)
    throw new GuestProtocolError('pty: missing or bad x-pty-id')
  }
  return new PtyHandle(id, stream, control)
}
