// POST /v1/exec (streamed) and POST /v1/exec/<id>/signal.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import type { AgentOptions } from './options.ts'
import {
  commandProblem,
  envProblem,
  FRAME_EXIT,
  FRAME_STARTED,
  FRAME_STDERR,
  FRAME_STDOUT,
  frameHeader,
  type ExecExit,
} from './protocol.ts'
import {
  badRequest,
  HttpError,
  isObject,
  optInt,
  readJson,
  readSpec,
  reqString,
  sendJson,
  type Ctx,
} from './router.ts'
import {
  asUser,
  baseEnv,
  findTool,
  loginShellArgv,
  resolveApiUser,
  shQuote,
  type Account,
} from './users.ts'

interface Running {
  pid: number
  child: ChildProcess
}
const running = new Map<string, Running>()

/** After exit, wait this long without output for pipes still held open by background jobs. */
const OUTPUT_GRACE_MS = 500

interface ParsedSpec {
  command: string
  acct: Account
  cwd: string
  env: Record<string, string>
  timeoutMs: number | undefined
  detached: boolean
}

/** The request's env, checked with the limits the API and the host client apply too. */
export function parseEnv(v: unknown): Record<string, string> {
  const problem = envProblem(v)
  if (problem) throw badRequest(problem)
  return (v ?? {}) as Record<string, string>
}

function parseSpec(o: AgentOptions, raw: unknown): ParsedSpec {
  if (!isObject(raw)) throw badRequest('exec spec must be an object')
  if (raw.tty !== undefined && raw.tty !== false) throw badRequest('tty exec: use /v1/pty')
  const problem = commandProblem(raw.command)
  if (problem) throw badRequest(problem)
  const acct = resolveApiUser(o, raw.user)
  const cwd = raw.cwd === undefined ? acct.home : reqString(raw, 'cwd')
  if (!cwd.startsWith('/')) throw badRequest('cwd must be absolute')
  return {
    command: raw.command as string,
    acct,
    cwd,
    env: parseEnv(raw.env),
    timeoutMs: optInt(raw, 'timeout_ms', 1, 7 * 24 * 3600 * 1000),
    detached: raw.detached === true,
  }
}

export async function handleExec(o: AgentOptions, ctx: Ctx): Promise<void> {
  const spec = parseSpec(o, await readSpec(ctx.stream))
  const st = await fs.promises.stat(spec.cwd).catch(() => null)
  if (!st?.isDirectory()) throw new HttpError(400, 'BAD_CWD', `cwd ${spec.cwd} is not a directory`)
  // The login shell reads /etc/profile (which exports the workspace env); the request's own env
  // is exported after it so that it wins. It is not in the spawn environment: the agent finds
  // its own programs whatever the request's PATH says.
  const exports = Object.entries(spec.env).map(([k, v]) => `export ${k}=${shQuote(v)}\n`)
  const script = exports.join('') + spec.command
  const argv = [...asUser(spec.acct), ...loginShellArgv(findTool('bash'), script)]
  const child = spawn(argv[0], argv.slice(1), {
    cwd: spec.cwd,
    env: baseEnv(spec.acct),
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // own process group: timeout and signals reach the whole tree
  })
  const { stream } = ctx
  const spawnError = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null))
    child.once('error', (e) => resolve(e))
  })
  if (spawnError || child.pid === undefined) {
    throw new HttpError(500, 'SPAWN_FAILED', String(spawnError?.message ?? 'no pid'))
  }
  const pid = child.pid
  if (stream.destroyed || stream.closed) {
    // The host (or the whole session) went away while the process was starting.
    if (!spec.detached) killGroup(pid, 'SIGKILL')
    return
  }
  const execId = `ex-${randomBytes(6).toString('hex')}`
  running.set(execId, { pid, child })
  stream.respond({ ':status': 200, 'content-type': 'application/vnd.rigbox.exec-frames' })

  const send = (type: number, payload: Buffer): boolean => {
    if (stream.destroyed || stream.writableEnded) return true
    stream.cork()
    stream.write(frameHeader(type, payload.length))
    const ok = stream.write(payload)
    stream.uncork()
    return ok
  }
  send(FRAME_STARTED, Buffer.from(JSON.stringify({ exec_id: execId, pid })))

  // stdin: request body, half-close = EOF. EPIPE when the child does not read is not an error.
  child.stdin!.on('error', () => {})
  stream.pipe(child.stdin!)

  let timedOut = false
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null
  let graceTimer: NodeJS.Timeout | null = null
  let paused = false
  const outputs = [child.stdout!, child.stderr!]
  const open = new Set(outputs)

  const finish = (): void => {
    if (!exited || stream.destroyed) return
    if (graceTimer) clearTimeout(graceTimer)
    for (const s of outputs) s.destroy()
    running.delete(execId)
    const exit: ExecExit = { exit_code: exited.code, signal: exited.signal, timed_out: timedOut }
    send(FRAME_EXIT, Buffer.from(JSON.stringify(exit)))
    stream.end()
  }
  const armGrace = (): void => {
    if (!exited || paused) return
    if (graceTimer) clearTimeout(graceTimer)
    graceTimer = setTimeout(finish, OUTPUT_GRACE_MS)
  }
  const pump = (s: NodeJS.ReadableStream, type: number): void => {
    s.on('data', (c: Buffer) => {
      if (!send(type, c) && !paused) {
        // Backpressure: stop reading the child until the host has taken what we sent.
        paused = true
        for (const o of outputs) o.pause()
        stream.once('drain', () => {
          paused = false
          for (const o of outputs) o.resume()
          armGrace()
        })
      }
      armGrace()
    })
    s.on('end', () => {
      open.delete(s as (typeof outputs)[number])
      if (open.size === 0) finish()
    })
    s.on('error', () => {})
  }
  pump(child.stdout!, FRAME_STDOUT)
  pump(child.stderr!, FRAME_STDERR)

  const timer =
    spec.timeoutMs === undefined
      ? null
      : setTimeout(() => {
          timedOut = true
          killGroup(pid, 'SIGKILL')
        }, spec.timeoutMs)

  child.on('exit', (code, signal) => {
    if (timer) clearTimeout(timer)
    exited = { code, signal }
    if (open.size === 0) finish()
    else armGrace()
  })

  // The stream ends with the host request or with the whole session (watchdog, host death).
  stream.on('close', () => {
    if (exited) return
    if (spec.detached) {
      // Nobody listens any more: keep draining so the process never blocks on a full pipe.
      for (const s of outputs) {
        s.removeAllListeners('data')
        s.resume()
      }
      child.stdin!.destroy()
      child.on('exit', () => running.delete(execId))
      return
    }
    if (timer) clearTimeout(timer)
    killGroup(pid, 'SIGKILL')
    for (const s of outputs) s.destroy()
    child.stdin!.destroy()
    running.delete(execId)
  })
}

export function killGroup(pid: number, sig: NodeJS.Signals | number): boolean {
  try {
    process.kill(-pid, sig)
    return true
  } catch {
    try {
      process.kill(pid, sig)
      return true
    } catch {
      return false
    }
  }
}

export async function handleExecSignal(ctx: Ctx): Promise<void> {
  const body = await readJson(ctx.stream)
  if (!isObject(body)) throw badRequest('body must be an object')
  const sig = parseSignal(body.signal)
  const r = running.get(ctx.params[0])
  if (!r) throw new HttpError(404, 'EXEC_NOT_FOUND', 'no such running exec')
  const delivered = killGroup(r.pid, sig)
  sendJson(ctx.stream, 200, { delivered })
}

export function parseSignal(v: unknown): NodeJS.Signals {
  const s = typeof v === 'string' ? (v.startsWith('SIG') ? v : `SIG${v}`) : ''
  if (!(s in os.constants.signals)) throw badRequest('unknown signal')
  return s as NodeJS.Signals
}
