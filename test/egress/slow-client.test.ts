import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import { Duplex, type Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { policies, setPolicy, startProxy, waitFor, WS } from './helpers.ts'

// The origin sends a few MiB and closes at once; the client reads slowly. Whatever the proxy
// still holds for the client when the origin's close arrives must reach it, then its end.

const SIZE = 4 << 20
const payload = randomBytes(SIZE)
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

type Transport = 'tcp' | 'stream'

describe('egress proxy: a slow client gets the whole download when the origin closes first', () => {
  let proxy: Awaited<ReturnType<typeof startProxy>>
  let origin: Awaited<ReturnType<typeof startOrigin>>
  before(async () => {
    setPolicy(['127.0.0.1'])
    proxy = await startProxy({}, { allowHostLocal: true })
    origin = await startOrigin()
  })
  after(async () => {
    await proxy.close()
    await origin.close()
    policies.clear()
  })

  for (const transport of ['tcp', 'stream'] as const)
    for (const protocol of ['forward', 'connect'] as const)
      for (const halfClosed of [false, true])
        it(`${protocol} over ${transport}${halfClosed ? ', the client half-closed' : ''}`, async () => {
          const target = `127.0.0.1:${origin.port}`
          const request =
            protocol === 'forward'
              ? `GET http://${target}/big HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`
              : `CONNECT ${target} HTTP/1.1\r\n\r\nsend`
          const client = open(transport, proxy)
          client.write(request)
          if (halfClosed) client.end()
          const got = await readSlowly(client)
          client.destroy()
          const head = got.data.subarray(0, got.data.indexOf('\r\n\r\n') + 4).toString()
          const body = got.data.subarray(head.length)
          assert.match(head, /^HTTP\/1\.1 200 /)
          assert.equal(got.how, 'end', 'the client saw an end, not a reset')
          assert.equal(body.length, SIZE)
          assert.equal(sha(body), sha(payload))
          await waitFor(() => proxy.proxy.stats(WS).active === 0)
        })

  it('still cuts the client off at once, without an end, when the origin connection fails', async () => {
    // Half an answer, then silence: the idle timeout fails the origin connection (an error).
    const stuck = net.createServer((s) => s.once('data', () => s.write(payload.subarray(0, 1000))))
    await new Promise<void>((r) => stuck.listen(0, '127.0.0.1', r))
    const quick = await startProxy({}, { allowHostLocal: true, idleTimeoutMs: 300 })
    try {
      const client = open('stream', quick)
      client.write(
        `CONNECT 127.0.0.1:${(stuck.address() as net.AddressInfo).port} HTTP/1.1\r\n\r\n.`,
      )
      const t0 = Date.now()
      const got = await readSlowly(client, 0)
      assert.equal(got.how, 'close', 'cut off, not a clean end')
      assert.ok(got.data.toString('latin1').endsWith(payload.subarray(0, 1000).toString('latin1')))
      assert.ok(Date.now() - t0 < 5000, 'no lingering after an error')
    } finally {
      await quick.close()
      stuck.close()
    }
  })
})

/** The origin: reads the start of a request, sends its answer (HTTP or raw) and closes. */
async function startOrigin() {
  const server = net.createServer((s) => {
    s.on('error', () => {})
    s.once('data', (first: Buffer) => {
      const http = first.toString('latin1').startsWith('GET ')
      if (http) s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\nConnection: close\r\n\r\n`)
      s.end(payload, () => s.destroy())
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((r) => server.close(r)),
  }
}

/** A client connection to the proxy: a real socket, or a stream handed over as a tunnel does. */
function open(transport: Transport, proxy: Awaited<ReturnType<typeof startProxy>>): Duplex {
  if (transport === 'tcp') return net.connect(proxy.port, '127.0.0.1')
  const { near, far } = streamPair()
  proxy.proxy.handle(near, WS)
  return far
}

/**
 * A connection that is not a socket (as a tunnel stream is not) with a small buffer, so a slow
 * reader holds the proxy's writes in its own queue: a write is taken only when the reader has
 * room, and destroying the proxy's end before its end was taken loses the rest and cuts the
 * reader off without an end, as a reset would.
 */
function streamPair(): { near: Duplex; far: Duplex } {
  let waiting: (() => void) | null = null
  const far: Duplex = new Duplex({
    highWaterMark: 16 * 1024,
    read() {
      const take = waiting
      waiting = null
      take?.()
    },
    write(chunk: Buffer, _enc, cb) {
      near.push(chunk)
      cb()
    },
    final(cb) {
      near.push(null)
      cb()
    },
    destroy(err, cb) {
      near.destroy()
      cb(err)
    },
  })
  const near: Duplex = new Duplex({
    allowHalfOpen: true,
    read() {},
    write(chunk: Buffer, _enc, cb) {
      const take = () => {
        far.push(chunk)
        cb()
      }
      if (far.readableLength < far.readableHighWaterMark) take()
      else waiting = take
    },
    final(cb) {
      far.push(null)
      cb()
    },
    destroy(err, cb) {
      waiting = null
      if (!near.writableFinished) far.destroy()
      cb(err)
    },
  })
  return { near, far }
}

/** Waits a while before reading at all, then reads in small bites, until an end or a close. */
function readSlowly(conn: Readable, waitMs = 300): Promise<{ data: Buffer; how: 'end' | 'close' }> {
  conn.pause()
  conn.on('error', () => {})
  const parts: Buffer[] = []
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const start = setTimeout(() => {
      timer = setInterval(() => {
        for (let i = 0; i < 4; i++) {
          const bite = conn.read(4096) ?? conn.read()
          if (bite) parts.push(bite)
        }
      }, 2)
    }, waitMs)
    const done = (how: 'end' | 'close') => () => {
      clearTimeout(start)
      clearInterval(timer)
      resolve({ data: Buffer.concat(parts), how })
    }
    conn.once('end', done('end'))
    conn.once('close', done('close'))
  })
}
