import net from 'node:net'

/**
 * Latency with microsecond resolution: one keep-alive connection, requests one after another,
 * each timed from write to the last body byte. autocannon's histogram counts whole
 * milliseconds, too coarse for a loopback proxy hop, so this complements its figures.
 */
export async function sequentialLatency(port: number, host: string, count: number) {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.setNoDelay(true)
  const request = `GET /api/v1/thing HTTP/1.1\r\nHost: ${host}\r\n\r\n`
  const micros: number[] = []
  let buf: Buffer = Buffer.alloc(0)
  let started = 0n
  try {
    await new Promise<void>((resolve, reject) => {
      const send = () => {
        started = process.hrtime.bigint()
        socket.write(request)
      }
      socket.on('error', reject)
      socket.on('close', () => reject(new Error('connection closed by the proxy')))
      socket.on('data', (chunk: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const length = /\r\ncontent-length: *(\d+)/i.exec(buf.subarray(0, end).toString('latin1'))
        if (!length) return reject(new Error('bench responses need a Content-Length'))
        const total = end + 4 + Number(length[1])
        if (buf.length < total) return
        micros.push(Number(process.hrtime.bigint() - started) / 1000)
        buf = buf.subarray(total)
        if (micros.length < count) send()
        else resolve()
      })
      send()
    })
  } finally {
    socket.removeAllListeners('close')
    socket.destroy()
  }
  micros.sort((a, b) => a - b)
  const at = (q: number) => micros[Math.min(micros.length - 1, Math.floor(q * micros.length))]
  return { p50us: at(0.5), p99us: at(0.99) }
}
