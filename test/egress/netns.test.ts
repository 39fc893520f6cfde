import assert from 'node:assert/strict'
import { after, before, describe, it, type TestContext } from 'node:test'
import { connectVia, policies, setPolicy, startProxy, viaProxy, waitFor, WS } from './helpers.ts'
import { createNetnsHost, type NetnsHost } from './netns.ts'

/**
 * A private-network host the proxy reaches over a veth into a namespace this test creates: the
 * real case of a user opening a database in their own network. The proxy runs with production
 * settings (no `allowHostLocal`).
 */
describe('egress proxy to a host in a test network namespace', () => {
  let host: NetnsHost | undefined
  let skip: string | undefined
  let proxy: Awaited<ReturnType<typeof startProxy>> | undefined

  before(async () => {
    const made = await createNetnsHost()
    if ('skip' in made) {
      skip = made.skip
      return
    }
    host = made
    proxy = await startProxy(
      { 'ns.test': [host.address], 'silent.test': [host.silentAddress] },
      { connectTimeoutMs: 500 },
    )
  })
  after(async () => {
    await proxy?.close()
    await host?.close()
    policies.clear()
  })

  const ready = (t: TestContext): [NetnsHost, number] | null => {
    if (skip || !host || !proxy) {
      t.skip(skip ?? 'no namespace')
      return null
    }
    return [host, proxy.port]
  }

  it('refuses the private host by default, naming the fix', async (t) => {
    const r = ready(t)
    if (!r) return
    const [h, port] = r
    setPolicy()
    const byName = await viaProxy(port, `http://ns.test:${h.port}/hello`)
    assert.equal(byName.status, 403)
    assert.equal(
      byName.body,
      `egress to ns.test (${h.address}) refused: private address; add ${h.address} or ns.test ` +
        "to the workspace's egress allow list\n",
    )
    const tunnel = await connectVia(port, `${h.address}:${h.port}`)
    assert.equal(tunnel.status, 403)
    assert.match(tunnel.body, /private address/)
  })

  it('reaches it once its address, network or name is allowed', async (t) => {
    const r = ready(t)
    if (!r) return
    const [h, port] = r
    const net29 = h.address.replace(/\.2$/, '.0/29')
    for (const allow of [h.address, net29, 'ns.test', `ns.test:${h.port}`]) {
      setPolicy([allow])
      const res = await viaProxy(port, `http://ns.test:${h.port}/hello?x=1`)
      assert.equal(res.status, 200, `${allow}: ${res.body}`)
      const seen = JSON.parse(res.body) as { from: string; url: string; headers: { via: string } }
      assert.deepEqual(
        [seen.from, seen.url, seen.headers.via],
        ['netns', '/hello?x=1', '1.1 rigbox'],
      )
    }
    await waitFor(() => proxy!.proxy.stats(WS).active === 0)
    const stats = proxy!.proxy.stats(WS)
    assert.ok(stats.bytes_out > 4 * 50 && stats.bytes_in > 4 * 200, JSON.stringify(stats))
    setPolicy([`ns.test:${h.port + 1}`])
    const otherPort = await viaProxy(port, `http://ns.test:${h.port}/`)
    assert.equal(otherPort.status, 403)
    assert.match(otherPort.body, /not in the workspace's egress allow list/)
  })

  it('tunnels CONNECT to it and counts the bytes', async (t) => {
    const r = ready(t)
    if (!r) return
    const [h, port] = r
    setPolicy([h.address])
    const before = proxy!.proxy.stats(WS)
    const { status, socket } = await connectVia(port, `${h.address}:${h.port}`)
    assert.equal(status, 200)
    const request = `GET /tunnelled HTTP/1.1\r\nHost: ${h.address}\r\nConnection: close\r\n\r\n`
    let answer = ''
    socket.on('data', (d: Buffer) => (answer += d))
    socket.write(request)
    await new Promise((res) => socket.once('end', res))
    socket.destroy()
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*"url":"\/tunnelled"/)
    await waitFor(() => proxy!.proxy.stats(WS).active === 0)
    const after = proxy!.proxy.stats(WS)
    assert.equal(after.bytes_out - before.bytes_out, Buffer.byteLength(request))
    assert.equal(after.bytes_in - before.bytes_in, Buffer.byteLength(answer))
    assert.equal(after.connections - before.connections, 1)
  })

  it('lets deny beat allow', async (t) => {
    const r = ready(t)
    if (!r) return
    const [h, port] = r
    setPolicy(['ns.test'], [h.address])
    const res = await viaProxy(port, `http://ns.test:${h.port}/`)
    assert.equal(res.status, 403)
    assert.match(res.body, new RegExp(`deny list \\("${h.address.replace(/\./g, '\\.')}"\\)`))
  })

  it("never opens the node's own address on that network", async (t) => {
    const r = ready(t)
    if (!r) return
    const [h, port] = r
    setPolicy([h.address.replace(/\.2$/, '.0/29')])
    const res = await connectVia(port, `${h.hostAddress}:${h.port}`)
    assert.equal(res.status, 403)
    assert.match(res.body, /one of this node's own addresses; never reachable/)
  })

  it('gives up on an address that does not answer after the connect timeout', async (t) => {
    const r = ready(t)
    if (!r) return
    const [h, port] = r
    setPolicy([h.silentAddress])
    const t0 = Date.now()
    const res = await viaProxy(port, `http://silent.test:${h.port}/`)
    assert.equal(res.status, 504)
    assert.match(res.body, /connect timed out/)
    assert.ok(Date.now() - t0 < 2500)
  })
})
