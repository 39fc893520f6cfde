// GET /v1/logs and GET /v1/logs/follow, from `journalctl -o json`.
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import { MAX_LOG_LINES } from './protocol.ts'
import { badRequest, HttpError, sendJson, type Ctx } from './router.ts'

export interface LogLine {
  cursor: string
  timestamp: string
  message: string
  unit: string | null
}

const MAX_MESSAGE = 64 * 1024
const QUERY_TIMEOUT_MS = 20_000
const UNIT_RE = /^[A-Za-z0-9@._:\\-]{1,256}$/
const CURSOR_RE = /^[A-Za-z0-9=;_-]{1,1024}$/

function toLine(raw: string): LogLine | null {
  let e: Record<string, unknown>
  try {
    e = JSON.parse(raw) as Record<string, unknown>
  } catch {
    return null
  }
  const cursor = e.__CURSOR
  if (typeof cursor !== 'string') return null
  let message = e.MESSAGE
  // journald gives non-UTF-8 or binary messages as byte arrays.
  if (Array.isArray(message)) message = Buffer.from(message as number[]).toString('utf8')
  const us = Number(e.__REALTIME_TIMESTAMP)
  const unit = e._SYSTEMD_UNIT ?? e.UNIT ?? e.SYSLOG_IDENTIFIER
  return {
    cursor,
    timestamp: Number.isFinite(us) ? new Date(us / 1000).toISOString() : '',
    message: typeof message === 'string' ? message.slice(0, MAX_MESSAGE) : '',
    unit: typeof unit === 'string' ? unit : null,
  }
}

function baseArgs(ctx: Ctx): string[] {
  const args = [
    '-o',
    'json',
    '--no-pager',
    '--output-fields=MESSAGE,_SYSTEMD_UNIT,UNIT,SYSLOG_IDENTIFIER',
  ]
  const unit = ctx.query.get('unit')
  if (unit) {
    if (!UNIT_RE.test(unit)) throw badRequest('bad unit')
    args.push('-u', unit)
  }
  return args
}

function cursorArg(ctx: Ctx): string | null {
  const cursor = ctx.query.get('cursor')
  if (!cursor) return null
  if (!CURSOR_RE.test(cursor)) throw badRequest('bad cursor')
  return cursor
}

/**
 * Without a cursor: the last N entries. With one: the first N entries after it (paging forward);
 * has_more tells whether more follow. `cursor` is where the next call should continue from.
 */
export async function handleLogs(ctx: Ctx): Promise<void> {
  const n = Number(ctx.query.get('lines') ?? '100')
  if (!Number.isInteger(n) || n < 1 || n > MAX_LOG_LINES)
    throw badRequest(`lines must be 1..${MAX_LOG_LINES}`)
  const cursor = cursorArg(ctx)
  const args = baseArgs(ctx)
  if (cursor) args.push(`--after-cursor=${cursor}`)
  else args.push('-n', String(n))
  const lines: LogLine[] = []
  let hasMore = false
  await new Promise<void>((resolve, reject) => {
    const child = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const timer = setTimeout(() => child.kill('SIGKILL'), QUERY_TIMEOUT_MS)
    const rl = readline.createInterface({ input: child.stdout })
    rl.on('line', (raw) => {
      const l = toLine(raw)
      if (!l) return
      if (lines.length >= n) {
        hasMore = true
        child.kill('SIGTERM')
        rl.close()
        return
      }
      lines.push(l)
    })
    child.stderr.resume()
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new HttpError(500, 'JOURNAL_UNAVAILABLE', e.message))
    })
    child.on('close', () => {
      clearTimeout(timer)
      resolve()
    })
    ctx.stream.once('close', () => child.kill('SIGKILL'))
  })
  const last = lines.length ? lines[lines.length - 1].cursor : cursor
  sendJson(ctx.stream, 200, { lines, has_more: hasMore, cursor: last })
}

/** NDJSON of LogLine until the host closes the stream (or the session dies). */
export function handleLogsFollow(ctx: Ctx): void {
  const cursor = cursorArg(ctx)
  const args = [...baseArgs(ctx), '-f']
  if (cursor) args.push(`--after-cursor=${cursor}`)
  else
    args.push(
      '-n',
      ctx.query.get('lines') && /^\d{1,4}$/.test(ctx.query.get('lines')!)
        ? ctx.query.get('lines')!
        : '0',
    )
  const child = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'ignore'] })
  const { stream } = ctx
  child.on('error', () => stream.close())
  stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' })
  const rl = readline.createInterface({ input: child.stdout })
  rl.on('line', (raw) => {
    const l = toLine(raw)
    if (!l || stream.destroyed) return
    if (!stream.write(JSON.stringify(l) + '\n')) {
      // Backpressure: stop reading journalctl until the host catches up.
      rl.pause()
      stream.once('drain', () => rl.resume())
    }
  })
  child.on('close', () => {
    if (!stream.destroyed) stream.end()
  })
  stream.on('close', () => child.kill('SIGKILL'))
}
