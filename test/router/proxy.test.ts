import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { EventEmitter } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { startConnectTimer, upstreamError } from '../../src/router/proxy.ts'
import { freeLoopbackPort } from '../../src/vm/hostfwd.ts'
import { tcpTarget } from '../../src/node/inbound.ts'
import type { Router } from '../../src/router/index.ts'
import {
  bearer,
  get,
  memoryDeps,
  route,
  startRouter,
  startUpstream,
  users,
  WS_GUID,
} from './helpers.ts'

/** A hand-made WebSocket client: handshake through the router, one masked text frame, its echo. */
async function wsEcho(port: number, host: string, text: string, headers: Record<string, string>) {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((r) => socket.once('connect', r))
  const key = crypto.randomBytes(16).toString('base64')
  socket.write(
    `GET /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('') +
      '\r\n',
  )
  let buf = Buffer.alloc(0)
  const read = (done: (b: Buffer) => number) =>
    new Promise<Buffer>((resolve, reject) => {
      const check = () => {
        const n = done(buf)
        if (n < 0) return false
        const out = buf.subarray(0, n)
        buf = buf.subarray(n)
        socket.off('data', onData)
        resolve(out)
        return true
      }
      const onData = (c: Buffer) => {
        buf = Buffer.concat([buf, c])
        check()
      }
      if (!check()) socket.on('data', onData)
      socket.once('error', reject)
    })
  const head = (
    await read((b) => {
      const i = b.indexOf('\r\n\r\n')
      return i < 0 ? -1 : i + 4
    })
  ).toString()
  if (!head.startsWith('HTTP/1.1 101')) {
    socket.destroy()
    return { head, echo: null }
  }
  const expected = crypto
    .createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64')
  assert.match(head, new RegExp(`Sec-WebSocket-Accept: ${expected.replace(/[+/]/g, '\\$&')}`, 'i'))
  const payload = Buffer.from(text)
  const mask = crypto.randomBytes(4)
  const masked = payload.map((b, i) => b ^ mask[i % 4])
  socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]))
  const frame = await read((b) => (b.length >= 2 && b.length >= 2 + b[1] ? 2 + b[1] : -1))
  socket.destroy()
  return { head, echo: frame.subarray(2).toString() }
}

describe('router proxying', () => {
  let up: Awaited<ReturnType<typeof startUpstream>>
  let router: Router
  let port: number
  let deps: ReturnType<typeof memoryDeps>

  before(async () => {
    up = await startUpstream()
    deps = memoryDeps(up.port, [route('pub', { visibility: 'public' }), route('priv')])
    ;({ router, port } = await startRouter(deps, { responseTimeoutMs: 500 }))
  })
  after(async () => {
    await router.close()
    await up.close()
  })

  it('sets X-Forwarded-*, appending to an earlier X-Forwarded-For, and drops hop-by-hop headers', async () => {
    const r = await get(port, `pub.localhost:${port}`, '/', {
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      connection: 'keep-alive, x-secret-hop',
      'x-secret-hop': '1',
      'proxy-authorization': 'Basic Zm9v',
    })
    const h = r.json().headers as Record<string, string>
    assert.equal(h['x-forwarded-for'], '203.0.113.7, 127.0.0.1')
    assert.equal(h['x-forwarded-proto'], 'http')
    assert.equal(h['x-forwarded-host'], `pub.localhost:${port}`)
    assert.equal(h['x-forwarded-port'], String(port))
    assert.equal(h['x-secret-hop'], undefined)
    assert.equal(h['proxy-authorization'], undefined)
    const plain = await get(port, 'pub.localhost', '/')
    assert.equal((plain.json().headers as Record<string, string>)['x-forwarded-for'], '127.0.0.1')
    assert.equal((plain.json().headers as Record<string, string>)['x-forwarded-port'], '80')
  })

  it('streams request bodies (chunked) to the app', async () => {
    const r = await get(
      port,
      'pub.localhost',
      '/upload',
      { 'transfer-encoding': 'chunked' },
      {
        method: 'POST',
        body: 'x'.repeat(100_000),
      },
    )
    assert.equal(r.json().body, 'x'.repeat(100_000))
  })

  it('delivers SSE events as they are sent', async () => {
    const arrived: number[] = []
    await new Promise<void>((resolve, reject) => {
      http
        .get(
          { host: '127.0.0.1', port, path: '/sse', headers: { host: 'pub.localhost' } },
          (res) => {
            assert.equal(res.headers['content-type'], 'text/event-stream')
            res.on('data', (c: Buffer) => {
              for (const _ of c.toString().matchAll(/data: /g)) arrived.push(Date.now())
            })
            res.on('end', resolve)
          },
        )
        .on('error', reject)
    })
    assert.equal(arrived.length, 3)
    assert.equal(up.sseSent.length, 3)
    // The first event reached the client before the app had even sent the last one.
    assert.ok(
      arrived[0] < up.sseSent[2] - 1500,
      `first at ${arrived[0]}, last sent ${up.sseSent[2]}`,
    )
  })

  it('keeps connections alive: two requests on one client socket and one upstream socket', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const a = await get(port, 'pub.localhost', '/1', {}, { agent })
      const b = await get(port, 'pub.localhost', '/2', {}, { agent })
      assert.equal(a.reused, false)
      assert.equal(b.reused, true)
      assert.equal(a.json().remotePort, b.json().remotePort, 'router reused its upstream socket')
    } finally {
      agent.destroy()
    }
  })

  it('502 when nothing listens on the upstream port (connection refused)', async () => {
    deps.targets.set('pub', tcpTarget(await freeLoopbackPort()))
    try {
      const r = await get(port, 'pub.localhost', '/')
      assert.equal(r.status, 502)
      assert.equal((r.json().error as { code: string }).code, 'APP_PORT_CLOSED')
    } finally {
      deps.targets.delete('pub')
    }
  })

  it('502 when the port accepts and closes at once (hostfwd to a closed guest port)', async () => {
    const slam = net.createServer((s) => s.destroy())
    await new Promise<void>((r) => slam.listen(0, '127.0.0.1', r))
    deps.targets.set('pub', tcpTarget((slam.address() as net.AddressInfo).port))
    try {
      const r = await get(port, 'pub.localhost', '/')
      assert.equal(r.status, 502)
      assert.equal((r.json().error as { code: string }).code, 'APP_PORT_CLOSED')
    } finally {
      deps.targets.delete('pub')
      slam.close()
    }
  })

  it('504 when the app does not answer in time', async () => {
    const r = await get(port, 'pub.localhost', '/hang', { accept: 'text/html' })
    assert.equal(r.status, 504)
    assert.match(r.body, /timed out/)
  })

  it('refuses request heads over the size bound', async () => {
    const r = await get(port, 'pub.localhost', '/', { 'x-big': 'a'.repeat(20_000) })
    assert.ok(r.status === 431 || r.status === 400, String(r.status))
  })

  it('proxies WebSockets after the access check, without the platform key', async () => {
    const pub = await wsEcho(port, 'pub.localhost', 'hello', {})
    assert.equal(pub.echo, 'hello')
    const denied = await wsEcho(port, 'priv.localhost', 'x', {})
    assert.match(denied.head, /^HTTP\/1.1 403/)
    assert.equal(denied.echo, null)
    const owner = await wsEcho(port, 'priv.localhost', 'owner here', bearer(users.owner.key))
    assert.equal(owner.echo, 'owner here')
    assert.match(owner.head, /X-Saw-Auth: -/)
    const none = await wsEcho(port, 'nope.localhost', 'x', {})
    assert.match(none.head, /^HTTP\/1.1 404/)
  })

  it('502 on a WebSocket upgrade when the app port is closed or hangs up at once', async () => {
    const slam = net.createServer((s) => s.end())
    await new Promise<void>((r) => slam.listen(0, '127.0.0.1', r))
    try {
      for (const target of [await freeLoopbackPort(), (slam.address() as net.AddressInfo).port]) {
        deps.targets.set('pub', tcpTarget(target))
        const r = await wsEcho(port, 'pub.localhost', 'x', {})
        assert.match(r.head, /^HTTP\/1.1 502/)
      }
    } finally {
      deps.targets.delete('pub')
      slam.close()
    }
  })
})

describe('router upstream connect timeout', () => {
  it('fires while connecting and maps to 504; a settled socket clears it', async () => {
    const stuck = Object.assign(new EventEmitter(), { connecting: true })
    const err = await new Promise<Error>((resolve) => startConnectTimer(stuck, 20, resolve))
    assert.equal(upstreamError(err, true).status, 504)
    const quick = Object.assign(new EventEmitter(), { connecting: true })
    let fired = false
    startConnectTimer(quick, 20, () => (fired = true))
    quick.emit('connect')
    await new Promise((r) => setTimeout(r, 40))
    assert.equal(fired, false)
  })
})
