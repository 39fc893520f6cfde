import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Command } from 'commander'
import { createRigboxClient, RigboxApiError, type RigboxClient } from '../client/index.ts'

export interface CliConfig {
  api_url: string
  api_key?: string
}

export const DEFAULT_API_URL = 'http://127.0.0.1:8080'
export const configDir = () => process.env.RIGBOX_CONFIG_DIR ?? path.join(os.homedir(), '.rigbox')
export const configPath = () => path.join(configDir(), 'config.json')

export function readCliConfig(): CliConfig {
  try {
    return JSON.parse(fs.readFileSync(configPath(), 'utf8')) as CliConfig
  } catch {
    return { api_url: DEFAULT_API_URL }
  }
}

export function writeCliConfig(config: CliConfig) {
  fs.mkdirSync(configDir(), { recursive: true, mode: 0o700 })
  const tmp = `${configPath()}.${process.pid}.tmp`
  fs.writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
  fs.renameSync(tmp, configPath())
}

/**
 * Where the CLI finds its API and key: RIGBOX_API_URL / RIGBOX_API_KEY, then `rig login`'s
 * config, then — on the server's own host — the admin key the server wrote at first start.
 */
export function resolveCredentials(): { url: string; key?: string } {
  const saved = readCliConfig()
  const url = process.env.RIGBOX_API_URL || saved.api_url || DEFAULT_API_URL
  let key = process.env.RIGBOX_API_KEY || saved.api_key
  if (!key) {
    const dataDir = process.env.RIGBOX_DATA_DIR ?? path.join(os.homedir(), '.rigbox')
    try {
      key = fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim()
    } catch {
      key = undefined
    }
  }
  return { url, key }
}

export function apiClient(): RigboxClient {
  const { url, key } = resolveCredentials()
  if (!key) throw new CliError('not logged in: run `rig login` or set RIGBOX_API_KEY')
  return createRigboxClient({ baseUrl: url, apiKey: key })
}

export class CliError extends Error {}

/** Whether the user asked for machine-readable output (`--json` on the root command). */
export const wantsJson = (cmd: Command) => Boolean(cmd.optsWithGlobals().json)

export function print(cmd: Command, data: unknown, human: () => string) {
  process.stdout.write(wantsJson(cmd) ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`)
}

/** A plain aligned table, as people read in a terminal. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]) {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c == null ? '-' : String(c))))]
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)))
  return cells
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

/** Turns any failure into one clear line on stderr and a non-zero exit code. */
export function reportError(err: unknown): number {
  if (err instanceof RigboxApiError) {
    process.stderr.write(`error: ${err.message} (${err.code}, HTTP ${err.status})\n`)
    return err.status === 401 ? 3 : 1
  }
  if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n`)
    return 2
  }
  const e = err as { cause?: { code?: string; message?: string }; message?: string }
  if (err instanceof TypeError && e.message === 'fetch failed') {
    const why = e.cause?.code ?? e.cause?.message ?? 'network error'
    process.stderr.write(
      `error: cannot reach the Rigbox API at ${resolveCredentials().url} (${why})\n`,
    )
    return 4
  }
  process.stderr.write(`error: ${e.message ?? String(err)}\n`)
  return 1
}

/** Progress on stderr for slow operations: one updating line on a TTY, plain lines otherwise. */
export function progress(label: string) {
  const started = Date.now()
  const tty = process.stderr.isTTY
  let last = ''
  return {
    update(state: string) {
      const line = `${label}: ${state} (${((Date.now() - started) / 1000).toFixed(0)}s)`
      if (tty) process.stderr.write(`\r\x1b[K${line}`)
      else if (state !== last) process.stderr.write(`${line}\n`)
      last = state
    },
    done(message: string) {
      if (tty) process.stderr.write('\r\x1b[K')
      process.stderr.write(`${message} (${((Date.now() - started) / 1000).toFixed(1)}s)\n`)
    },
  }
}

/**
 * Progress for one slow request that reports nothing until it returns (a disk copy): the
 * elapsed time ticks on the same line as `progress` shows, cleared however the request ends.
 */
export async function withProgress<T>(
  label: string,
  state: string,
  work: () => Promise<T>,
  finished = 'done',
): Promise<T> {
  const bar = progress(label)
  bar.update(state)
  const tick = setInterval(() => bar.update(state), 1000)
  try {
    const result = await work()
    bar.done(`${label}: ${finished}`)
    return result
  } catch (err) {
    bar.done(`${label}: failed`)
    throw err
  } finally {
    clearInterval(tick)
  }
}
