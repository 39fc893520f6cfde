import net from 'node:net'
import type { QmpClient } from './qmp.ts'

/**
 * Inbound traffic to a guest port: a slirp `hostfwd` bound to the host's loopback, added and
 * removed at runtime through HMP (QEMU 7.2 has no QMP command for it; works with restrict=on).
 */

/** A port the kernel considers free right now (another process may still take it: retried). */
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

/** Adds `127.0.0.1:hostPort → guest:guestPort`; picks a free host port when none is given. */
export async function addHostFwd(qmp: QmpClient, guestPort: number, hostPort?: number) {
  checkPort(guestPort, 'guest port')
  const tries = hostPort ? 1 : 5
  let last = ''
  for (let i = 0; i < tries; i++) {
    const port = hostPort || (await freeLoopbackPort())
    checkPort(port, 'host port')
    // An empty guest address targets the slirp dhcpstart address, i.e. the VM's lease.
    const out = await qmp.humanMonitorCommand(`hostfwd_add n0 tcp:127.0.0.1:${port}-:${guestPort}`)
    if (!out.trim()) return port
    last = out.trim()
  }
  throw new Error(`hostfwd to guest port ${guestPort} failed: ${last}`)
}

export async function removeHostFwd(qmp: QmpClient, hostPort: number): Promise<void> {
  checkPort(hostPort, 'host port')
  const out = await qmp.humanMonitorCommand(`hostfwd_remove n0 tcp:127.0.0.1:${hostPort}`)
  if (!/removed/.test(out)) throw new Error(`hostfwd_remove ${hostPort}: ${out.trim()}`)
}
