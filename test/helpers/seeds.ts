import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
export const seedsDir = path.resolve(here, '../../../shared/seeds')

/** Debian's python3 (apt python3-requests) — not a pyenv shim, which may lack requests. */
export const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

/**
 * The Python example of a seed document, exactly as published, from `import requests` to the
 * line that ends it; only the base URL and the key are swapped, as a reader would.
 */
export function seedPython(file: string, endMarker: RegExp): string {
  const text = fs.readFileSync(path.join(seedsDir, file), 'utf8')
  const start = text.indexOf('import requests')
  if (start < 0) throw new Error(`no Python example in ${file}`)
  const lines = text.slice(start).split('\n')
  const end = lines.findIndex((l) => endMarker.test(l))
  if (end < 0) throw new Error(`end of the Python example not found in ${file}`)
  return lines.slice(0, end + 1).join('\n')
}

export async function runSeedPython(
  code: string,
  baseUrl: string,
  key: string,
  vars: Record<string, string> = {},
) {
  const prelude = [`api_key = ${JSON.stringify(key)}`, `token = ${JSON.stringify(key)}`]
  const body = code.replaceAll('https://api.rigbox.dev/api', baseUrl)
  let script = `${prelude.join('\n')}\n${body}\n`
  for (const [name, value] of Object.entries(vars)) {
    script = script.replace(new RegExp(`^${name} = .*$`, 'm'), `${name} = ${JSON.stringify(value)}`)
  }
  return promisify(execFile)(PYTHON, ['-c', script], { timeout: 600_000 })
}
