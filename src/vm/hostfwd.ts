import net from 'node:net'
import type { QmpClient } from './qmp.ts'

/**
 * Inbound traffic to a guest port: a slirp `hostfwd` on 127.0.0.1 inside the VM's own network
 * namespace (jail.ts), added and removed at runtime through HMP (QEMU 7.2 has no QMP command for
 * it; works with restrict=on). The namespace holds nothing else, so its ports are the driver's to
 * number; the inbound relay reaches them.
 */

/** First port handed out inside a VM's namespace (above 1023: QEMU runs without privileges). */
export const FIRST_NS_PORT = 20_000

/** A port the kernel considers free right now on the host's loopback (for tests and benches). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`invalid ${what} ${port}`)
}

/** The lowest namespace port that no forward in `used` holds. */
export function nextNsPort(used: Iterable<number>): number {
  const taken = new Set(used)
  let port = FIRST_NS_PORT
  while (taken.has(port)) port++
  checkPort(port, 'namespace port')
  return port
}

/** Adds `127.0.0.1:nsPort → guest:guestPort` in the VM's namespace. */
export async function addHostFwd(qmp: QmpClient, guestPort: number, nsPort: number) {
  checkPort(guestPort, 'guest port')
  checkPort(nsPort, 'namespace port')
  // An empty guest address targets the slirp dhcpstart address, i.e. the VM's lease.
  const out = await qmp.humanMonitorCommand(`hostfwd_add n0 tcp:127.0.0.1:${nsPort}-:${guestPort}`)
  if (out.trim()) throw new Error(`hostfwd to guest port ${guestPort} failed: ${out.trim()}`)
}

export async function removeHostFwd(qmp: QmpClient, nsPort: number): Promise<void> {
  checkPort(nsPort, 'namespace port')
  const out = await qmp.humanMonitorCommand(`hostfwd_remove n0 tcp:127.0.0.1:${nsPort}`)
  if (!/removed/.test(out)) throw new Error(`hostfwd_remove ${nsPort}: ${out.trim()}`)
}
