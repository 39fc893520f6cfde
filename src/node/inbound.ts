import net from 'node:net'
import type { GuestPortTarget } from './types.ts'

/**
 * A guest port reached through the VM's inbound relay (src/vm/inbound-relay.py): a unix socket only
 * root can open, then the forward's port in the VM's namespace and a newline. Writes made before
 * the socket connects are queued, so the caller uses the socket at once, as a TCP one.
 */
export function relayTarget(socketPath: string, nsPort: number): GuestPortTarget {
  return {
    key: `${socketPath}#${nsPort}`,
    connect() {
      const socket = net.connect({ path: socketPath, allowHalfOpen: true })
      socket.write(`${nsPort}\n`)
      return socket
    },
  }
}

/** A port reached over plain TCP (a stand-in app in tests and benches; a remote node's port). */
export function tcpTarget(port: number, host = '127.0.0.1'): GuestPortTarget {
  return {
    key: `${host}:${port}`,
    connect: () => net.connect({ host, port, allowHalfOpen: true }),
  }
}
