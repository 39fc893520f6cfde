// Dev/test stand-in for QEMU's virtio-serial plumbing, so that the whole channel protocol can run
// on a host without a VM. Per port it has two unix sockets:
//   <dir>/<port>.sock        the "chardev" (server; the host client connects, one at a time)
//   <dir>/<port>.guest.sock  the "character device" (the agent connects = opens the port)
// What it reproduces from the real port (measured, see DESIGN.md §3):
//   - the chardev outlives host connections; a second host waits until the first is gone;
//   - bytes sent by the host while the guest has the port closed are lost;
//   - a guest that opens the port with no host connected reads EOF at once, and reads EOF when
//     the host goes away (Linux virtio_console returns 0 from read() then);
//   - guest writes while no host is connected are dropped; backpressure passes both ways;
//   - a half-close is a disconnect (QEMU treats EOF on the chardev socket as the host leaving).
// What it does not: the ~100–150 ms reopen cost, virtqueue buffering, and whatever made the
// prototype's guest stop reading. Two modes stand in for a guest that misses the disconnect:
//   'silent': no EOF; guest writes are dropped; the next host's bytes reach the same guest
//             connection (the agent must notice the fresh SYNC inside its HTTP/2 stream);
//   'stuck':  no EOF; guest writes never complete and nothing more arrives until the guest
//             closes and reopens the port (only its watchdog can notice).
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'

export type HostLossMode = 'eof' | 'silent' | 'stuck'

export interface RelayOptions {
  log?: (m: string) => void
  mode?: HostLossMode
}

export interface Relay {
  close(): Promise<void>
  setMode(mode: HostLossMode): void
  /** Guest opens of a port so far (each reopen after a reset counts). */
  guestOpens(port: string): number
}

interface PortState {
  host: net.Socket | null
  waitingHosts: net.Socket[]
  guest: net.Socket | null
  /** A guest connection left behind by a lost host in 'stuck' mode. */
  zombie: boolean
  opens: number
}

export async function startRelay(
  dir: string,
  ports: string[],
  opts: RelayOptions = {},
): Promise<Relay> {
  const log = opts.log ?? (() => {})
  let mode: HostLossMode = opts.mode ?? 'eof'
  fs.mkdirSync(dir, { recursive: true })
  const servers: net.Server[] = []
  const states = new Map<string, PortState>()

  for (const name of ports) {
    const st: PortState = { host: null, waitingHosts: [], guest: null, zombie: false, opens: 0 }
    states.set(name, st)

    const link = (): void => {
      const { host, guest } = st
      if (!host || !guest || st.zombie) return
      // Flow in both directions with backpressure, like a throttled virtqueue.
      host.pipe(guest, { end: false })
      guest.pipe(host, { end: false })
    }

    const acceptHost = (sock: net.Socket): void => {
      st.host = sock
      sock.on('error', () => {})
      sock.on('close', () => {
        if (st.host !== sock) return
        st.host = null
        const g = st.guest
        if (g) {
          g.unpipe(sock)
          sock.unpipe(g)
          if (mode === 'eof') g.end()
          if (mode !== 'stuck') {
            g.resume() // guest writes with no host connected are dropped
          } else {
            st.zombie = true
            g.pause() // its writes will never complete
          }
        }
        const next = st.waitingHosts.shift()
        if (next) acceptHost(next)
      })
      if (st.guest && !st.zombie) link()
      else sock.resume() // host bytes with no guest reading are lost
    }

    const hostServer = net.createServer({ pauseOnConnect: true }, (sock) => {
      if (st.host) {
        // QEMU serves one connection; later ones wait in the backlog until it is gone.
        st.waitingHosts.push(sock)
        sock.on('close', () => (st.waitingHosts = st.waitingHosts.filter((s) => s !== sock)))
        sock.on('error', () => {})
        return
      }
      acceptHost(sock)
    })

    const guestServer = net.createServer({ pauseOnConnect: true }, (g) => {
      st.opens++
      const prev = st.guest
      if (prev) prev.destroy()
      st.guest = g
      st.zombie = false
      g.on('error', () => {})
      g.on('close', () => {
        if (st.guest !== g) return
        st.guest = null
        st.zombie = false
        if (st.host) {
          st.host.unpipe(g)
          // Nobody reads the port now: whatever the host sends is lost.
          st.host.resume()
        }
      })
      if (!st.host) {
        g.end() // read() returns 0: no host connected
        g.resume()
        return
      }
      st.host.pause()
      link()
    })

    for (const [srv, file] of [
      [hostServer, `${name}.sock`],
      [guestServer, `${name}.guest.sock`],
    ] as const) {
      const p = path.join(dir, file)
      fs.rmSync(p, { force: true })
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject)
        srv.listen(p, () => resolve())
      })
      servers.push(srv)
    }
    log(`relay: ${name} on ${path.join(dir, name + '.sock')}`)
  }

  return {
    setMode: (m) => {
      mode = m
    },
    guestOpens: (port) => states.get(port)?.opens ?? 0,
    close: async () => {
      for (const st of states.values()) {
        for (const s of [st.host, st.guest, ...st.waitingHosts]) s?.destroy()
      }
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
    },
  }
}
