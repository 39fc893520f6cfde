import net from 'node:net'
import path from 'node:path'
import ssh2 from 'ssh2'
import { attachAuth } from './auth.ts'
import { bridgeConnection } from './bridge.ts'
import { loadOrCreateKeyPair } from './keypair.ts'
import { installPtyModesCapture } from './pty-modes.ts'
import type { GatewayDeps, GatewayOptions, SshGateway, SshLog } from './types.ts'

export { loadOrCreateKeyPair } from './keypair.ts'
export type { KeyPair } from './keypair.ts'
export type * from './types.ts'

export const HOST_KEY_FILE = 'ssh_host_ed25519_key'
export const DEFAULT_SSH_PORT = 2222

const silent: SshLog = { debug() {}, info() {}, warn() {} }

/**
 * Starts the SSH gateway: `ssh <workspace>-<id>@host -p 2222` reaches the workspace's own sshd.
 * Users authenticate here with a key registered on their account; the gateway then logs in to
 * the guest with its own key and relays everything (see bridge.ts).
 */
export async function startSshGateway(
  deps: GatewayDeps,
  opts: GatewayOptions,
): Promise<SshGateway> {
  const log = opts.log ?? silent
  const perIpLimit = opts.maxConnectionsPerIp ?? 10
  const maxAuthTries = opts.maxAuthTries ?? 6
  const loginGraceMs = opts.loginGraceMs ?? 30_000
  const keepaliveIntervalMs = opts.keepaliveIntervalMs ?? 15_000
  installPtyModesCapture()

  const hostKey = await loadOrCreateKeyPair(
    path.join(opts.hostKeyDir, HOST_KEY_FILE),
    'rigbox-ssh-gateway',
  )
  const server = new ssh2.Server({
    hostKeys: [hostKey.privateKey],
    ident: 'Rigbox',
    keepaliveInterval: keepaliveIntervalMs,
    keepaliveCountMax: 3,
    algorithms: {
      // No SHA-1 MACs, and no compression before authentication (zlib on untrusted input).
      hmac: [
        'hmac-sha2-256-etm@openssh.com',
        'hmac-sha2-512-etm@openssh.com',
        'hmac-sha2-256',
        'hmac-sha2-512',
      ],
      compress: ['none', 'zlib@openssh.com'],
    },
  })

  // Per-connection state keyed by the TCP peer, until ssh2 reports the connection.
  const pending = new Map<string, { timer: NodeJS.Timeout }>()
  const perIp = new Map<string, number>()
  const sockets = new Set<net.Socket>()
  const peerKey = (ip: string | undefined, port: number | undefined) => `${ip}|${port}`

  // Our own TCP listener in front of ssh2, for limits ssh2 lacks: per-IP and total connections,
  // and a login grace time that also covers clients which never send an identification line.
  const tcp = net.createServer((socket) => {
    const ip = socket.remoteAddress ?? '?'
    const count = perIp.get(ip) ?? 0
    if (count >= perIpLimit) {
      log.info({ ip }, 'ssh: per-IP connection limit reached')
      socket.destroy()
      return
    }
    perIp.set(ip, count + 1)
    sockets.add(socket)
    // Keystrokes go out at once, as OpenSSH does for interactive sessions (no Nagle delay).
    socket.setNoDelay(true)
    const key = peerKey(socket.remoteAddress, socket.remotePort)
    const timer = setTimeout(() => {
      log.info({ ip }, 'ssh: login grace time exceeded')
      socket.destroy()
    }, loginGraceMs)
    pending.set(key, { timer })
    socket.once('close', () => {
      clearTimeout(timer)
      pending.delete(key)
      sockets.delete(socket)
      const left = (perIp.get(ip) ?? 1) - 1
      if (left > 0) perIp.set(ip, left)
      else perIp.delete(ip)
    })
    server.injectSocket(socket)
  })
  tcp.maxConnections = opts.maxConnections ?? 1000

  server.on('connection', (conn, info) => {
    const key = peerKey(info.ip, info.port)
    conn.on('error', (err) => log.debug({ ip: info.ip, err: String(err) }, 'ssh: connection error'))
    attachAuth(conn, deps, { maxAuthTries, log, ip: info.ip }, (who) => {
      conn.once('ready', () => {
        const p = pending.get(key)
        if (p) clearTimeout(p.timer)
        pending.delete(key)
        log.info(
          {
            ip: info.ip,
            user: who.username,
            workspaceId: who.target.workspaceId,
            key: who.keyFingerprint,
          },
          'ssh: authenticated',
        )
        bridgeConnection(conn, who, { deps, log, keepaliveIntervalMs })
      })
    })
  })
  server.on('error', (err: Error) => log.warn({ err: String(err) }, 'ssh: server error'))

  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject)
    tcp.listen(opts.port, opts.host ?? '127.0.0.1', () => {
      tcp.off('error', reject)
      resolve()
    })
  })
  tcp.on('error', (err) => log.warn({ err: String(err) }, 'ssh: listener error'))
  const port = (tcp.address() as net.AddressInfo).port
  log.info({ port, hostKey: hostKey.fingerprint }, 'ssh: gateway listening')

  return {
    server,
    port,
    hostKeyFingerprint: hostKey.fingerprint,
    close: () =>
      new Promise<void>((resolve) => {
        tcp.close(() => resolve())
        for (const s of sockets) s.destroy()
        for (const p of pending.values()) clearTimeout(p.timer)
      }),
  }
}
