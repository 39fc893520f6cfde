// Runs the real agent (via tsx) on the host in dev mode behind the dev relay, which stands in
// for QEMU's virtio-serial chardevs. The test process plays QEMU (the relay) and the node (the
// GuestChannel); host processes that must die mid-transfer are separate children.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRelay, type HostLossMode, type Relay } from '../../agent/devrelay.ts'
import { GuestChannel } from '../../src/guest/index.ts'
import { GuestCalls } from '../../src/node/guest-calls.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export interface AgentUnderTest {
  dir: string
  ports: string
  root: string
  home: string
  agentSock: string
  bulkSock: string
  relay: Relay
  child: ChildProcess
  logs: () => string
  stop: () => Promise<void>
}

/** An unprivileged account to stand for `developer` (the host has no such user). */
export const DEV_USER = 'nobody'

export async function startAgent(
  o: {
    mode?: HostLossMode
    relayFirst?: boolean
    watchdogMs?: number
    /** Another agent's sources (say, an older version's) instead of this tree's `agent/`. */
    agentDir?: string
  } = {},
): Promise<AgentUnderTest> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-agent-test-'))
  const ports = path.join(dir, 'ports')
  const root = path.join(dir, 'root')
  const home = path.join(dir, 'home')
  fs.mkdirSync(home, { recursive: true })
  const nobody = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${DEV_USER}:`))!
    .split(':')
  fs.chownSync(home, Number(nobody[2]), Number(nobody[3]))
  // The home is inside a root-only temp dir: let the unprivileged user reach it.
  fs.chmodSync(dir, 0o755)
  const relay = await startRelay(ports, ['agent', 'bulk'], { mode: o.mode ?? 'eof' })
  const child = spawnAgent(ports, root, home, o.watchdogMs, o.agentDir)
  let out = ''
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()))
  return {
    dir,
    ports,
    root,
    home,
    agentSock: path.join(ports, 'agent.sock'),
    bulkSock: path.join(ports, 'bulk.sock'),
    relay,
    child,
    logs: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r))
        child.kill('SIGTERM')
        await exited
      }
      await relay.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** An agent on the host (startAgent) and a GuestChannel connected to it. */
export async function connectAgent(o: Parameters<typeof startAgent>[0] = {}) {
  const agent = await startAgent(o)
  const ch = new GuestChannel()
  await ch.connect({ agentSock: agent.agentSock, bulkSock: agent.bulkSock, timeoutMs: 30_000 })
  return { agent, ch }
}

/** `node` arguments that run the agent against dev ports in `ports`, rooted at `root`. */
export function agentArgs(
  ports: string,
  root: string,
  home: string,
  watchdogMs?: number,
  agentDir = path.join(repoRoot, 'agent'),
): string[] {
  const args = [
    '--import',
    'tsx',
    path.join(agentDir, 'main.ts'),
    '--port-dir',
    ports,
    '--root',
    root,
    '--developer-user',
    DEV_USER,
    '--developer-home',
    home,
    '--pty-helper',
    path.join(agentDir, 'pty-helper.py'),
  ]
  if (watchdogMs) args.push('--watchdog-ms', String(watchdogMs))
  return args
}

export function spawnAgent(
  ports: string,
  root: string,
  home: string,
  watchdogMs?: number,
  agentDir?: string,
): ChildProcess {
  const args = agentArgs(ports, root, home, watchdogMs, agentDir)
  return spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Starts a host process (test/guest/host-child.ts) and resolves once it printed `marker`. */
export function spawnHost(
  args: string[],
  marker: RegExp,
  timeoutMs = 30_000,
): Promise<{ child: ChildProcess; match: RegExpMatchArray; output: () => string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(repoRoot, 'test/guest/host-child.ts'), ...args],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`host child: no ${marker} in ${timeoutMs} ms; output:\n${out}`))
    }, timeoutMs)
    const check = (c: Buffer): void => {
      out += c.toString()
      const m = out.match(marker)
      if (m) {
        clearTimeout(timer)
        resolve({ child, match: m, output: () => out })
      }
    }
    child.stdout!.on('data', check)
    child.stderr!.on('data', check)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`host child exited (${code}) before ${marker}; output:\n${out}`))
    })
  })
}

export function killAndWait(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/**
 * A command of exactly `bytes` bytes of UTF-8 that prints the sha256 of the text it carries (as
 * `sha256sum` does), so the output tells whether the guest received the command byte for byte.
 * The text mixes 1- to 4-byte characters and shell specials, all literal in single quotes.
 */
export function hashCommand(bytes: number): { command: string; sha: string } {
  const head = "printf %s '"
  const tail = "' | sha256sum"
  const mix = ['a', 'ħ', '€', '😀', '"', '$x', '\\', '`', '\n', ' ', '!', '%s']
  let room = bytes - Buffer.byteLength(head + tail)
  const text: string[] = []
  for (let i = 0; room > 0; i++) {
    const piece = mix[i % mix.length]
    const n = Buffer.byteLength(piece)
    const take = n <= room ? piece : 'a'
    text.push(take)
    room -= Buffer.byteLength(take)
  }
  const payload = text.join('')
  return {
    command: head + payload + tail,
    sha: createHash('sha256').update(payload, 'utf8').digest('hex'),
  }
}

/** The node's real guest calls (src/node/guest-calls.ts), over one channel to a dev-mode agent. */
class ChannelCalls extends GuestCalls {
  constructor(private readonly channel: GuestChannel) {
    super()
  }
  protected override guest(): GuestChannel {
    return this.channel
  }
}

/**
 * The real API over a fake node whose exec, files and logs go through the node's real guest
 * calls and `ch` to a real agent: one running workspace, `name`, of a pro user.
 */
export async function apiOverChannel(
  ch: GuestChannel,
  name: string,
  opts: { onExec?: () => void } = {},
): Promise<{ t: TestApp; key: string; id: string }> {
  const calls = new ChannelCalls(ch)
  const node = new FakeNode()
  Object.assign(node, {
    exec: (...a: Parameters<GuestCalls['exec']>) => (opts.onExec?.(), calls.exec(...a)),
    readFile: (...a: Parameters<GuestCalls['readFile']>) => calls.readFile(...a),
    writeFile: (...a: Parameters<GuestCalls['writeFile']>) => calls.writeFile(...a),
    logs: (...a: Parameters<GuestCalls['logs']>) => calls.logs(...a),
  })
  const t = await makeApp({ node })
  const key = (await makeUser(t, `${name}@example.com`, 'pro')).key
  const id = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name })).json.vm.id as string
  await call(t.app, key, 'POST', `/api/v1/workspaces/${id}/start`)
  await t.app.rigbox.reconciler.idle()
  return { t, key, id }
}
