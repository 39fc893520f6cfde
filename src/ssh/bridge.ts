import type { Client, ClientChannel, Connection, ServerChannel } from 'ssh2'
import type { Authenticated } from './auth.ts'
import { connectGuest } from './guest.ts'
import { relayTcp } from './relay.ts'
import { handleSession } from './session.ts'
import type { GatewayDeps, SshLog } from './types.ts'

export interface BridgeOptions {
  deps: GatewayDeps
  log: SshLog
  keepaliveIntervalMs: number
}

/** Refusal for a workspace that cannot take SSH now, in the words a user needs. */
export class WorkspaceUnavailable extends Error {}

/** `alpha-k3j9x2ab` → `alpha` (the user name is `<workspace-name>-<id without ws->`). */
export function workspaceName(username: string, workspaceId: string): string {
  const suffix = '-' + workspaceId.replace(/^ws-/, '')
  return username.endsWith(suffix) && username.length > suffix.length
    ? username.slice(0, -suffix.length)
    : username
}

export function statusMessage(name: string, status: string): string {
  switch (status) {
    case 'stopped':
    case 'provisioned':
      return `workspace ${name} is stopped: start it with \`rig workspace start ${name}\``
    case 'starting':
    case 'provisioning':
      return `workspace ${name} is starting: try again in a few seconds`
    case 'paused':
      return `workspace ${name} is paused: resume it with \`rig workspace start ${name}\``
    case 'stopping':
      return `workspace ${name} is stopping: start it again with \`rig workspace start ${name}\` once it has stopped`
    case 'failed':
      return `workspace ${name} failed: see \`rig workspace logs ${name}\`, then \`rig workspace start ${name}\``
    case 'deleting':
      return `workspace ${name} is being deleted`
    default:
      return `workspace ${name} is ${status}, not running`
  }
}

/**
 * Everything one authenticated client connection does, carried over one SSH connection from the
 * gateway to the workspace's guest sshd (as the guest user, with the gateway key): sessions,
 * `ssh -L` (direct-tcpip → forwardOut) and `ssh -R` (tcpip-forward → forwardIn, with incoming
 * connections sent back as forwarded-tcpip). Agent and X11 forwarding are refused.
 */
export function bridgeConnection(conn: Connection, who: Authenticated, opts: BridgeOptions): void {
  const { deps, log } = opts
  const name = workspaceName(who.username, who.target.workspaceId)
  const wsLog = { workspaceId: who.target.workspaceId, user: who.username }
  const active = new Set<Promise<void>>()
  let guestPromise: Promise<Client> | undefined
  let guestClosed = false
  let userClosed = false

  const track = (p: Promise<void>) => {
    const done = p
      .catch((err: unknown) => log.debug({ ...wsLog, err: String(err) }, 'ssh: relay failed'))
      .finally(() => {
        active.delete(done)
        // Once the guest connection is gone, the client connection ends with its last channel.
        if (guestClosed && active.size === 0) conn.end()
      })
    active.add(done)
  }

  const connect = async (): Promise<Client> => {
    if (who.target.status !== 'running') {
      throw new WorkspaceUnavailable(statusMessage(name, who.target.status))
    }
    const address = await deps.guestSshd(who.target.workspaceId)
    // Running, yet the node has no forwarding for it (stopping right now, or node trouble).
    if (!address) {
      throw new WorkspaceUnavailable(
        `workspace ${name} cannot be reached over SSH right now: try again in a few seconds`,
      )
    }
    let guest: Client
    try {
      guest = await connectGuest({
        address,
        username: deps.guestUser ?? 'developer',
        privateKey: deps.gatewayKey.privateKey,
        keepaliveIntervalMs: opts.keepaliveIntervalMs,
      })
    } catch (err) {
      log.warn({ ...wsLog, err: String(err) }, 'ssh: cannot reach guest sshd')
      throw new WorkspaceUnavailable(
        `workspace ${name} is running but its SSH server does not answer yet: try again in a few seconds`,
      )
    }
    guest.on('close', () => {
      guestClosed = true
      log.debug(wsLog, 'ssh: guest connection closed')
      if (active.size === 0) conn.end()
    })
    guest.on('tcp connection', (info, accept, reject) => {
      // ssh -R: a connection reached a port the guest listens on for this client.
      try {
        conn.forwardOut(info.destIP, info.destPort, info.srcIP, info.srcPort, (err, userCh) => {
          if (err) return reject()
          track(relayTcp(accept(), userCh, log))
        })
      } catch {
        reject() // the client connection is already gone
      }
    })
    if (userClosed) guest.end()
    return guest
  }

  const guest = (): Promise<Client> => {
    guestPromise ??= connect()
    return guestPromise
  }
  // Start logging in to the guest right away: the first channel request follows immediately.
  if (who.target.status === 'running') guest().catch(() => undefined)

  const unavailable = (err: unknown) =>
    err instanceof WorkspaceUnavailable ? err.message : `workspace ${name} is unavailable`

  conn.on('session', (accept) => {
    handleSession(accept(), { guest, unavailable, log, track })
  })

  conn.on('tcpip', (accept, reject, info) => {
    track(
      (async () => {
        let g: Client
        let gch: ClientChannel
        try {
          g = await guest()
          gch = await new Promise<ClientChannel>((resolve, fail) =>
            g.forwardOut(info.srcIP, info.srcPort, info.destIP, info.destPort, (err, ch) =>
              err ? fail(err) : resolve(ch),
            ),
          )
        } catch (err) {
          log.debug({ ...wsLog, err: String(err), dest: info.destPort }, 'ssh: -L refused')
          return reject()
        }
        const ch: ServerChannel | undefined = accept()
        if (!ch) return void gch.close()
        await relayTcp(gch, ch, log)
      })(),
    )
  })

  conn.on('request', (accept, reject, reqName, info) => {
    if (reqName !== 'tcpip-forward' && reqName !== 'cancel-tcpip-forward') return reject?.()
    const { bindAddr, bindPort } = info as { bindAddr: string; bindPort: number }
    guest()
      .then((g) => {
        // Both throw synchronously if the guest connection has just gone.
        if (reqName === 'tcpip-forward') {
          g.forwardIn(bindAddr, bindPort, (err, port) => (err ? reject?.() : accept?.(port)))
        } else {
          g.unforwardIn(bindAddr, bindPort, (err) => (err ? reject?.() : accept?.()))
        }
      })
      .catch(() => reject?.())
  })

  conn.on('close', () => {
    userClosed = true
    guestPromise?.then((g) => g.end()).catch(() => undefined)
  })
}
