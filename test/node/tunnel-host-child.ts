// A node process that only runs a TunnelHost, so a test can SIGKILL it like a crashed node.
// Its bridge answers every request with `child <pid> <workspace>`; prints `connected` when the
// guest's session is up.
import type { Duplex } from 'node:stream'
import { TunnelHost } from '../../src/node/tunnel.ts'

const [workspaceId, sockPath] = process.argv.slice(2)

function answer(conn: Duplex, ws: string): void {
  let head = ''
  conn.on('data', (c: Buffer) => {
    head += c.toString('latin1')
    if (!head.includes('\r\n\r\n')) return
    const body = `child ${process.pid} ${ws}`
    conn.end(
      `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    )
  })
  conn.on('error', () => conn.destroy())
}

const host = new TunnelHost({
  handlers: { bridge: answer, egress: (conn) => conn.destroy() },
  pingIntervalMs: 500,
})
host.attach(workspaceId, sockPath)
const timer = setInterval(() => {
  if (host.status(workspaceId)?.connected) {
    clearInterval(timer)
    process.stdout.write('connected\n')
  }
}, 20)
