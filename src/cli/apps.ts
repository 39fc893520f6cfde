import type { Command } from 'commander'
import { unwrap, type RigboxClient, type Schemas } from '../client/index.ts'
import { action } from './action.ts'
import { apiClient, CliError, print, progress, resolveCredentials, table } from './context.ts'

export type App = Schemas['App']

/** An app by id (`app-…`) or by name (names are unique per user). */
export async function resolveApp(api: RigboxClient, ref: string): Promise<App> {
  return pickByIdOrName(unwrap(await api.GET('/api/v1/apps')).apps, ref, 'app')
}

/** One of `items` by id, else by name; a name several items share is an error naming their ids. */
export function pickByIdOrName<T extends { id: string; name: string }>(
  items: T[],
  ref: string,
  noun: string,
): T {
  const byId = items.find((i) => i.id === ref)
  if (byId) return byId
  const named = items.filter((i) => i.name === ref)
  if (named.length === 1) return named[0]
  if (!named.length) throw new CliError(`no ${noun} named or with id "${ref}"`)
  throw new CliError(
    `${named.length} ${noun}s are named "${ref}": ${named.map((i) => i.id).join(', ')}; give the id`,
  )
}

/** `workspaceNames` (id → name) shows each app's workspace by name where known. */
export function appTable(apps: App[], workspaceNames: Record<string, string> = {}) {
  return table(
    ['ID', 'NAME', 'WORKSPACE', 'PORT', 'STATUS', 'VISIBILITY', 'URL'],
    apps.map((a) => [
      a.id,
      a.name,
      workspaceNames[a.workspace_id] ?? a.workspace_id,
      a.port,
      a.status,
      a.visibility,
      a.url,
    ]),
  )
}

/** `K=V` arguments as a record; anything else is a usage error naming `what`. */
export function parseAssignments(items: string[], what = 'argument'): Record<string, string> {
  const out: Record<string, string> = {}
  for (const item of items) {
    const eq = item.indexOf('=')
    if (eq < 1) throw new CliError(`${what} "${item}" is not KEY=VALUE`)
    out[item.slice(0, eq)] = item.slice(eq + 1)
  }
  return out
}

/** A repeatable option's collector: `--env A=1 --env B=2` → ['A=1', 'B=2']. */
export const collect = (value: string, previous: string[] = []) => [...previous, value]

/** A flag value that must be one of `choices` (checked in the action, so it exits 2). */
export function choice<T extends string>(
  flag: string,
  value: string | undefined,
  choices: readonly T[],
): T | undefined {
  if (value === undefined) return undefined
  if (!(choices as readonly string[]).includes(value)) {
    throw new CliError(`${flag} must be one of ${choices.join(', ')} (got "${value}")`)
  }
  return value as T
}

/** The last lines of a job's output: enough to see why it failed. */
export const tail = (text: string | null | undefined, lines = 20) =>
  (text ?? '').trimEnd().split('\n').slice(-lines).join('\n')

export interface JobState {
  status: string
  exit_code?: number | null
  output?: string | null
}

/**
 * Polls a background job (tool or catalog install) with progress until it succeeds or fails.
 * A failure throws with the exit code and the tail of the output, so the command exits 1.
 */
export async function waitForJob(
  label: string,
  poll: () => Promise<JobState>,
  timeoutMs = 30 * 60_000,
): Promise<JobState> {
  const bar = progress(label)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const job = await poll()
    if (job.status === 'succeeded') {
      bar.done(`${label}: succeeded`)
      return job
    }
    if (job.status === 'failed') {
      bar.done(`${label}: failed`)
      const out = tail(job.output)
      throw new Error(
        `${label} failed${job.exit_code == null ? '' : ` (exit code ${job.exit_code})`}` +
          (out ? `; last output:\n${out}` : ''),
      )
    }
    bar.update(job.status)
    if (Date.now() > deadline) throw new Error(`${label}: timed out (still ${job.status})`)
    await new Promise((r) => setTimeout(r, 1000))
  }
}

/**
 * Follows a Server-Sent Events log stream (`event: log`, `event: end`), reconnecting with
 * Last-Event-ID so no line is lost or repeated, until the server ends it or the user hits Ctrl-C.
 */
export async function followLogStream(path: string, onLine: (data: string) => void) {
  const { url, key } = resolveCredentials()
  let lastId: string | undefined
  for (;;) {
    const res = await fetch(`${url}${path}`, {
      headers: { authorization: `Bearer ${key}`, ...(lastId ? { 'last-event-id': lastId } : {}) },
    })
    if (!res.ok || !res.body) {
      const body = (await res.json().catch(() => ({}))) as {
        error?: { code?: string; message?: string }
      }
      const why = body.error?.message ?? `log stream answered HTTP ${res.status}`
      throw new Error(body.error?.code ? `${why} (${body.error.code}, HTTP ${res.status})` : why)
    }
    let buffer = ''
    let ended = false
    for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
      buffer += chunk
      let sep
      while ((sep = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, sep)
        buffer = buffer.slice(sep + 2)
        const fields = Object.fromEntries(
          event
            .split('\n')
            .filter((l) => l && !l.startsWith(':'))
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trimStart()]),
        )
        if (fields.event === 'end') ended = true
        if (fields.event !== 'log') continue
        lastId = fields.id
        onLine(fields.data)
      }
    }
    if (ended) return
  }
}

/** A log line as people read it: time, then message. */
export const logLine = (l: { timestamp?: string | null; message: string }) =>
  `${l.timestamp ?? ''} ${l.message}`

type AppVerb = 'start' | 'stop' | 'restart'

/** `rig app start|stop|restart <app>`: the app's unit really starts or stops in the workspace. */
export function appActionCommand(verb: AppVerb, description: string) {
  return (parent: Command) =>
    parent
      .command(`${verb} <app>`)
      .description(description)
      .action(
        action(async (cmd, ref: string) => {
          const api = apiClient()
          const app = await resolveApp(api, ref)
          const path = `/api/v1/apps/{id}/${verb}` as '/api/v1/apps/{id}/start'
          const res = unwrap(await api.POST(path, { params: { path: { id: app.id } } }))
          print(cmd, res, () => `${res.message}\n${appTable([res.app])}`)
        }),
      )
}
