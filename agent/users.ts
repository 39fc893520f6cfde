// Accounts and the environment of processes started as them.
import fs from 'node:fs'
import type { AgentOptions } from './options.ts'
import { HttpError } from './router.ts'

export interface Account {
  name: string
  uid: number
  gid: number
  home: string
  shell: string
}

export function lookupUser(name: string): Account | null {
  let text: string
  try {
    text = fs.readFileSync('/etc/passwd', 'utf8')
  } catch {
    return null
  }
  for (const line of text.split('\n')) {
    const f = line.split(':')
    if (f.length < 7 || f[0] !== name) continue
    return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5], shell: f[6] || '/bin/sh' }
  }
  return null
}

export function lookupGroup(name: string): number | null {
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const f = line.split(':')
      if (f[0] === name && f.length >= 3) return Number(f[2])
    }
  } catch {
    // no /etc/group: no group
  }
  return null
}

/** Maps the API's user names to accounts (`developer` may be remapped in dev mode). */
export function resolveApiUser(o: AgentOptions, user: unknown): Account {
  const name = user === undefined || user === null ? 'developer' : user
  if (name !== 'developer' && name !== 'root') throw new HttpError(400, 'BAD_REQUEST', 'bad user')
  const acct = lookupUser(name === 'developer' ? o.developerUser : 'root')
  if (!acct) throw new HttpError(500, 'NO_SUCH_USER', `account ${String(name)} missing`)
  return name === 'developer' ? { ...acct, home: o.developerHome } : acct
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** A login-like base environment; `bash -l` then adds /etc/profile (and our env) on top. */
export function baseEnv(acct: Account, extra?: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {
    HOME: acct.home,
    USER: acct.name,
    LOGNAME: acct.name,
    SHELL: acct.shell,
    PATH: DEFAULT_PATH,
    LANG: process.env.LANG || 'C.UTF-8',
  }
  // Proxy settings the agent was started with (systemd set-environment) reach children too.
  for (const k of [
    'http_proxy',
    'https_proxy',
    'no_proxy',
    'HTTP_PROXY',
    'HTTPS_PROXY',
    'NO_PROXY',
  ]) {
    const v = process.env[k]
    if (v) env[k] = v
  }
  return { ...env, ...extra }
}

/**
 * argv prefix that drops to `acct` with its supplementary groups (node's uid/gid spawn options
 * clear them, which would lose `sudo`). setpriv does no PAM session: fast and side-effect free.
 */
export function asUser(acct: Account): string[] {
  if (acct.uid === process.getuid?.()) return []
  return [findTool('setpriv'), `--reuid=${acct.uid}`, `--regid=${acct.gid}`, '--init-groups', '--']
}

/**
 * A login bash that runs `script` exactly. The script is split over several arguments, because
 * Linux refuses any single argument over 128 KiB (E2BIG), and bash joins them again with builtins
 * only (so neither the caller's PATH nor anything else of theirs can stop it from starting). Like
 * `bash -lc script`, the script sees no positional parameters and `$0` is `bash`.
 */
export function loginShellArgv(bash: string, script: string): string[] {
  return [bash, '-lc', JOIN_AND_EVAL, 'bash', ...splitArg(script)]
}

const JOIN_AND_EVAL =
  'printf -v __rigbox_script %s "$@"; set --; eval "unset -v __rigbox_script; $__rigbox_script"'

/** ≤ 96 KiB of UTF-8 per piece (3 bytes per UTF-16 unit at most): under the 128 KiB limit. */
const PIECE_UNITS = 32 * 1024

export function splitArg(s: string): string[] {
  const pieces: string[] = []
  for (let i = 0; i < s.length;) {
    let end = Math.min(s.length, i + PIECE_UNITS)
    // Never between the two halves of a surrogate pair: each piece must be valid UTF-16.
    const last = s.charCodeAt(end - 1)
    if (end < s.length && last >= 0xd800 && last <= 0xdbff) end--
    pieces.push(s.slice(i, end))
    i = end
  }
  return pieces
}

const tools = new Map<string, string>()

/** Where `name` lives on the agent's own PATH (absolute; the bare name if it is nowhere). */
export function findTool(name: string): string {
  const cached = tools.get(name)
  if (cached) return cached
  let found = name
  for (const dir of DEFAULT_PATH.split(':')) {
    try {
      fs.accessSync(`${dir}/${name}`, fs.constants.X_OK)
      found = `${dir}/${name}`
      break
    } catch {
      // not here
    }
  }
  tools.set(name, found)
  return found
}

/** POSIX shell single-quoting. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}
