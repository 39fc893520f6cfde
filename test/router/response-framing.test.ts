import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, describe, it } from 'node:test'
import type { Router } from '../../src/router/index.ts'
import { memoryDeps, route, startRouter } from './helpers.ts'
import { rawClient, rawRequest } from './raw.ts'

/** Canned answers by path, written as raw bytes: what a broken or hostile app might send. */
const answers: Record<string, string> = {
  '/ok': 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  '/te-gzip': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8bcoded',
  '/te-gzip-chunked':
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  '/te-and-cl':
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  '/two-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 6\r\n\r\nabcdef',
  '/obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok',
  '/double':
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' +
    'HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Poison: 1\r\n\r\npoison',
  '/ws-refused': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
}

/** A raw app: reads each request head and answers it from `answers`, on a kept-alive socket. */
async function cannedUpstream() {
  let conns = 0
  const server = net.createServer((s) => {
    conns++
    let buf = ''
    s.on('error', () => {})
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1')
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const path = buf.slice(0, end).split(' ')[1] ?? ''
        buf = buf.slice(end + 4)
        s.write(answers[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => conns,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }
}

describe('router response framing (an app sending odd framing back)', () => {
  let up: Awaited<ReturnType<typeof cannedUpstream>>
  let router: Router
  let port: number
  let host: string
  const request = (path: string) =>
    rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`)

  before(async () => {
    up = await cannedUpstream()
    ;({ router, port } = await startRouter(
      memoryDeps(up.port, [route('pub', { visibility: 'public' })]),
    ))
    host = `pub.localhost:${port}`
  })
  after(async () => {
    await router.close()
    await up.close()
  })

  for (const path of ['/te-gzip', '/te-gzip-chunked', '/te-and-cl', '/two-cl', '/obs-fold']) {
    it(`502 for ${path}, and the connection to the app is not used again`, async () => {
      assert.equal((await request('/ok'))?.body, 'ok')
      const before = up.connections()
      const r = await request(path)
      assert.equal(r?.status, 502)
      assert.equal(JSON.parse(r.body).error.code, 'BAD_GATEWAY')
      assert.equal((await request('/ok'))?.body, 'ok')
      assert.equal(up.connections(), before + 1, 'a new connection after the bad answer')
    })
  }

  it('a second, unasked-for response is never handed to the next client', async () => {
    const client = await rawClient(port)
    client.send(`GET /double HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    const [first] = await client.responses(1)
    assert.equal(first.body, 'ok')
    client.send(`GET /ok HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    const [second] = await client.responses(1)
    client.destroy()
    assert.equal(second?.body, 'ok')
    assert.equal(second.headers['x-poison'], undefined)
    for (let i = 0; i < 3; i++) assert.equal((await request('/ok'))?.body, 'ok')
  })

  it('a refused upgrade is relayed decoded, with connection: close, then the socket closes', async () => {
    const client = await rawClient(port)
    client.send(
      `GET /ws-refused HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`,
    )
    const [r] = await client.responses(1)
    assert.equal(r.status, 200)
    assert.equal(r.headers.connection, 'close')
    assert.equal(r.headers['transfer-encoding'], undefined)
    assert.equal(r.body, 'abc')
    assert.ok(await client.closed())
  })
})
