import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import http2 from 'node:http2'
import os from 'node:os'
import path from 'node:path'
import type { Duplex } from 'node:stream'
import net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { defaultChannelOptions, PortChannel } from '../../agent/channel.ts'
import { startRelay } from '../../agent/devrelay.ts'
import { parseArgs } from '../../agent/options.ts'
import { openDevPort } from '../../agent/port.ts'
import { writeProxyEnv } from '../../agent/tunnel.ts'
import { createBridge, type Bridge } from '../../src/bridge/server.ts'
import { createEgressProxy, type EgressProxy } from '../../src/egress/proxy.ts'
import { TunnelHost } from '../../src/node/tunnel.ts'
import { connectVia, startEcho, startTarget, viaProxy } from '../egress/helpers.ts'
import { killAndWait, waitFor } from '../guest/helpers.ts'
import { makeApp, makeUser, call, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import {
  createVmNetns,
  httpGet,
  inNetns,
  outcome,
  sha,
  spawnTunnelHost,
  startBulk,
  startTunnelAgent,
  type TunnelAgent,
} from './tunnel-helpers.ts'

/**
 * The outbound tunnel without a VM: real guest agents (dev mode, tunnel on loopback ports)
 * behind the dev relay that stands in for QEMU's `tunnel` chardev, the node's TunnelHost, and
 * the real VM bridge and egress proxy as its handlers.
 */
describe('outbound tunnel: agent ↔ TunnelHost', () => {
  let t: TestApp
  let bridge: Bridge
  let proxy: EgressProxy
  let host: TunnelHost
  let agentA: TunnelAgent
  let agentB: TunnelAgent
  let a: { id: string }
  let b: { id: string }
  let echo: Awaited<ReturnType<typeof startEcho>>
  let target: Awaited<ReturnType<typeof startTarget>>
  let bulk: Awaited<ReturnType<typeof startBulk>>
  const handlers = {
    bridge: (c: Duplex, ws: string) => bridge.handle(c, ws),
    egress: (c: Duplex, ws: string) => proxy.handle(c, ws),
  }
  const connected = (h: TunnelHost, ws: string) => () => !!h.status(ws)?.connected
  /** Times the agent's tunnel session ended so far (it logs each). */
  const losses = (ag: TunnelAgent) => ag.logs().match(/tunnel: connection closed/g)?.length ?? 0

  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    bridge = await createBridge(t.app.rigbox)
    const key = (await makeUser(t, 'tunnel@example.com', 'pro')).key
    a = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'vm-a' })).json.vm
    b = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'vm-b' })).json.vm
    // Loopback servers stand in for the internet: A may reach 127.0.0.1, B nothing.
    proxy = createEgressProxy({
      policyFor: async (ws) => ({ allow: ws === a.id ? ['127.0.0.1'] : [], deny: [] }),
      resolve: async () => ['127.0.0.1'],
      allowHostLocal: true,
      connectTimeoutMs: 2000,
    })
    echo = await startEcho()
    target = await startTarget()
    bulk = await startBulk()
    ;[agentA, agentB] = await Promise.all([
      startTunnelAgent({ holdMs: 2000 }),
      startTunnelAgent({ watchdogMs: 2000 }),
    ])
    host = new TunnelHost({ handlers, pingIntervalMs: 500 })
    host.attach(a.id, agentA.tunnelSock)
    host.attach(b.id, agentB.tunnelSock)
    await waitFor(connected(host, a.id), 15_000, 'tunnel A')
    await waitFor(connected(host, b.id), 15_000, 'tunnel B')
  })

  after(async () => {
    host?.close()
    await Promise.all([agentA?.stop(), agentB?.stop()])
    proxy?.close()
    await bridge?.close()
    await Promise.all([echo?.close(), target?.close(), bulk?.close()])
    await t?.close()
  })

  it('bridge: the caller is the workspace the tunnel was attached as, whatever it claims', async () => {
    const me = await httpGet(agentA.bridgePort, '/rig/v1/whoami', {
      'x-workspace-id': b.id,
      'x-forwarded-for': '172.16.0.9',
      authorization: 'Bearer rb_nothing',
    })
    assert.equal(me.status, 200, me.body)
    assert.equal(JSON.parse(me.body).workspace.id, a.id)
    const other = await httpGet(agentB.bridgePort, '/rig/v1/whoami', { 'x-workspace-id': a.id })
    assert.equal(JSON.parse(other.body).workspace.id, b.id)
    const ws = await httpGet(agentA.bridgePort, `/rig/v1/workspace?id=${b.id}`)
    assert.equal(JSON.parse(ws.body).vm.id, a.id)
  })

  it('egress: CONNECT to a loopback echo through the real proxy, with half-close', async () => {
    const c = await connectVia(agentA.egressPort, `127.0.0.1:${echo.port}`)
    assert.equal(c.status, 200)
    const done = outcome(c.socket)
    c.socket.write('hello ')
    // End our side: the echo answers "bye" only after it saw our FIN, through the tunnel.
    c.socket.end('world')
    const r = await done
    assert.equal(r.how, 'end')
    assert.equal(r.data.toString(), 'HELLO WORLDbye')
  })

  it('egress: plain HTTP through the proxy, and refusals arrive whole', async () => {
    const ok = await viaProxy(agentA.egressPort, `http://127.0.0.1:${target.port}/x?y=1`)
    assert.equal(ok.status, 200)
    assert.equal(JSON.parse(ok.body).url, '/x?y=1')
    const refused = await connectVia(agentB.egressPort, `127.0.0.1:${echo.port}`)
    assert.equal(refused.status, 403)
    assert.match(refused.body, /loopback address/)
    refused.socket.destroy()
  })

  it('carries many connections at once', async () => {
    const conns = Array.from({ length: 40 }, async (_, i) => {
      const c = await connectVia(agentA.egressPort, `127.0.0.1:${echo.port}`)
      const done = outcome(c.socket)
      c.socket.end(`conn-${i}-`.repeat(200))
      const r = await done
      assert.equal(r.data.toString(), `CONN-${i}-`.repeat(200) + 'bye')
    })
    const calls = Array.from({ length: 20 }, async () => {
      const r = await httpGet(agentA.bridgePort, '/rig/v1/whoami')
      assert.equal(JSON.parse(r.body).workspace.id, a.id)
    })
    await Promise.all([...conns, ...calls])
  })

  it('moves bulk data both ways intact, with a slow reader', async () => {
    const down = await connectVia(agentA.egressPort, `127.0.0.1:${bulk.port}`)
    const got = outcome(down.socket)
    down.socket.end('down')
    // Not reading for a while: backpressure must hold the data, not drop it.
    down.socket.pause()
    await new Promise((r) => setTimeout(r, 500))
    down.socket.resume()
    const d = await got
    assert.equal(d.how, 'end')
    assert.equal(d.data.length, 4 << 20)
    assert.equal(sha(d.data), bulk.sha)
    const up = await connectVia(agentA.egressPort, `127.0.0.1:${bulk.port}`)
    const answer = outcome(up.socket)
    const data = randomBytes(4 << 20)
    up.socket.write('up\n')
    up.socket.end(data)
    assert.equal((await answer).data.toString(), sha(data))
  })

  it('a session that dies silently resets its connections (guest watchdog), then recovers', async () => {
    host.detach(b.id)
    const child = await spawnTunnelHost(b.id, agentB.tunnelSock)
    try {
      const sock = net.connect(agentB.bridgePort, '127.0.0.1')
      const done = outcome(sock)
      sock.write('GET / HTTP/1.1\r\n') // unfinished: the stream stays open
      await new Promise((r) => setTimeout(r, 300))
      // SIGKILL sends no GOAWAY, and in 'silent' mode the port gives the guest no EOF either:
      // only the watchdog (2 s here) can tell.
      agentB.relay.setMode('silent')
      const before = losses(agentB)
      await killAndWait(child)
      const started = Date.now()
      const r = await done
      const took = Date.now() - started
      assert.equal(r.how, 'ECONNRESET', agentB.logs())
      assert.ok(took >= 1000 && took < 6000, `reset after ${took} ms`)
      await waitFor(() => losses(agentB) > before, 5000, 'agent log')
      assert.match(agentB.logs(), /tunnel: connection closed \(watchdog/)
    } finally {
      await killAndWait(child)
      agentB.relay.setMode('eof')
    }
    host.attach(b.id, agentB.tunnelSock)
    const again = await httpGet(agentB.bridgePort, '/rig/v1/whoami')
    assert.equal(JSON.parse(again.body).workspace.id, b.id)
  })

  it('holds connections while the session is down, then serves them or resets them', async () => {
    let before = losses(agentA)
    host.detach(a.id)
    await waitFor(() => losses(agentA) > before, 5000, 'guest saw the host leave')
    const started = Date.now()
    const pending = httpGet(agentA.bridgePort, '/rig/v1/whoami')
    await new Promise((r) => setTimeout(r, 700))
    host.attach(a.id, agentA.tunnelSock)
    const r = await pending
    assert.equal(JSON.parse(r.body).workspace.id, a.id)
    assert.ok(Date.now() - started >= 700)

    before = losses(agentA)
    host.detach(a.id)
    await waitFor(() => losses(agentA) > before, 5000, 'guest saw the host leave')
    const t0 = Date.now()
    const refused = await outcome(net.connect(agentA.bridgePort, '127.0.0.1'))
    const held = Date.now() - t0
    assert.equal(refused.how, 'ECONNRESET')
    assert.ok(held >= 1800 && held < 4000, `held ${held} ms (hold 2000)`)
    host.attach(a.id, agentA.tunnelSock)
    await waitFor(connected(host, a.id), 10_000, 'tunnel A back')
  })

  it('a killed host is replaced by a new TunnelHost (adoption); its connections are reset', async () => {
    host.detach(a.id)
    const child = await spawnTunnelHost(a.id, agentA.tunnelSock)
    let pending: ReturnType<typeof httpGet> | undefined
    try {
      const r = await httpGet(agentA.bridgePort, '/x').catch((e: Error) => {
        throw new Error(`via the child: ${e.message}\n${agentA.logs()}`)
      })
      assert.equal(r.body, `child ${child.pid} ${a.id}`)
      const open = net.connect(agentA.bridgePort, '127.0.0.1')
      const done = outcome(open)
      open.write('GET / HTTP/1.1\r\n') // unfinished: stays open in the old host
      await new Promise((res) => setTimeout(res, 300))
      await killAndWait(child)
      // Made before the guest may have noticed: held, or sent into the dying session and
      // retried on the next one (the client's bytes only leave once the node answered).
      pending = httpGet(agentA.bridgePort, '/rig/v1/whoami')
      assert.equal((await done).how, 'ECONNRESET')
    } finally {
      await killAndWait(child)
    }
    const fresh = new TunnelHost({ handlers, pingIntervalMs: 500 })
    try {
      fresh.attach(a.id, agentA.tunnelSock)
      const r = await pending!.catch((e: Error) => {
        throw new Error(`via the new host: ${e.message}\n${agentA.logs()}`)
      })
      assert.equal(JSON.parse(r.body).workspace.id, a.id)
    } finally {
      fresh.close()
    }
    host.attach(a.id, agentA.tunnelSock)
    await waitFor(connected(host, a.id), 10_000, 'tunnel A back')
  })

  it('in a namespace shaped like the VM: 172.16.0.1:9090 and :3128 on lo', async (ctx) => {
    const ns = await createVmNetns()
    if ('skip' in ns) return ctx.skip(ns.skip)
    const nsHost = new TunnelHost({ handlers, pingIntervalMs: 500 })
    let agent: TunnelAgent | undefined
    try {
      agent = await startTunnelAgent({ netns: ns.name, listen: '172.16.0.1', ports: [9090, 3128] })
      nsHost.attach(a.id, agent.tunnelSock)
      // The local table wins over eth0's 172.16.0.0/23 route.
      assert.match(
        await inNetns(ns.name, 'ip', 'route', 'get', '172.16.0.1'),
        /^local 172\.16\.0\.1 dev lo/,
      )
      const me = await inNetns(
        ns.name,
        'curl',
        '-sS',
        '--max-time',
        '10',
        'http://172.16.0.1:9090/rig/v1/whoami',
      )
      assert.equal(JSON.parse(me).workspace.id, a.id)
      const via = await inNetns(
        ns.name,
        'curl',
        '-sS',
        '--max-time',
        '10',
        '-x',
        'http://172.16.0.1:3128',
        `http://127.0.0.1:${target.port}/through`,
      )
      assert.equal(JSON.parse(via).url, '/through')
      const profile = fs.readFileSync(
        path.join(agent.root, 'etc/profile.d/rigbox-proxy.sh'),
        'utf8',
      )
      assert.match(profile, /HTTPS_PROXY-http:\/\/172\.16\.0\.1:3128/)
    } finally {
      nsHost.close()
      await agent?.stop()
      await ns.close()
    }
  })
})

describe('TunnelHost on its own (the guest played by PortChannel in this process)', () => {
  it('serves only POST /v1/tunnel/{bridge,egress}, as the attached workspace', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-tunnel-host-'))
    const relay = await startRelay(dir, ['tunnel'])
    const seen: string[] = []
    const host = new TunnelHost({
      handlers: {
        bridge: (c, ws) => (seen.push(`bridge ${ws}`), c.end('B')),
        egress: (c, ws) => (seen.push(`egress ${ws}`), c.end('E')),
      },
      pingIntervalMs: 500,
    })
    let session: http2.ClientHttp2Session | null = null
    const guest = new PortChannel(
      'tunnel',
      () => openDevPort(dir, 'tunnel'),
      (sock) => (session = http2.connect('http://node', { createConnection: () => sock })),
      { ...defaultChannelOptions, log: () => {} },
    )
    try {
      host.attach('ws-one', path.join(dir, 'tunnel.sock'))
      guest.start()
      await waitFor(() => !!host.status('ws-one')?.connected && !!session, 10_000, 'session')
      const ask = (method: string, p: string) =>
        new Promise<{ status: number; body: string }>((resolve) => {
          const st = session!.request({ ':method': method, ':path': p, 'x-workspace-id': 'ws-two' })
          let status = 0
          let body = ''
          st.on('response', (h) => (status = Number(h[':status'])))
          st.on('data', (c: Buffer) => (body += c))
          st.on('error', () => {})
          st.on('close', () => resolve({ status, body }))
          st.end('hello')
        })
      assert.deepEqual(await ask('POST', '/v1/tunnel/bridge'), { status: 200, body: 'B' })
      assert.deepEqual(await ask('POST', '/v1/tunnel/egress'), { status: 200, body: 'E' })
      assert.equal((await ask('GET', '/v1/tunnel/bridge')).status, 404)
      assert.equal((await ask('POST', '/v1/tunnel/ssh')).status, 404)
      assert.equal((await ask('POST', '/v1/tunnel/bridge?ws=ws-two')).status, 404)
      assert.deepEqual(seen, ['bridge ws-one', 'egress ws-one'])
    } finally {
      guest.stop()
      host.close()
      await relay.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('proxy environment of the VM', () => {
  it('is written to files of its own, keeps /etc/environment, and yields to the user env', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-proxy-env-'))
    try {
      fs.mkdirSync(path.join(root, 'etc'))
      fs.writeFileSync(path.join(root, 'etc/environment'), 'LANG=C.UTF-8')
      const o = parseArgs(['--port-dir', root, '--root', root, '--tunnel-listen', '172.16.0.1'])
      assert.deepEqual(o.tunnel, {
        address: '172.16.0.1',
        bridgePort: 9090,
        egressPort: 3128,
        holdMs: 5000,
      })
      await writeProxyEnv(o, o.tunnel!)
      await writeProxyEnv(o, o.tunnel!) // every agent start: no duplicates
      const env = fs.readFileSync(path.join(root, 'etc/environment'), 'utf8')
      assert.ok(env.startsWith('LANG=C.UTF-8\n'), env)
      assert.equal(env.match(/^HTTP_PROXY=http:\/\/172\.16\.0\.1:3128$/gm)?.length, 1, env)
      assert.match(env, /^no_proxy=localhost,127\.0\.0\.1,172\.16\.0\.1$/m)
      assert.match(env, /^RIGBOX_BRIDGE_URL=http:\/\/172\.16\.0\.1:9090$/m)
      const dropIn = fs.readFileSync(
        path.join(root, 'etc/systemd/system.conf.d/40-rigbox-proxy.conf'),
        'utf8',
      )
      assert.match(dropIn, /DefaultEnvironment=.*"HTTPS_PROXY=http:\/\/172\.16\.0\.1:3128"/)
      assert.ok(!fs.existsSync(path.join(root, 'etc/rigbox/env')), 'the user env file is not ours')
      const profile = path.join(root, 'etc/profile.d/rigbox-proxy.sh')
      const show = 'echo "$HTTP_PROXY|$NO_PROXY|$RIGBOX_BRIDGE_URL"'
      const sh = (env: Record<string, string>) =>
        execFileSync('bash', ['-c', `. ${profile}; ${show}`], { env, encoding: 'utf8' }).trim()
      assert.equal(
        sh({}),
        'http://172.16.0.1:3128|localhost,127.0.0.1,172.16.0.1|http://172.16.0.1:9090',
      )
      assert.match(sh({ HTTP_PROXY: 'http://mine:1' }), /^http:\/\/mine:1\|/)
      // Dev mode without --root never writes the host's /etc.
      const bare = parseArgs(['--port-dir', root, '--tunnel-listen', '127.0.0.1'])
      assert.equal(bare.root, '')
      const hostEnv = () => fs.readFileSync('/etc/environment', 'utf8')
      const was = fs.existsSync('/etc/environment') ? hostEnv() : null
      await writeProxyEnv(bare, bare.tunnel!)
      assert.equal(fs.existsSync('/etc/environment') ? hostEnv() : null, was)
      assert.ok(!fs.existsSync('/etc/profile.d/rigbox-proxy.sh'))
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })
})
