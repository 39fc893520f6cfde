// POST /v1/pty (interactive terminal through pty-helper.py) and POST /v1/pty/<id>/resize.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { Writable } from 'node:stream'
import { parseEnv } from './exec.ts'
import type { AgentOptions } from './options.ts'
import {
  badRequest,
  HttpError,
  isObject,
  optInt,
  optString,
  readJson,
  readSpec,
  sendJson,
  type Ctx,
} from './router.ts'
import { commandProblem } from './protocol.ts'
import { baseEnv, findTool, loginShellArgv, resolveApiUser } from './users.ts'

interface PtySession {
  helper: ChildProcess
  ctl: Writable
}
const sessions = new Map<string, PtySession>()

const MAX_DIM = 10_000
const KILL_GRACE_MS = 3000

export async function handlePty(o: AgentOptions, ctx: Ctx): Promise<void> {
  const raw = await readSpec(ctx.stream)
  if (!isObject(raw)) throw badRequest('pty spec must be an object')
  const cols = optInt(raw, 'cols', 1, MAX_DIM) ?? 80
  const rows = optInt(raw, 'rows', 1, MAX_DIM) ?? 24
  const command = raw.command === undefined || raw.command === null ? '' : raw.command
  const problem = command === '' ? null : commandProblem(command)
  if (problem) throw badRequest(problem)
  const acct = resolveApiUser(o, raw.user)
  const cwd = optString(raw, 'cwd') ?? acct.home
  // The session's env goes to the helper with the spec (exactly, as UTF-8 JSON); the helper
  // itself runs in the agent's own environment, so nothing the request sets can stop it.
  const env = baseEnv(acct, { TERM: 'xterm-256color', ...parseEnv(raw.env) })
  const bash = findTool('bash')
  const argv = command ? loginShellArgv(bash, command as string) : [bash, '-l']
  const spec = { uid: acct.uid, gid: acct.gid, user: acct.name, cwd, cols, rows, argv, env }

  const helper = spawn(findTool('python3'), ['-I', o.ptyHelper], {
    env: baseEnv(acct),
    stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
    detached: true,
  })
  await new Promise<void>((resolve, reject) => {
    helper.once('spawn', resolve)
    helper.once('error', (e) => reject(new HttpError(500, 'SPAWN_FAILED', e.message)))
  })
  const specPipe = helper.stdio[4] as Writable
  specPipe.on('error', () => {})
  specPipe.end(JSON.stringify(spec))
  const { stream } = ctx
  if (stream.destroyed || stream.closed) {
    helper.kill('SIGTERM') // the host went away while the helper was starting
    return
  }
  const id = `pty-${randomBytes(6).toString('hex')}`
  const ctl = helper.stdio[3] as Writable
  ctl.on('error', () => {})
  sessions.set(id, { helper, ctl })

  let stderr = ''
  helper.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-4096)
  })
  helper.stdin!.on('error', () => {})
  stream.pipe(helper.stdin!)
  stream.respond(
    { ':status': 200, 'content-type': 'application/octet-stream', 'x-pty-id': id },
    { waitForTrailers: true },
  )
  helper.stdout!.pipe(stream, { end: false })

  let exit = { exit_code: null as number | null, signal: null as string | null }
  stream.on('wantTrailers', () => stream.sendTrailers({ 'x-pty-exit': JSON.stringify(exit) }))
  helper.on('close', (code, signal) => {
    sessions.delete(id)
    exit = parseExit(stderr) ?? { exit_code: code, signal }
    if (!stream.destroyed) stream.end()
  })
  stream.on('close', () => {
    if (helper.exitCode !== null || helper.signalCode !== null) return
    // The terminal went away (host closed it or the session died): hang up the shell.
    helper.kill('SIGTERM')
    setTimeout(() => {
      if (helper.exitCode === null && helper.signalCode === null) helper.kill('SIGKILL')
    }, KILL_GRACE_MS).unref()
  })
}

function parseExit(stderr: string): { exit_code: number | null; signal: string | null } | null {
  const last = stderr.trim().split('\n').pop() ?? ''
  try {
    const v = JSON.parse(last) as unknown
    if (isObject(v) && 'exit_code' in v && 'signal' in v) {
      return {
        exit_code: typeof v.exit_code === 'number' ? v.exit_code : null,
        signal: typeof v.signal === 'string' ? v.signal : null,
      }
    }
  } catch {
    // helper died without reporting
  }
  return null
}

export async function handlePtyResize(ctx: Ctx): Promise<void> {
  const body = await readJson(ctx.stream)
  if (!isObject(body)) throw badRequest('body must be an object')
  const cols = optInt(body, 'cols', 1, MAX_DIM)
  const rows = optInt(body, 'rows', 1, MAX_DIM)
  if (cols === undefined || rows === undefined) throw badRequest('cols and rows are required')
  const s = sessions.get(ctx.params[0])
  if (!s) throw new HttpError(404, 'PTY_NOT_FOUND', 'no such pty session')
  s.ctl.write(`${cols} ${rows}\n`)
  sendJson(ctx.stream, 200, { ok: true })
}
