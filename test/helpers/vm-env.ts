import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../../src/config/config.ts'
import { createLocalNode } from '../../src/node/local-node.ts'
import { startPlatform } from '../../src/server/platform.ts'
import { call, tempDir } from './app.ts'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/** Where scripts/setup.sh (and CI) built the guest image. */
export const imageDir = process.env.RIGBOX_IMAGE_DIR ?? path.join(os.homedir(), '.rigbox', 'images')

export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  const port = (server.address() as net.AddressInfo).port
  await new Promise((r) => server.close(r))
  return port
}

/**
 * `rigbox serve` in this process on the real local node, in a fresh data dir and on free ports
 * (`env` adds settings): the API through `api(key, …)`, users made by the admin.
 */
export async function startVmPlatform(env: Record<string, string> = {}) {
  const dataDir = tempDir()
  const routerPort = await freePort()
  const sshPort = await freePort()
  const config = loadConfig({
    RIGBOX_DATA_DIR: dataDir,
    RIGBOX_IMAGE_DIR: imageDir,
    RIGBOX_PORT: String(await freePort()),
    RIGBOX_ROUTER_PORT: String(routerPort),
    RIGBOX_SSH_PORT: String(sshPort),
    RIGBOX_LOG_LEVEL: 'warn',
    ...env,
  })
  const node = await createLocalNode(config)
  const platform = await startPlatform(config, node, { logger: false })
  const adminKey = fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim()
  const api = (
    key: string,
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
  ) => call(platform.app, key, method, url, body)
  return {
    dataDir,
    platform,
    node,
    routerPort,
    sshPort,
    api,
    async makeUser(email: string, plan: 'free' | 'pro' = 'pro'): Promise<string> {
      return (await api(adminKey, 'POST', '/api/v1/admin/users', { email, plan })).json.api_key
    },
    async close() {
      await platform.app.rigbox.reconciler.idle()
      await platform.close()
      await node.close()
    },
  }
}
export type VmPlatform = Awaited<ReturnType<typeof startVmPlatform>>

/** Polls a workspace through the API until its status is one of `targets`. */
export async function waitStatus(
  app: FastifyInstance | string,
  key: string,
  id: string,
  targets: string[],
  timeoutMs = 240_000,
) {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (;;) {
    const res =
      typeof app === 'string'
        ? await fetch(`${app}/api/v1/workspaces/${id}`, {
            headers: { authorization: `Bearer ${key}` },
          })
            .then(async (r) => ({ status: r.status, json: await r.json() }))
            .catch(() => ({ status: 0, json: null }))
        : await call(app, key, 'GET', `/api/v1/workspaces/${id}`)
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const vm = (res.json as any)?.vm
    if (vm) {
      last = vm.status
      if (targets.includes(vm.status)) return vm
      if (vm.status === 'failed' && !targets.includes('failed')) {
        throw new Error(`workspace ${id} failed: ${vm.failure_code} ${vm.failure_reason}`)
      }
    }
    if (Date.now() > deadline)
      throw new Error(`workspace ${id} still ${last} after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 500))
  }
}

/** `rigbox serve` as a real child process, so a test can kill -9 it and start it again. */
export class ServerProcess {
  child: ChildProcess | null = null
  readonly url: string
  log = ''

  constructor(
    readonly dataDir: string,
    readonly port: number,
  ) {
    this.url = `http://127.0.0.1:${port}`
  }

  routerPort = 0
  sshPort = 0

  async start(): Promise<void> {
    // The same router and SSH ports across restarts, as a real deployment keeps them.
    this.routerPort ||= await freePort()
    this.sshPort ||= await freePort()
    // One process (node with tsx's loader), not tsx's CLI: a SIGKILL must hit the server itself,
    // and the CLI would leave its child running.
    this.child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'serve'],
      {
        cwd: root,
        env: {
          ...process.env,
          RIGBOX_DATA_DIR: this.dataDir,
          RIGBOX_IMAGE_DIR: imageDir,
          RIGBOX_PORT: String(this.port),
          RIGBOX_ROUTER_PORT: String(this.routerPort),
          RIGBOX_SSH_PORT: String(this.sshPort),
          RIGBOX_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    this.child.stdout!.on('data', (d: Buffer) => (this.log += d.toString()))
    this.child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()))
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`server exited early:\n${this.log}`)
      const ok = await fetch(`${this.url}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
      if (ok) return
      await new Promise((r) => setTimeout(r, 200))
    }
    throw new Error(`server did not come up:\n${this.log}`)
  }

  get running(): boolean {
    return Boolean(this.child && this.child.exitCode === null && this.child.signalCode === null)
  }

  adminKey(): string {
    return fs.readFileSync(path.join(this.dataDir, 'admin.key'), 'utf8').trim()
  }

  /** SIGKILL: no shutdown hook runs, as in a crash. */
  async kill9(): Promise<void> {
    const child = this.child
    if (!child || !this.running) return
    const gone = new Promise((r) => child.once('exit', r))
    child.kill('SIGKILL')
    await gone
  }

  async stop(): Promise<void> {
    const child = this.child
    if (!child || !this.running) return
    const gone = new Promise((r) => child.once('exit', r))
    child.kill('SIGTERM')
    await gone
  }

  async api(method: string, urlPath: string, body?: unknown, key = this.adminKey()) {
    const res = await fetch(`${this.url}${urlPath}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return { status: res.status, json: (await res.json().catch(() => null)) as any }
  }
}

/** The memory cgroup dir of a workspace's VM, under its installation's own parent. */
export function vmCgroupDir(dataDir: string, id: string): string {
  const file = path.join(dataDir, 'node', 'installation.json')
  const { cgroupParent } = JSON.parse(fs.readFileSync(file, 'utf8')) as { cgroupParent: string }
  return path.join('/sys/fs/cgroup/memory', cgroupParent, id)
}

/** QEMU processes whose command line names this workspace. */
export function qemuPidsFor(id: string): number[] {
  const pids: number[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // The QEMU itself, not the launcher, bwrap or setpriv around it (their command lines
      // name QEMU too).
      // (comm, not exe: a jailed QEMU is not dumpable, so its exe link is unreadable here.)
      if (!fs.readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith('qemu-system')) continue
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(id)) pids.push(Number(entry))
    } catch {
      // the process ended while we looked
    }
  }
  return pids
}
