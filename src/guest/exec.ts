// Host side of POST /v1/exec: frames in, callbacks or capped buffers out.
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import {
  commandProblem,
  envProblem,
  FRAME_EXIT,
  FRAME_STARTED,
  FRAME_STDERR,
  FRAME_STDOUT,
  FrameDecoder,
  type ExecSpec,
} from '../../agent/protocol.ts'
import type { PortConnection } from './connection.ts'
import { GuestError, GuestProtocolError, GuestUnavailableError } from './errors.ts'
import { abortError, openStream } from './request.ts'
import { specRequest } from './spec-form.ts'
import { ExecExitSchema, ExecStartedSchema } from './types.ts'

export type { ExecSpec }

export interface ExecOptions {
  /** Request body: the process' stdin. Omitted: stdin is closed at once. */
  stdin?: string | Buffer | Readable
  onStdout?: (chunk: Buffer) => void
  onStderr?: (chunk: Buffer) => void
  onStarted?: (info: { exec_id: string; pid: number }) => void
  /** Aborting cancels the stream; the guest kills the process group (unless spec.detached). */
  signal?: AbortSignal
  /**
   * Collect stdout/stderr into the result, each up to this many bytes (beyond it output is
   * dropped and `truncated` set). Default: collect 1 MiB each when no callback is given.
   */
  maxOutputBytes?: number
}

export interface ExecResult {
  exec_id: string
  pid: number
  exit_code: number | null
  signal: string | null
  timed_out: boolean
  stdout?: string
  stderr?: string
  truncated?: boolean
}

const DEFAULT_COLLECT = 1 << 20
/** Beyond the guest-side timeout, how long the host waits for the exit frame. */
const HOST_GRACE_MS = 30_000

class Collector {
  private chunks: Buffer[] = []
  private size = 0
  truncated = false
  constructor(private readonly max: number) {}
  add(c: Buffer): void {
    const room = this.max - this.size
    if (room <= 0) {
      this.truncated = true
      return
    }
    const part = c.length > room ? c.subarray(0, room) : c
    if (part.length < c.length) this.truncated = true
    this.chunks.push(part)
    this.size += part.length
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8')
  }
}

/**
 * Refuses, before sending, a spec the agent would refuse: the checks are the agent's own
 * (agent/protocol.ts), so the answer is the same GuestError either way. A terminal's command is
 * optional (none, or '', is a login shell).
 */
export function validateSpec(
  spec: { command?: string; env?: unknown },
  kind: 'exec' | 'pty',
): void {
  const shell = kind === 'pty' && (spec.command === undefined || spec.command === '')
  const problem = (shell ? null : commandProblem(spec.command)) ?? envProblem(spec.env)
  if (problem) throw new GuestError(400, 'BAD_REQUEST', problem)
}

/** `agentVersion`: what the agent reported in its health answer (spec-form.ts); null if unknown. */
export async function runExec(
  conn: PortConnection,
  spec: ExecSpec,
  opts: ExecOptions = {},
  agentVersion: string | null = null,
): Promise<ExecResult> {
  validateSpec(spec, 'exec')
  const send = specRequest('exec', spec, agentVersion)
  const collect = opts.maxOutputBytes ?? (opts.onStdout || opts.onStderr ? 0 : DEFAULT_COLLECT)
  const out = collect > 0 ? new Collector(collect) : null
  const err = collect > 0 ? new Collector(collect) : null
  const { stream } = await openStream(
    conn,
    {
      method: 'POST',
      path: '/v1/exec',
      headers: send.headers,
      signal: opts.signal,
    },
    (s) => {
      if (send.preamble) s.write(send.preamble)
      writeStdin(s, opts.stdin)
    },
  )
  return new Promise<ExecResult>((resolve, reject) => {
    const decoder = new FrameDecoder()
    let started: { exec_id: string; pid: number } | null = null
    let exit: ExecResult | null = null
    const deadline =
      spec.timeout_ms === undefined
        ? null
        : setTimeout(
            () => fail(new GuestProtocolError('exec: no exit status in time')),
            spec.timeout_ms + HOST_GRACE_MS,
          )
    const fail = (e: Error): void => {
      if (deadline) clearTimeout(deadline)
      stream.close(http2.constants.NGHTTP2_CANCEL)
      reject(e)
    }
    const parseJson = (b: Buffer): unknown => {
      try {
        return JSON.parse(b.toString('utf8'))
      } catch {
        return null
      }
    }
    stream.on('data', (chunk: Buffer) => {
      let frames
      try {
        frames = decoder.push(chunk)
      } catch (e) {
        return fail(new GuestProtocolError(`exec: ${(e as Error).message}`))
      }
      for (const f of frames) {
        if (f.type === FRAME_STDOUT) {
          out?.add(f.payload)
          opts.onStdout?.(f.payload)
        } else if (f.type === FRAME_STDERR) {
          err?.add(f.payload)
          opts.onStderr?.(f.payload)
        } else if (f.type === FRAME_STARTED) {
          const p = ExecStartedSchema.safeParse(parseJson(f.payload))
          if (!p.success) return fail(new GuestProtocolError('exec: bad started frame'))
          started = p.data
          opts.onStarted?.(started)
        } else if (f.type === FRAME_EXIT) {
          const p = ExecExitSchema.safeParse(parseJson(f.payload))
          if (!p.success || !started) return fail(new GuestProtocolError('exec: bad exit frame'))
          exit = { ...started, ...p.data }
          if (out && err) {
            exit.stdout = out.text()
            exit.stderr = err.text()
            exit.truncated = out.truncated || err.truncated
          }
        } else {
          return fail(new GuestProtocolError(`exec: unknown frame type ${f.type}`))
        }
      }
    })
    stream.once('end', () => {
      if (deadline) clearTimeout(deadline)
      // Our side may still be open (stdin not ended): the exchange is over either way.
      stream.close()
      if (exit) resolve(exit)
      else reject(new GuestProtocolError('exec: stream ended without an exit status'))
    })
    stream.once('close', () => {
      if (deadline) clearTimeout(deadline)
      if (exit) return resolve(exit)
      if (opts.signal?.aborted) return reject(abortError(opts.signal))
      reject(new GuestUnavailableError('exec: stream closed before the process exited'))
    })
  })
}

function writeStdin(s: http2.ClientHttp2Stream, stdin: ExecOptions['stdin']): void {
  if (stdin === undefined) return void s.end()
  if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) return void s.end(stdin)
  stdin.on('error', () => s.close(http2.constants.NGHTTP2_CANCEL))
  stdin.pipe(s)
}
