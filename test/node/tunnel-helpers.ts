// A guest agent with only what the tunnel needs, behind the dev relay (the test process plays
// QEMU's chardevs), listening for the tunnel on loopback instead of 172.16.0.1.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { startRelay, type HostLossMode, type Relay } from '../../agent/devrelay.ts'
import { agentArgs, killAndWait, repoRoot, waitFor } from '../guest/helpers.ts'

export interface TunnelAgent {
  dir: string
  root: string
  relay: Relay
  child: ChildProcess
  /** The chardev socket the node attaches to. */
  tunnelSock: string
  bridgePort: number
  egressPort: number
  logs: () => string
  stop: () => Promise<void>
}

export interface TunnelAgentOptions {
  holdMs?: number
  watchdogMs?: number
  mode?: HostLossMode
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string
  /** Listen address; default 127.0.0.1 on free ports. */
  listen?: string
  /** Bridge and egress ports; default: free loopback ports. */
  ports?: [number, number]
}

export async function startTunnelAgent(o: TunnelAgentOptions = {}): Promise<TunnelAgent> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-tunnel-test-'))
  const ports = path.join(dir, 'ports')
  const root = path.join(dir, 'root')
  fs.mkdirSync(root, { recursive: true })
  const relay = await startRelay(ports, ['agent', 'bulk', 'tunnel'], { mode: o.mode ?? 'eof' })
  const [bridgePort, egressPort] = o.ports ?? [await freePort(), await freePort()]
  const args = [
    ...agentArgs(ports, root, dir, o.watchdogMs),
    '--tunnel-listen',
    o.listen ?? '127.0.0.1',
    '--tunnel-ports',
    `${bridgePort},${egressPort}`,
  ]
  if (o.holdMs !== undefined) args.push('--tunnel-hold-ms', String(o.holdMs))
  // The guest runs Node 22: RIGBOX_GUEST_NODE=/path/to/node22 runs the agent under it.
  const node = process.env.RIGBOX_GUEST_NODE || process.execPath
  const [cmd, argv] = o.netns ? ['ip', ['netns', 'exec', o.netns, node, ...args]] : [node, args]
  const child = spawn(cmd, argv, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()))
  const agent: TunnelAgent = {
    dir,
    root,
    relay,
    child,
    tunnelSock: path.join(ports, 'tunnel.sock'),
    bridgePort,
    egressPort,
    logs: () => out,
    stop: async () => {
      await killAndWait(child)
      await relay.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
  try {
    await waitFor(
      () => /tunnel: egress listening/.test(out) && /bridge listening/.test(out),
      30_000,
      'tunnel listeners',
    )
  } catch (e) {
    await agent.stop()
    throw new Error(`${(e as Error).message}; agent output:\n${out}`)
  }
  return agent
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** One request on its own connection (no keep-alive left behind). */
export function httpGet(
  port: number,
  urlPath: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: urlPath, headers, agent: false },
      (res) => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
  })
}

/** How a TCP connection ended: 'end' (FIN, after all data), or the error code (ECONNRESET). */
export function outcome(sock: net.Socket): Promise<{ how: string; data: Buffer }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let how = ''
    sock.on('data', (c: Buffer) => chunks.push(c))
    sock.on('end', () => (how ||= 'end'))
    sock.on('error', (e: NodeJS.ErrnoException) => (how ||= e.code ?? e.message))
    sock.on('close', () => resolve({ how: how || 'close', data: Buffer.concat(chunks) }))
  })
}

/** A TunnelHost in a process of its own (tunnel-host-child.ts), to be SIGKILLed like a node. */
export function spawnTunnelHost(workspaceId: string, sockPath: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(repoRoot, 'test/node/tunnel-host-child.ts'),
      workspaceId,
      sockPath,
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`tunnel host child not connected in 30 s:\n${out}`))
    }, 30_000)
    const check = (c: Buffer): void => {
      out += c.toString()
      if (!out.includes('connected')) return
      clearTimeout(timer)
      resolve(child)
    }
    child.stdout!.on('data', check)
    child.stderr!.on('data', check)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`tunnel host child exited (${code}):\n${out}`))
    })
  })
}

export function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/**
 * A loopback server for bulk tests: a client that says `down` gets 4 MiB of random bytes; one
 * that says `up\n` then sends data gets the data's SHA-256 once it has ended.
 */
export async function startBulk() {
  const payload = randomBytes(4 << 20)
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    let first: Buffer = Buffer.alloc(0)
    let hash: ReturnType<typeof createHash> | null = null
    sock.on('data', (c: Buffer) => {
      if (hash) return void hash.update(c)
      first = Buffer.concat([first, c])
      if (first.toString().startsWith('down')) return void sock.end(payload)
      const nl = first.indexOf(10)
      if (nl >= 0) {
        hash = createHash('sha256').update(first.subarray(nl + 1))
      }
    })
    sock.on('end', () => {
      if (hash) sock.end(hash.digest('hex'))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    sha: sha(payload),
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((r) => server.close(r))
    },
  }
}

const run = promisify(execFile)

/**
 * A network namespace shaped like a VM's network: a NIC at 172.16.0.5/23 with a default route
 * via 172.16.1.254 (the slirp plan), so that 172.16.0.1 on `lo` has to win over the NIC's
 * route. Nothing leaves it: the veth's other end is in the same namespace.
 */
export async function createVmNetns(): Promise<
  { name: string; close(): Promise<void> } | { skip: string }
> {
  const name = `rbx-tun-${randomBytes(3).toString('hex')}`
  const ns = (...args: string[]) => run('ip', ['netns', 'exec', name, ...args])
  try {
    await run('ip', ['netns', 'add', name])
  } catch (e) {
    return { skip: `ip netns add failed: ${(e as { stderr?: string }).stderr?.trim()}` }
  }
  const close = async () => {
    await run('ip', ['netns', 'del', name]).catch(() => {})
  }
  try {
    await ns('ip', 'link', 'set', 'lo', 'up')
    await ns('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1')
    await ns('ip', 'addr', 'add', '172.16.0.5/23', 'dev', 'eth0')
    await ns('ip', 'link', 'set', 'eth0', 'up')
    await ns('ip', 'link', 'set', 'eth1', 'up')
    await ns('ip', 'route', 'add', 'default', 'via', '172.16.1.254', 'dev', 'eth0')
  } catch (e) {
    await close()
    return { skip: `netns setup failed: ${(e as { stderr?: string }).stderr?.trim()}` }
  }
  return { name, close }
}

/** Runs a command inside a namespace with a bare environment (no proxy settings leak in). */
export async function inNetns(name: string, ...args: string[]): Promise<string> {
  const r = await run('ip', ['netns', 'exec', name, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    timeout: 20_000,
  })
  return r.stdout
}
