import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { Duplex } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import {
  connectVia,
  policies,
  readAll,
  setPolicy,
  startEcho,
  startProxy,
  startTarget,
  viaProxy,
  waitFor,
  WS,
  type Echoed,
} from './helpers.ts'

type Started = Awaited<ReturnType<typeof startProxy>>

describe('egress proxy on loopback', () => {
  let target: Awaited<ReturnType<typeof startTarget>>
  let echo: Awaited<ReturnType<typeof startEcho>>
  let strict: Started // production settings: loopback never opens
  let lab: Started // allowHostLocal, so loopback servers can stand in for the internet
  const names = () => ({ 'target.test': ['127.0.0.1'], 'public.test': ['8.8.8.8'] })

  before(async () => {
    target = await startTarget()
    echo = await startEcho()
    strict = await startProxy(names())
    lab = await startProxy(names(), { allowHostLocal: true })
  })
  after(async () => {
    await strict.close()
    await lab.close()
    await target.close()
    await echo.close()
    policies.clear()
  })

  it('refuses loopback by default, by address or by name, with the reason', async () => {
    setPolicy()
    for (const proxy of [strict, lab]) {
      const r = await viaProxy(proxy.port, `http://127.0.0.1:${target.port}/x`)
      assert.equal(r.status, 403)
      assert.match(r.body, /^egress to 127\.0\.0\.1 refused: loopback address/)
      const byName = await viaProxy(proxy.port, `http://target.test:${target.port}/x`)
      assert.equal(byName.status, 403)
      assert.match(byName.body, /target\.test \(127\.0\.0\.1\) refused: loopback address/)
      const c = await connectVia(proxy.port, `127.0.0.1:${echo.port}`)
      assert.equal(c.status, 403)
      assert.match(c.body, /loopback address/)
      c.socket.destroy()
    }
    const tricky = await viaProxy(strict.port, `http://0x7f.1:${target.port}/x`)
    assert.equal(tricky.status, 403)
    const mapped = await connectVia(strict.port, `[::ffff:127.0.0.1]:${echo.port}`)
    assert.equal(mapped.status, 403)
    mapped.socket.destroy()
  })

  it('keeps loopback closed in production even when the policy allows it', async () => {
    setPolicy(['127.0.0.1', 'target.test'])
    const r = await viaProxy(strict.port, `http://target.test:${target.port}/x`)
    assert.equal(r.status, 403)
    assert.match(r.body, /never reachable from a workspace/)
  })

  it('forwards an absolute-form GET as origin-form with hop-by-hop headers rewritten', async () => {
    setPolicy(['127.0.0.1'])
    const r = await viaProxy(lab.port, `http://127.0.0.1:${target.port}/path?q=1`, {
      headers: {
        'proxy-authorization': 'Basic c2VjcmV0',
        'proxy-connection': 'keep-alive',
        connection: 'keep-alive, x-private',
        'x-private': 'drop me',
        'x-kept': 'yes',
      },
    })
    assert.equal(r.status, 200)
    const seen = JSON.parse(r.body) as Echoed
    assert.equal(seen.url, '/path?q=1')
    assert.equal(seen.headers.host, `127.0.0.1:${target.port}`)
    assert.equal(seen.headers['x-kept'], 'yes')
    assert.equal(seen.headers.via, '1.1 rigbox')
    for (const h of ['proxy-authorization', 'proxy-connection', 'x-private'])
      assert.equal(seen.headers[h], undefined, h)
    assert.equal(r.headers.via, '1.1 rigbox')
    assert.equal(r.headers['x-hop'], undefined, 'listed in the origin Connection header')
  })

  it('opens a loopback target by name when the name is allowed', async () => {
    setPolicy(['target.test'])
    const r = await viaProxy(lab.port, `http://target.test:${target.port}/n`)
    assert.equal(r.status, 200)
    assert.equal((JSON.parse(r.body) as Echoed).headers.host, `target.test:${target.port}`)
  })

  it('serves several requests on one keep-alive client connection, bodies included', async () => {
    setPolicy(['127.0.0.1'])
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const url = `http://127.0.0.1:${target.port}/k`
    const sockets = new Set<net.Socket>()
    agent.on('free', (s: net.Socket) => sockets.add(s))
    try {
      const a = await viaProxy(lab.port, url, { agent, method: 'POST', body: 'hello' })
      const b = await viaProxy(lab.port, url, {
        agent,
        method: 'PUT',
        headers: { 'transfer-encoding': 'chunked' },
        body: 'chunked body',
      })
      const c = await viaProxy(lab.port, url, { agent })
      assert.deepEqual([a.status, b.status, c.status], [200, 200, 200])
      assert.equal((JSON.parse(a.body) as Echoed).body, 'hello')
      assert.equal((JSON.parse(b.body) as Echoed).body, 'chunked body')
      assert.equal((JSON.parse(c.body) as Echoed).method, 'GET')
      assert.equal(sockets.size, 1, 'one client connection for all three')
    } finally {
      agent.destroy()
    }
  })

  it('lets deny beat allow', async () => {
    setPolicy(['127.0.0.1'], ['target.test'])
    const byName = await viaProxy(lab.port, `http://target.test:${target.port}/`)
    assert.equal(byName.status, 403)
    assert.match(byName.body, /deny list \("target\.test"\)/)
    setPolicy(['target.test'], ['127.0.0.0/8'])
    const byNet = await connectVia(lab.port, `target.test:${echo.port}`)
    assert.equal(byNet.status, 403)
    assert.match(byNet.body, /deny list \("127\.0\.0\.0\/8"\)/)
    byNet.socket.destroy()
  })

  it('tunnels CONNECT bytes both ways, half-close included, and counts them', async () => {
    setPolicy(['127.0.0.1'])
    const before = lab.proxy.stats(WS)
    const { status, socket } = await connectVia(lab.port, `127.0.0.1:${echo.port}`)
    assert.equal(status, 200)
    const got = readAll(socket)
    socket.write('ping')
    await new Promise((r) => setTimeout(r, 50))
    socket.end('pong')
    assert.equal(await got, 'PINGPONGbye')
    await new Promise((r) => socket.once('close', r))
    await waitFor(() => lab.proxy.stats(WS).active === 0)
    const after = lab.proxy.stats(WS)
    assert.equal(after.connections - before.connections, 1)
    assert.equal(after.refused - before.refused, 0)
    assert.equal(after.bytes_out - before.bytes_out, 8)
    assert.equal(after.bytes_in - before.bytes_in, 11)
  })

  it('counts refusals and attempts per workspace', async () => {
    setPolicy()
    const before = strict.proxy.stats(WS)
    await viaProxy(strict.port, `http://127.0.0.1:${target.port}/`)
    const after = strict.proxy.stats(WS)
    assert.equal(after.connections - before.connections, 1)
    assert.equal(after.refused - before.refused, 1)
    assert.deepEqual(strict.proxy.stats('ws-other'), {
      connections: 0,
      refused: 0,
      bytes_in: 0,
      bytes_out: 0,
      active: 0,
    })
  })

  it('carries an upgrade (WebSocket over plain HTTP)', async () => {
    setPolicy(['127.0.0.1'])
    const sock = net.connect(lab.port, '127.0.0.1')
    let text = ''
    sock.on('data', (d: Buffer) => (text += d))
    sock.write(
      `GET http://127.0.0.1:${target.port}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
        'Connection: Upgrade\r\nUpgrade: echo\r\n\r\nabc',
    )
    await waitFor(() => text.endsWith('ABC'))
    sock.write('def')
    await waitFor(() => text.endsWith('DEF'))
    sock.destroy()
    assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/)
  })

  it('answers bad requests clearly', async () => {
    setPolicy()
    const origin = await raw(strict.port, 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n')
    assert.match(origin, /^HTTP\/1\.1 400 .*this is an HTTP proxy/s)
    const https = await raw(strict.port, 'GET https://a.example/ HTTP/1.1\r\nHost: a\r\n\r\n')
    assert.match(https, /^HTTP\/1\.1 400 .*use CONNECT/s)
    const noPort = await raw(strict.port, 'CONNECT a.example HTTP/1.1\r\n\r\n')
    assert.match(noPort, /^HTTP\/1\.1 400 .*host:port/s)
    const big = await raw(
      strict.port,
      `GET http://a.example/ HTTP/1.1\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`,
    )
    assert.match(big, /^HTTP\/1\.1 431 /)
    const unknown = await viaProxy(strict.port, 'http://nowhere.test/')
    assert.equal(unknown.status, 502)
    assert.match(unknown.body, /could not resolve/)
    setPolicy(['public.test'])
    const closed = await viaProxy(lab.port, `http://127.0.0.1:1/`)
    assert.equal(closed.status, 403)
  })

  it('reports a refused origin connection as 502', async () => {
    setPolicy(['127.0.0.1'])
    const port = await freePort()
    const r = await viaProxy(lab.port, `http://127.0.0.1:${port}/`)
    assert.equal(r.status, 502)
    assert.match(r.body, new RegExp(`egress to 127\\.0\\.0\\.1:${port} failed: connection refused`))
  })

  it('closes origin connections that go quiet', async () => {
    setPolicy(['127.0.0.1'])
    const mute = net.createServer(() => {})
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r))
    const mutePort = (mute.address() as net.AddressInfo).port
    const quick = await startProxy({}, { idleTimeoutMs: 300, allowHostLocal: true })
    try {
      const r = await viaProxy(quick.port, `http://127.0.0.1:${mutePort}/`)
      assert.equal(r.status, 504)
      assert.match(r.body, /timed out waiting for data/)
      const c = await connectVia(quick.port, `127.0.0.1:${mutePort}`)
      assert.equal(c.status, 200)
      await new Promise((res) => c.socket.once('close', res))
      await waitFor(() => quick.proxy.stats(WS).active === 0)
    } finally {
      await quick.close()
      mute.close()
    }
  })

  it('closes a client connection that never finishes its request head', async () => {
    const quick = await startProxy({}, { clientIdleTimeoutMs: 200 })
    try {
      const sock = net.connect(quick.port, '127.0.0.1')
      sock.write('GET http://a.example/ HTTP/1.1\r\n')
      const t0 = Date.now()
      await new Promise((r) => sock.once('close', r))
      assert.ok(Date.now() - t0 < 2000)
    } finally {
      await quick.close()
    }
  })

  it('works on any Duplex, not only sockets', async () => {
    setPolicy(['127.0.0.1'])
    const [ours, theirs] = duplexPair()
    lab.proxy.handle(ours, WS)
    let out = ''
    theirs.on('data', (d: Buffer) => (out += d))
    theirs.write(`GET http://127.0.0.1:${target.port}/d HTTP/1.1\r\nHost: x\r\n\r\n`)
    await waitFor(() => out.includes('"method":"GET"'))
    assert.match(out, /^HTTP\/1\.1 200 OK\r\n/)
    // The same connection then turns into a tunnel.
    out = ''
    theirs.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\nearly`)
    await waitFor(() => out.endsWith('EARLY'))
    assert.equal(out, 'HTTP/1.1 200 Connection Established\r\n\r\nEARLY')
    theirs.end()
    await waitFor(() => out.endsWith('bye'))
    await waitFor(() => ours.destroyed)
  })

  it('fails closed when the policy cannot be read', async () => {
    const broken = await startProxy(
      {},
      { policyFor: () => Promise.reject(new Error('db down')), allowHostLocal: true },
    )
    try {
      const r = await viaProxy(broken.port, `http://127.0.0.1:${target.port}/`)
      assert.equal(r.status, 503)
      assert.match(r.body, /egress policy unavailable/)
    } finally {
      await broken.close()
    }
  })
})

async function raw(port: number, text: string): Promise<string> {
  const sock = net.connect(port, '127.0.0.1')
  const got = readAll(sock)
  sock.write(text)
  return got
}

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

/** Two Duplex ends wired to each other, like a tunnel stream that is not a socket. */
function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = []
  const make = (i: number) =>
    new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        ends[1 - i].push(chunk)
        cb()
      },
      final(cb) {
        ends[1 - i].push(null)
        cb()
      },
    })
  ends.push(make(0), make(1))
  return [ends[0], ends[1]]
}
