// Command line of rigbox-agent. In a VM it runs with no arguments (as root, from systemd).
import path from 'node:path'

export interface AgentOptions {
  /** Dev/test mode: open `<dir>/<port>.guest.sock` of a relay instead of virtio ports. */
  portDir: string | null
  /** Dev mode with an embedded relay whose host sockets are `<dir>/<port>.sock`. */
  listenUnix: string | null
  /** Prefix for the system files that /v1/config writes (empty in a VM). */
  root: string
  /** Whether to touch the running system: hostname, systemctl, poweroff (false in dev mode). */
  system: boolean
  /** Account that stands for `developer` (tests on a host without that user map it elsewhere). */
  developerUser: string
  /** Home of `developer` (exec/pty HOME, ~/.ssh, default file owner); not under `root`. */
  developerHome: string
  ptyHelper: string
  watchdogMs: number
  /** Outbound tunnel (VM bridge, egress proxy); null = off, the default in dev mode. */
  tunnel: TunnelOptions | null
}

export interface TunnelOptions {
  /** Where the guest listens: 172.16.0.1 in a VM (added to `lo`), 127.0.0.1 in tests. */
  address: string
  /** 0 = any free port (tests; the bound ports are logged). */
  bridgePort: number
  egressPort: number
  /** How long a new connection waits for a tunnel session before it is reset. */
  holdMs: number
}

export const VM_TUNNEL: TunnelOptions = {
  address: '172.16.0.1',
  bridgePort: 9090,
  egressPort: 3128,
  holdMs: 5000,
}

function portNumber(v: string | undefined, what: string): number {
  const n = Number(v)
  if (v === undefined || v === '' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new Error(`bad ${what} port ${String(v)}`)
  }
  return n
}

export function parseArgs(argv: string[]): AgentOptions {
  const o: AgentOptions = {
    portDir: null,
    listenUnix: null,
    root: '',
    system: true,
    developerUser: 'developer',
    developerHome: '/home/developer',
    ptyHelper: '/usr/lib/rigbox/pty-helper.py',
    watchdogMs: 7000,
    tunnel: null,
  }
  // undefined: not mentioned (on in a VM, off in dev mode); null: --no-tunnel.
  let tunnel: Partial<TunnelOptions> | null | undefined
  const tunnelOpt = (): Partial<TunnelOptions> => (tunnel ??= {})
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    switch (a) {
      case '--port-dir':
        o.portDir = path.resolve(val())
        o.system = false
        break
      case '--listen-unix':
        o.listenUnix = path.resolve(val())
        o.portDir = o.listenUnix
        o.system = false
        break
      case '--root':
        o.root = path.resolve(val())
        break
      case '--developer-user':
        o.developerUser = val()
        break
      case '--developer-home':
        o.developerHome = val()
        break
      case '--pty-helper':
        o.ptyHelper = path.resolve(val())
        break
      case '--watchdog-ms':
        o.watchdogMs = Number(val())
        if (!(o.watchdogMs >= 1000)) throw new Error('--watchdog-ms must be >= 1000')
        break
      case '--system':
        o.system = true
        break
      case '--tunnel-listen':
        tunnelOpt().address = val()
        break
      case '--tunnel-ports': {
        const [b, e] = val().split(',')
        tunnelOpt().bridgePort = portNumber(b, 'bridge')
        tunnelOpt().egressPort = portNumber(e, 'egress')
        break
      }
      case '--tunnel-hold-ms': {
        const ms = Number(val())
        if (!(ms >= 0)) throw new Error('--tunnel-hold-ms must be >= 0')
        tunnelOpt().holdMs = ms
        break
      }
      case '--no-tunnel':
        tunnel = null
        break
      case '-h':
      case '--help':
        process.stdout.write(USAGE)
        process.exit(0)
        break
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`)
    }
  }
  if (tunnel === undefined && !o.portDir) tunnel = {}
  o.tunnel = tunnel ? { ...VM_TUNNEL, ...tunnel } : null
  return o
}

const USAGE = `usage: rigbox-agent [options]
  (no options)            serve on the virtio-serial ports "agent" and "bulk", and tunnel
                          172.16.0.1:9090/3128 over "tunnel" (in a VM, as root)
  --listen-unix DIR       dev mode: embedded relay; hosts connect to DIR/agent.sock, DIR/bulk.sock
  --port-dir DIR          dev mode: open DIR/<port>.guest.sock of an external relay
  --root DIR              write system files (/etc/rigbox, ~/.ssh ...) under DIR
  --developer-user NAME   account standing for "developer" (default developer)
  --developer-home PATH   home of developer (default /home/developer)
  --pty-helper PATH       pty helper (default /usr/lib/rigbox/pty-helper.py)
  --watchdog-ms N         reset a session after N ms without host traffic (default 7000)
  --system                touch the running system even in dev mode
  --tunnel-listen ADDR    tunnel listeners on ADDR (in dev mode the tunnel is off without it)
  --tunnel-ports B,E      bridge and egress ports (default 9090,3128; 0 = any free port)
  --tunnel-hold-ms N      hold new connections up to N ms while the tunnel is down (default 5000)
  --no-tunnel             no outbound tunnel
`

/** A system path as this agent writes it (prefixed by --root in dev mode). */
export function sysPath(o: AgentOptions, p: string): string {
  return o.root ? path.join(o.root, p) : p
}
