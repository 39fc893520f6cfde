// The outbound tunnel, guest side: the agent listens on 172.16.0.1:9090 (VM bridge) and :3128
// (egress proxy) and carries each accepted TCP connection as one HTTP/2 stream over the `tunnel`
// port. Here the guest is the HTTP/2 client (it opens the streams); the handshake, watchdog and
// reopen are the same PortChannel as on `agent`/`bulk`. The node knows the VM by the port the
// stream arrived on, so nothing sent here claims an identity.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import path from 'node:path'
import { addAbortSignal } from 'node:stream'
import { promisify } from 'node:util'
import { defaultChannelOptions, PortChannel } from './channel.ts'
import { sysPath, type AgentOptions, type TunnelOptions } from './options.ts'
import { openDevPort, openVirtioPort } from './port.ts'

const run = promisify(execFile)

/** Wire contract shared with the node (src/node/tunnel.ts imports these). */
export const PORT_TUNNEL = 'tunnel'
export const TUNNEL_SERVICES = ['bridge', 'egress'] as const
export type TunnelService = (typeof TUNNEL_SERVICES)[number]
export const tunnelPath = (service: TunnelService): string => `/v1/tunnel/${service}`

const BIND_RETRY_MS = 500

export interface Tunnel {
  /** Bound ports (known once listening; 0 before). */
  ports: Record<TunnelService, number>
  channel: PortChannel
  stop(): void
}

export function startTunnel(o: AgentOptions, log: (m: string) => void): Tunnel {
  const t = o.tunnel!
  writeProxyEnv(o, t).catch((e: unknown) => log(`tunnel: proxy env: ${String(e)}`))
  const open = o.portDir
    ? () => openDevPort(o.portDir!, PORT_TUNNEL)
    : () => openVirtioPort(PORT_TUNNEL)
  let session: http2.ClientHttp2Session | null = null
  const held = new Set<{
    sock: net.Socket
    service: TunnelService
    deadline: number
    timer: NodeJS.Timeout
  }>()
  let stopped = false

  const usable = (s: http2.ClientHttp2Session | null): s is http2.ClientHttp2Session =>
    !!s && !s.closed && !s.destroyed

  /** Forwards a connection, or holds it until a session is up or `deadline` has passed. */
  const accept = (sock: net.Socket, service: TunnelService, deadline: number): void => {
    if (stopped || sock.destroyed) return reset(sock)
    const retry = (): void => accept(sock, service, deadline)
    if (usable(session) && forward(session, sock, service, retry)) return
    // No session (host away, guest port reopening): give it a moment before refusing.
    const h = {
      sock,
      service,
      deadline,
      timer: setTimeout(() => {
        held.delete(h)
        reset(sock)
      }, deadline - Date.now()),
    }
    held.add(h)
    sock.once('close', () => {
      clearTimeout(h.timer)
      held.delete(h)
    })
  }

  const flush = (): void => {
    for (const h of [...held]) {
      if (!usable(session)) return
      clearTimeout(h.timer)
      held.delete(h)
      accept(h.sock, h.service, h.deadline)
    }
  }

  const channel = new PortChannel(
    PORT_TUNNEL,
    open,
    (sock) => {
      const s = http2.connect('http://rigbox-node', {
        createConnection: () => sock,
        // Per-stream receive window: what the node may send before the VM's client reads.
        settings: { initialWindowSize: 1 << 20, enablePush: false, maxHeaderListSize: 16384 },
        maxSessionMemory: 64,
      })
      session = s
      s.once('close', () => {
        if (session === s) session = null
      })
      // After PortChannel has hooked its watchdog and error handlers onto the session.
      process.nextTick(flush)
      return s
    },
    { ...defaultChannelOptions, watchdogMs: o.watchdogMs, log },
  )
  channel.start()

  const ports: Record<TunnelService, number> = { bridge: 0, egress: 0 }
  const servers: net.Server[] = []
  const listening = addLoopbackAddress(o, t, log).then(() =>
    Promise.all(
      TUNNEL_SERVICES.map(async (service) => {
        const want = service === 'bridge' ? t.bridgePort : t.egressPort
        // noDelay: a streamed answer (SSE from the AI proxy) is many small writes; with Nagle each
        // waited for the client's delayed ACK, ~40 ms before the first token.
        const opts = { allowHalfOpen: true, pauseOnConnect: true, noDelay: true }
        const srv = net.createServer(opts, (sock) => {
          sock.on('error', () => {}) // a client's reset is reported through 'close'
          accept(sock, service, Date.now() + t.holdMs)
        })
        servers.push(srv)
        ports[service] = await listenRetrying(srv, t.address, want, () => stopped, log)
        if (!stopped) log(`tunnel: ${service} listening on ${t.address}:${ports[service]}`)
      }),
    ),
  )
  listening.catch((e: unknown) => log(`tunnel: listen: ${String(e)}`))

  return {
    ports,
    channel,
    stop() {
      stopped = true
      channel.stop()
      for (const s of servers) s.close()
      for (const h of held) reset(h.sock)
    },
  }
}

/**
 * Opens the stream for one TCP connection and splices the two. False when the session cannot
 * take a stream any more (it is going away); the caller holds or resets the connection.
 * The client's bytes flow only once the node has answered 200: a session that dies before
 * that (a host restarting) has taken nothing from the client, so `retry` can try again.
 */
function forward(
  s: http2.ClientHttp2Session,
  sock: net.Socket,
  service: TunnelService,
  retry: () => void,
): boolean {
  let stream: http2.ClientHttp2Stream
  try {
    stream = s.request({ ':method': 'POST', ':path': tunnelPath(service) }, { endStream: false })
  } catch {
    return false
  }
  stream.on('error', () => {}) // judged on 'close' below
  let answered = false
  stream.once('response', (h) => {
    if (h[':status'] !== 200) {
      cancelStream(stream)
      return reset(sock)
    }
    answered = true
    sock.pipe(stream)
  })
  // pipe() carries backpressure both ways. Ends are carried by hand: node also ends a stream's
  // readable side when its session is destroyed, which must not look like the node's
  // END_STREAM (a destroyed stream is not a finished one).
  let ended = false
  stream.pipe(sock, { end: false })
  stream.once('end', () => {
    if (stream.destroyed) return
    ended = true
    sock.end() // half-close: the client may still be sending
  })
  stream.once('close', () => {
    sock.unpipe(stream)
    if (ended) {
      // The node finished its side: let what it sent reach the client, then close.
      if (sock.writableFinished) sock.destroy()
      else sock.once('finish', () => sock.destroy())
    } else if (!answered && !sock.destroyed && (s.closed || s.destroyed)) {
      retry() // the session died under it; a stream the node refused is not retried
    } else {
      // Reset by the node, or the session died (watchdog, host gone): the client must not take
      // a cut-off answer for a complete one, so it gets a TCP reset rather than a FIN.
      reset(sock)
    }
  })
  sock.once('close', (hadError) => {
    if (stream.closed) return
    // The client reset, or we did: tell the node. A clean close ends the stream by itself.
    if (hadError || !sock.readableEnded) cancelStream(stream)
  })
  return true
}

/**
 * RST_STREAM (CANCEL) at once. Not `stream.close(code)`: on a stream whose writable side is
 * open it ends that side first, so the peer reads END_STREAM — a clean end — before the reset.
 * Destroying with an AbortError resets without ending (node sends CANCEL for it).
 */
export function cancelStream(stream: http2.Http2Stream): void {
  if (stream.destroyed) return
  const ac = new AbortController()
  addAbortSignal(ac.signal, stream)
  ac.abort()
}

function reset(sock: net.Socket): void {
  if (!sock.destroyed) sock.resetAndDestroy()
}

/**
 * 172.16.0.1 lives on `lo` (the local routing table wins over eth0's 172.16.0.0/23 route); slirp
 * itself never answers there. Dev mode on 127.0.0.1 needs nothing.
 */
async function addLoopbackAddress(
  o: AgentOptions,
  t: TunnelOptions,
  log: (m: string) => void,
): Promise<void> {
  if (!o.system && t.address.startsWith('127.')) return
  try {
    // systemd brings lo up early; a minimal init may not have.
    await run('ip', ['link', 'set', 'lo', 'up'], { timeout: 10_000 })
    await run('ip', ['addr', 'add', `${t.address}/32`, 'dev', 'lo'], { timeout: 10_000 })
  } catch (e) {
    const msg = (e as { stderr?: string }).stderr ?? String(e)
    // iproute2 says "File exists" or "Address already assigned" when it is there already.
    if (!/exists|already assigned/i.test(msg)) log(`tunnel: ip addr add: ${msg.trim()}`)
  }
}

/** Binds, retrying while the address is not there yet or the port still taken. */
async function listenRetrying(
  srv: net.Server,
  address: string,
  port: number,
  stopped: () => boolean,
  log: (m: string) => void,
): Promise<number> {
  for (let attempt = 0; !stopped(); attempt++) {
    try {
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject)
        srv.listen(port, address, () => {
          srv.off('error', reject)
          resolve()
        })
      })
      srv.on('error', (e) => log(`tunnel: ${address}:${port}: ${e.message}`))
      return (srv.address() as net.AddressInfo).port
    } catch (e) {
      if (attempt === 0) log(`tunnel: cannot listen on ${address}:${port} yet: ${String(e)}`)
      await new Promise((r) => setTimeout(r, BIND_RETRY_MS))
    }
  }
  return 0
}

/**
 * Proxy settings for everything in the VM, in files of their own (the workspace env of
 * POST /v1/config lives in /etc/rigbox/env and friends, and wins over these: its profile.d
 * script runs first and these keep a value already set; its systemd drop-in sorts later).
 */
export async function writeProxyEnv(o: AgentOptions, t: TunnelOptions): Promise<void> {
  // A dev agent without --root must never touch the host's /etc.
  if (!o.system && !o.root) return
  const proxy = `http://${t.address}:${t.egressPort}`
  const env: [string, string][] = [
    ['HTTP_PROXY', proxy],
    ['HTTPS_PROXY', proxy],
    ['http_proxy', proxy],
    ['https_proxy', proxy],
    ['NO_PROXY', `localhost,127.0.0.1,${t.address}`],
    ['no_proxy', `localhost,127.0.0.1,${t.address}`],
    ['RIGBOX_BRIDGE_URL', `http://${t.address}:${t.bridgePort}`],
  ]
  const header = '# Managed by rigbox-agent (outbound tunnel); rewritten at every start.\n'
  const profile = env.map(([k, v]) => `export ${k}="\${${k}-${v}}"\n`).join('')
  await writeAtomic(sysPath(o, '/etc/profile.d/rigbox-proxy.sh'), header + profile)
  // pam_env reads /etc/environment for every login, including non-login `ssh host cmd`.
  const envFile = sysPath(o, '/etc/environment')
  const old = await fs.promises.readFile(envFile, 'utf8').catch(() => '')
  const block = [BEGIN, ...env.map(([k, v]) => `${k}=${v}`), END]
  // Keep every line but our block (from an earlier start), then append it afresh.
  const kept: string[] = []
  let inside = false
  for (const line of old.split('\n')) {
    if (line === BEGIN) inside = true
    else if (line === END) inside = false
    else if (!inside) kept.push(line)
  }
  while (kept.length && kept[kept.length - 1] === '') kept.pop()
  await writeAtomic(envFile, [...kept, ...block, ''].join('\n'))
  // Services of later boots that start before the agent.
  const assignments = env.map(([k, v]) => `"${k}=${v}"`).join(' ')
  await writeAtomic(
    sysPath(o, '/etc/systemd/system.conf.d/40-rigbox-proxy.conf'),
    `${header}[Manager]\nDefaultEnvironment=${assignments}\n`,
  )
  if (!o.system) return
  // Services started from now on; keys the workspace env sets are left to it.
  const own = await fs.promises.readFile(sysPath(o, '/etc/rigbox/env'), 'utf8').catch(() => '')
  const userKeys = new Set([...own.matchAll(/^([A-Za-z_][A-Za-z0-9_]*)=/gm)].map((m) => m[1]))
  const set = env.filter(([k]) => !userKeys.has(k)).map(([k, v]) => `${k}=${v}`)
  if (set.length) await run('systemctl', ['set-environment', ...set], { timeout: 10_000 })
}

const BEGIN = '# BEGIN rigbox proxy (managed by rigbox-agent)'
const END = '# END rigbox proxy'

async function writeAtomic(p: string, data: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(p), { recursive: true })
  const tmp = `${p}.rigbox-${randomBytes(4).toString('hex')}.tmp`
  await fs.promises.writeFile(tmp, data, { mode: 0o644 })
  await fs.promises.rename(tmp, p).catch(async (e: unknown) => {
    await fs.promises.rm(tmp, { force: true })
    throw e
  })
}
