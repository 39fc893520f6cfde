// POST /v1/config: hostname, workspace identity, SSH keys and the workspace environment.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { parseEnv } from './exec.ts'
import { sysPath, type AgentOptions } from './options.ts'
import { badRequest, isObject, optString, readJson, sendJson, type Ctx } from './router.ts'
import { lookupUser, shQuote } from './users.ts'

const run = promisify(execFile)
const HOSTNAME_RE = /^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/
// An authorized_keys line: optional options, then a key type and its base64 blob.
const KEY_RE =
  /(^|\s)(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+)\s+[A-Za-z0-9+/]+={0,3}(\s|$)/

export interface GuestConfig {
  hostname?: string
  workspace?: { id: string; name: string; owner_id: string }
  env?: Record<string, string>
  authorized_keys?: string[]
  /** The host's clock: after a resume the guest's wall clock is behind by the time it was paused. */
  clock_unix_ms?: number
}

function parseConfig(raw: unknown): GuestConfig {
  if (!isObject(raw)) throw badRequest('config must be an object')
  const c: GuestConfig = {}
  const hostname = optString(raw, 'hostname', 63)
  if (hostname !== undefined) {
    if (!HOSTNAME_RE.test(hostname)) throw badRequest('bad hostname')
    c.hostname = hostname
  }
  if (raw.workspace !== undefined) {
    const w = raw.workspace
    if (!isObject(w)) throw badRequest('workspace must be an object')
    c.workspace = {
      id: optString(w, 'id', 200) ?? '',
      name: optString(w, 'name', 500) ?? '',
      owner_id: optString(w, 'owner_id', 200) ?? '',
    }
  }
  if (raw.env !== undefined) c.env = parseEnv(raw.env)
  if (raw.clock_unix_ms !== undefined) {
    const ms = raw.clock_unix_ms
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) throw badRequest('bad clock')
    c.clock_unix_ms = ms
  }
  if (raw.authorized_keys !== undefined) {
    const keys = raw.authorized_keys
    if (!Array.isArray(keys) || keys.length > 1000) throw badRequest('bad authorized_keys')
    c.authorized_keys = keys.map((k) => {
      if (
        typeof k !== 'string' ||
        k.length > 16384 ||
        /[\r\n\0]/.test(k) ||
        !KEY_RE.test(k.trim())
      ) {
        throw badRequest('bad authorized key')
      }
      return k.trim()
    })
  }
  return c
}

/** Writes a file atomically (temp + rename) with the given mode and owner. */
async function writeAtomic(
  p: string,
  data: string,
  mode: number,
  owner?: { uid: number; gid: number },
): Promise<void> {
  await fs.promises.mkdir(path.dirname(p), { recursive: true })
  const tmp = `${p}.rigbox-${randomBytes(4).toString('hex')}.tmp`
  await fs.promises.writeFile(tmp, data, { mode })
  try {
    await fs.promises.chmod(tmp, mode)
    if (owner) await fs.promises.chown(tmp, owner.uid, owner.gid)
    await fs.promises.rename(tmp, p)
  } catch (e) {
    await fs.promises.rm(tmp, { force: true })
    throw e
  }
}

/** Reads the keys of the env persisted by the previous config (to unset removed ones). */
async function previousEnvKeys(file: string): Promise<string[]> {
  const text = await fs.promises.readFile(file, 'utf8').catch(() => '')
  const keys: string[] = []
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(line)
    if (m) keys.push(m[1])
  }
  return keys
}

/** systemd's unquoting for DefaultEnvironment= (double quotes, C escapes). */
function systemdQuote(s: string): string {
  const esc = s
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/\r/g, '\\r')
  return `"${esc}"`
}

async function applyEnv(
  o: AgentOptions,
  env: Record<string, string>,
  warnings: string[],
): Promise<void> {
  const envFile = sysPath(o, '/etc/rigbox/env')
  const before = await previousEnvKeys(envFile)
  const keys = Object.keys(env).sort()
  const header = '# Managed by rigbox-agent (POST /v1/config); changes are overwritten.\n'
  // Shell syntax (KEY='value'): sourced by scripts, and the host can read it back verbatim.
  await writeAtomic(envFile, header + keys.map((k) => `${k}=${shQuote(env[k])}\n`).join(''), 0o644)
  // New login shells (ssh, exec, pty all run bash -l).
  await writeAtomic(
    sysPath(o, '/etc/profile.d/rigbox-env.sh'),
    header + keys.map((k) => `export ${k}=${shQuote(env[k])}\n`).join(''),
    0o644,
  )
  // Services: persisted for the next boots through the manager's DefaultEnvironment...
  const dropIn = sysPath(o, '/etc/systemd/system.conf.d/50-rigbox-env.conf')
  if (keys.length) {
    const assignments = keys.map((k) => systemdQuote(`${k}=${env[k]}`)).join(' ')
    await writeAtomic(dropIn, `${header}[Manager]\nDefaultEnvironment=${assignments}\n`, 0o644)
  } else {
    await fs.promises.rm(dropIn, { force: true })
  }
  if (!o.system) return
  // ...and for services started from now on, without a reboot or daemon-reexec.
  const removed = before.filter((k) => !(k in env))
  try {
    if (removed.length)
      await run('systemctl', ['unset-environment', ...removed], { timeout: 10_000 })
    if (keys.length) {
      await run('systemctl', ['set-environment', ...keys.map((k) => `${k}=${env[k]}`)], {
        timeout: 10_000,
      })
    }
  } catch (e) {
    warnings.push(`systemctl environment: ${(e as Error).message.split('\n')[0]}`)
  }
}

async function applyHostname(o: AgentOptions, name: string, warnings: string[]): Promise<void> {
  await writeAtomic(sysPath(o, '/etc/hostname'), `${name}\n`, 0o644)
  const hostsFile = sysPath(o, '/etc/hosts')
  const hosts = await fs.promises.readFile(hostsFile, 'utf8').catch(() => '127.0.0.1\tlocalhost\n')
  const line = `127.0.1.1\t${name}`
  const next = /^127\.0\.1\.1\s.*$/m.test(hosts)
    ? hosts.replace(/^127\.0\.1\.1\s.*$/m, line)
    : `${hosts.trimEnd()}\n${line}\n`
  if (next !== hosts) await writeAtomic(hostsFile, next, 0o644)
  if (!o.system) return
  // The kernel's name directly: hostnamectl needs D-Bus, which a minimal image may lack.
  try {
    await fs.promises.writeFile('/proc/sys/kernel/hostname', name)
  } catch (e) {
    warnings.push(`set hostname: ${(e as Error).message}`)
  }
}

async function applyKeys(o: AgentOptions, keys: string[]): Promise<void> {
  const dev = lookupUser(o.developerUser)
  const owner = dev ? { uid: dev.uid, gid: dev.gid } : undefined
  const sshDir = path.join(o.developerHome, '.ssh')
  await fs.promises.mkdir(sshDir, { recursive: true, mode: 0o700 })
  await fs.promises.chmod(sshDir, 0o700)
  if (owner) await fs.promises.chown(sshDir, owner.uid, owner.gid)
  const body = keys.length ? keys.join('\n') + '\n' : ''
  await writeAtomic(path.join(sshDir, 'authorized_keys'), body, 0o600, owner)
}

async function applyClock(unixMs: number, warnings: string[]): Promise<void> {
  try {
    // date(1) directly (no shell): clock_settime needs a native call Node does not offer.
    await run('date', ['-u', '-s', `@${(unixMs / 1000).toFixed(3)}`], { timeout: 10_000 })
  } catch (e) {
    warnings.push(`set clock: ${(e as Error).message.split('\n')[0]}`)
  }
}

export async function handleConfig(o: AgentOptions, ctx: Ctx): Promise<void> {
  const cfg = parseConfig(await readJson(ctx.stream))
  const warnings: string[] = []
  // First: everything after it (logs, files written) should carry the right time.
  if (cfg.clock_unix_ms !== undefined && o.system) await applyClock(cfg.clock_unix_ms, warnings)
  if (cfg.hostname !== undefined) await applyHostname(o, cfg.hostname, warnings)
  if (cfg.workspace) {
    await writeAtomic(
      sysPath(o, '/etc/rigbox/workspace.json'),
      JSON.stringify(cfg.workspace, null, 2) + '\n',
      0o644,
    )
  }
  if (cfg.authorized_keys) await applyKeys(o, cfg.authorized_keys)
  if (cfg.env) await applyEnv(o, cfg.env, warnings)
  sendJson(ctx.stream, 200, { applied: true, warnings })
}
