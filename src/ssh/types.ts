import type { Duplex } from 'node:stream'

/** The seam between the SSH gateway and the rest of Rigbox (store, node). */

export interface SshTarget {
  workspaceId: string
  ownerId: string
  /** The workspace's VmStatus (`running`, `stopped`, `starting`, …). */
  status: string
}

export interface GuestSshAddress {
  /** A new connection to the guest's sshd (usable at once: writes queue until it connects). */
  connect(): Duplex
  /**
   * The guest sshd's public host key (OpenSSH line). When given, the gateway refuses any other
   * key, so a way reused by another VM can never receive this user's session.
   */
  hostKey?: string
}

export interface GatewayDeps {
  /** `<workspace-name>-<id without ws->`, e.g. `alpha-k3j9x2ab`; null if unknown. */
  resolve(username: string): Promise<SshTarget | null>
  /** The owner's registered public keys (OpenSSH lines). */
  ownerKeys(ownerId: string): Promise<string[]>
  /** The way to the guest's sshd (port 22), or null if not running. */
  guestSshd(workspaceId: string): Promise<GuestSshAddress | null>
  /** The gateway's own client key, which the node installs in the guest for `developer`. */
  gatewayKey: { privateKey: string; publicKey: string }
  /** The account the gateway logs in as inside the guest (default `developer`). */
  guestUser?: string
}

/** Structured logging, satisfied by a pino logger. */
export interface SshLog {
  debug(obj: object, msg: string): void
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

export interface GatewayOptions {
  /** Listen address (default `127.0.0.1`, like the API; set `0.0.0.0` to serve other hosts). */
  host?: string
  /** `RIGBOX_SSH_PORT`, default 2222; 0 picks a free port. */
  port: number
  /** Where the persisted host key lives (`ssh_host_ed25519_key`). */
  hostKeyDir: string
  log?: SshLog
  /** Concurrent connections per client IP (default 10). */
  maxConnectionsPerIp?: number
  /** Concurrent connections in all (default 1000). */
  maxConnections?: number
  /** Failed authentication attempts per connection before it is dropped (default 6). */
  maxAuthTries?: number
  /** Time allowed from TCP connect to successful authentication (default 30 s). */
  loginGraceMs?: number
  /** Keepalive probe interval, both towards clients and towards guests (default 15 s). */
  keepaliveIntervalMs?: number
}

export interface SshGateway {
  server: import('ssh2').Server
  port: number
  /** The host key's fingerprint, `SHA256:…`, for users to compare on first connect. */
  hostKeyFingerprint: string
  close(): Promise<void>
}
