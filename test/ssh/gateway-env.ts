// A gateway in front of a real sshd, plus the OpenSSH client tools to drive it.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { startSshGateway } from '../../src/ssh/gateway.ts'
import { loadOrCreateKeyPair, type KeyPair } from '../../src/ssh/keypair.ts'
import type { GatewayDeps, GatewayOptions, SshGateway, SshTarget } from '../../src/ssh/types.ts'
import { keygen, tempDir } from './helpers.ts'
import { ensureGuestUser, GUEST_USER, startSshd, type Sshd } from './sshd-fixture.ts'

export const ALPHA = 'alpha-k3j9x2ab' // running, owned by u1
export const BETA = 'beta-q8w7e6r5' // stopped, owned by u1
export const GAMMA = 'gamma-z1x2c3v4' // running, but the node reports another host key

export interface Run {
  code: number | null
  stdout: string
  stderr: string
}

export interface GatewayEnv {
  dir: string
  /** A directory the guest user owns, for files copied in. */
  guestDir: string
  gw: SshGateway
  sshd: Sshd
  gatewayKey: KeyPair
  /** Private key files: registered for u1, and one nobody registered. */
  userKey: string
  strangerKey: string
  deps: GatewayDeps
  /** Common OpenSSH client options for this gateway (`-p` excluded: ssh and scp differ). */
  clientOpts(key?: string): string[]
  ssh(args: string[], opts?: { user?: string; key?: string; input?: string | Buffer }): Promise<Run>
  restart(opts?: Partial<GatewayOptions>): Promise<SshGateway>
  stop(): Promise<void>
}

export async function startGatewayEnv(): Promise<GatewayEnv> {
  const dir = tempDir('gw')
  const userKey = await keygen(dir, 'user', ['-t', 'ed25519'])
  const strangerKey = await keygen(dir, 'stranger', ['-t', 'ed25519'])
  const gatewayKey = await loadOrCreateKeyPair(path.join(dir, 'gateway_key'), 'rigbox-gateway')
  const sshd = await startSshd({ authorizedKeys: [gatewayKey.publicKey] })
  const guestDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-guest-'))
  const cleanup = async () => {
    await sshd.stop()
    fs.rmSync(dir, { recursive: true, force: true })
    fs.rmSync(guestDir, { recursive: true, force: true })
  }
  const { uid, gid } = await ensureGuestUser()
  fs.chownSync(guestDir, uid, gid)

  const targets: Record<string, SshTarget> = {
    [ALPHA]: { workspaceId: 'ws-k3j9x2ab', ownerId: 'u1', status: 'running' },
    [BETA]: { workspaceId: 'ws-q8w7e6r5', ownerId: 'u1', status: 'stopped' },
    [GAMMA]: { workspaceId: 'ws-z1x2c3v4', ownerId: 'u1', status: 'running' },
  }
  const userPub = fs.readFileSync(`${userKey}.pub`, 'utf8')
  const toSshd = () => net.connect(sshd.port, '127.0.0.1')
  const deps: GatewayDeps = {
    resolve: async (username) => targets[username] ?? null,
    ownerKeys: async (ownerId) => (ownerId === 'u1' ? [userPub] : []),
    guestSshd: async (workspaceId) => {
      if (workspaceId === 'ws-k3j9x2ab') return { connect: toSshd, hostKey: sshd.hostKey }
      // gamma: the port answers, but with a host key that is not this workspace's
      if (workspaceId === 'ws-z1x2c3v4') return { connect: toSshd, hostKey: gatewayKey.publicKey }
      return null
    },
    gatewayKey,
    guestUser: GUEST_USER, // real guests use the default, developer
  }
  const hostKeyDir = path.join(dir, 'hostkeys')
  let gw: SshGateway
  try {
    gw = await startSshGateway(deps, { port: 0, hostKeyDir })
  } catch (err) {
    await cleanup()
    throw err
  }

  const clientOpts = (key = userKey) => [
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-i',
    key,
  ]
  const env: GatewayEnv = {
    dir,
    guestDir,
    get gw() {
      return gw
    },
    sshd,
    gatewayKey,
    userKey,
    strangerKey,
    deps,
    clientOpts,
    ssh: (args, opts = {}) =>
      run(
        'ssh',
        [
          ...clientOpts(opts.key),
          '-p',
          String(gw.port),
          `${opts.user ?? ALPHA}@127.0.0.1`,
          ...args,
        ],
        opts.input,
      ),
    restart: async (opts = {}) => {
      await gw.close()
      gw = await startSshGateway(deps, { port: 0, hostKeyDir, ...opts })
      return gw
    },
    stop: async () => {
      await gw.close()
      await cleanup()
    },
  }
  return env
}

/** Runs a command to completion (killed after `timeoutMs`), without the caller's SSH agent. */
export function run(
  cmd: string,
  args: string[],
  input?: string | Buffer,
  timeoutMs = 30_000,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, SSH_AUTH_SOCK: '' } })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({
        code,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      })
    })
    child.stdin.on('error', () => undefined) // the command may exit before reading it all
    child.stdin.end(input ?? '')
  })
}

/** A loopback TCP echo server (ends its side when the peer does). */
export async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => s.pipe(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  }
}
