import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import type { GuestPortTarget, NodeClient } from '../../src/node/types.ts'
import type { Platform } from '../../src/server/platform.ts'
import { createNetnsHost, type NetnsHost } from '../egress/netns.ts'
import { tempDir } from '../helpers/app.ts'
import { startVmPlatform, waitStatus, type VmPlatform } from '../helpers/vm-env.ts'
import { connectAsNobody } from '../vm/vm-helpers.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

const run = promisify(execFile)

/** A service for inside the VM: plain HTTP, SSE one event a second, a WebSocket echo. */
const GUEST_APP = `
const http = require('node:http')
const crypto = require('node:crypto')
const server = http.createServer((req, res) => {
  if (req.url === '/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    let n = 0
    const t = setInterval(() => {
      res.write('data: tick ' + n + ' ' + Date.now() + '\\n\\n')
      if (++n === 3) { clearInterval(t); res.end() }
    }, 1000)
    return
  }
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ hello: 'from the vm', headers: req.headers }))
})
server.on('upgrade', (req, sock) => {
  const accept = crypto.createHash('sha1')
    .update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n' +
    'Sec-WebSocket-Accept: ' + accept + '\\r\\n\\r\\n')
  sock.on('data', (buf) => {
    // One small masked text frame from the client: unmask and echo it back unmasked.
    const len = buf[1] & 0x7f, mask = buf.subarray(2, 6), data = Buffer.from(buf.subarray(6, 6 + len))
    for (let i = 0; i < data.length; i++) data[i] ^= mask[i % 4]
    sock.write(Buffer.concat([Buffer.from([0x81, data.length]), data]))
  })
})
server.listen(8000, '0.0.0.0')
`

/** A request to the router for `<sub>.localhost`, like a browser or curl would send. */
/** Ports listening on TCP in the host's network namespace (IPv4 and IPv6). */
function hostTcpListeners(): number[] {
  const ports = new Set<number>()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f[3] === '0A') ports.add(parseInt(f[1].split(':')[1], 16))
    }
  }
  return [...ports]
}

/** `GET /` over a raw connection (a loopback port, or a node target); the first 4 KiB back. */
function rawGet(to: number | GuestPortTarget): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = typeof to === 'number' ? net.connect(to, '127.0.0.1') : to.connect()
    let got = ''
    const done = () => {
      sock.destroy()
      resolve(got)
    }
    sock.setTimeout(2000, done)
    sock.on('error', reject)
    sock.on('data', (d: Buffer) => {
      got += d.toString()
      if (got.length > 4096 || got.includes('}')) done()
    })
    sock.on('end', done)
    sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  })
}

function viaRouter(
  port: number,
  sub: string,
  urlPath = '/',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        headers: { host: `${sub}.localhost:${port}`, ...headers },
      },
      (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }))
      },
    )
    req.on('error', reject)
  })
}

describe('networking, apps, bridge and SSH with real VMs', { timeout: 20 * 60_000 }, () => {
  let releaseVms = () => {}
  let platform: Platform
  let node: NodeClient
  let routerPort: number
  let sshPort: number
  let owner: string
  let friend: string
  let stranger: string
  let a: { id: string; name: string; ip_address: string }
  let b: { id: string; name: string; ip_address: string }
  let netns: NetnsHost | null = null
  const keysDir = tempDir()

  let vmp: VmPlatform
  const api: VmPlatform['api'] = (...args) => vmp.api(...args)
  const exec = async (id: string, command: string, user: 'developer' | 'root' = 'developer') => {
    const res = await api(owner, 'POST', `/api/v1/workspaces/${id}/exec`, {
      command,
      user,
      timeout_ms: 60_000,
    })
    assert.equal(res.status, 200, res.body)
    return res.json as { exit_code: number; stdout: string; stderr: string }
  }

  before(async () => {
    releaseVms = await holdVmLock()
    vmp = await startVmPlatform()
    ;({ platform, node, routerPort, sshPort } = vmp)
    owner = await vmp.makeUser('owner@example.com')
    friend = await vmp.makeUser('friend@example.com')
    stranger = await vmp.makeUser('stranger@example.com')
    const create = async (name: string) =>
      (await api(owner, 'POST', '/api/v1/workspaces', { name })).json.vm
    a = await create('net-a')
    b = await create('net-b')
    for (const ws of [a, b]) await api(owner, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    a = await waitStatus(platform.app, owner, a.id, ['running'])
    b = await waitStatus(platform.app, owner, b.id, ['running'])
    const put = await platform.app.inject({
      method: 'PUT',
      url: `/api/v1/workspaces/${a.id}/files?path=/home/developer/app.js`,
      headers: { authorization: `Bearer ${owner}`, 'content-type': 'application/octet-stream' },
      payload: Buffer.from(GUEST_APP),
    })
    assert.equal(put.statusCode, 200, put.body)
    const started = await exec(
      a.id,
      'systemd-run --unit=rigapp --uid=developer --working-directory=/home/developer /usr/local/bin/node /home/developer/app.js && sleep 2',
      'root',
    )
    assert.equal(started.exit_code, 0, started.stderr)
  })

  after(async () => {
    await netns?.close()
    for (const ws of [a, b]) if (ws) await api(owner, 'DELETE', `/api/v1/workspaces/${ws.id}`)
    await vmp?.close()
    releaseVms()
  })

  it('routes a public app to anyone, with X-Forwarded headers, and never forwards the key', async () => {
    const made = await api(owner, 'POST', '/api/v1/apps', {
      name: 'pub-web',
      workspace_id: a.id,
      port: 8000,
    })
    assert.equal(made.status, 201, made.body)
    await api(owner, 'PUT', `/api/v1/apps/${made.json.app.id}/visibility`, { visibility: 'public' })
    const res = await viaRouter(routerPort, 'pub-web')
    assert.equal(res.status, 200, res.body)
    const body = JSON.parse(res.body)
    assert.equal(body.hello, 'from the vm')
    assert.equal(body.headers['x-forwarded-host'], `pub-web.localhost:${routerPort}`)
    assert.equal(body.headers['x-forwarded-proto'], 'http')
    const keyed = JSON.parse(
      (await viaRouter(routerPort, 'pub-web', '/', { authorization: `Bearer ${owner}` })).body,
    )
    assert.equal(keyed.headers.authorization, undefined, 'the platform key never reaches the VM')
  })

  it('enforces private and privileged visibility before the VM sees a byte', async () => {
    const made = await api(owner, 'POST', '/api/v1/apps', {
      name: 'priv-web',
      workspace_id: a.id,
      port: 8000,
    })
    const id = made.json.app.id
    const as = (key?: string) =>
      viaRouter(routerPort, 'priv-web', '/', key ? { authorization: `Bearer ${key}` } : {})
    assert.equal((await as()).status, 403)
    assert.equal((await as(owner)).status, 200)
    assert.equal((await as(friend)).status, 403)
    await api(owner, 'PUT', `/api/v1/apps/${id}/visibility`, {
      visibility: 'privileged',
      allowed_emails: ['friend@example.com'],
    })
    assert.equal((await as(friend)).status, 200)
    assert.equal((await as(stranger)).status, 403)
    assert.equal((await as(owner)).status, 200)
    // A browser: a login link sets a cookie for this app's host only.
    const link = await api(owner, 'POST', `/api/v1/apps/${id}/login-link`, {})
    const url = new URL(link.json.url)
    const login = await viaRouter(routerPort, 'priv-web', `${url.pathname}${url.search}`)
    assert.equal(login.status, 302)
    const cookie = String(login.headers['set-cookie']).split(';')[0]
    assert.match(String(login.headers['set-cookie']), /HttpOnly/i)
    assert.equal((await viaRouter(routerPort, 'priv-web', '/', { cookie })).status, 200)
  })

  it('leaves no way to a private app around the router: nothing on the host leads to it', async () => {
    // priv-web (private) serves port 8000 of VM a; the router has reached it above.
    const leaks: string[] = []
    for (const port of hostTcpListeners()) {
      const answer = await rawGet(port).catch(() => '')
      if (answer.includes('from the vm')) leaks.push(`127.0.0.1:${port}`)
    }
    assert.deepEqual(leaks, [], 'a host port that serves the private app without credentials')
    const inbound = path.join(vmp.dataDir, 'vms', a.id, 'inbound.sock')
    assert.equal(
      await connectAsNobody(inbound),
      'EACCES',
      'another local user cannot use the relay',
    )
    const viaRelay = await node.forwardPort(a.id, 8000)
    const direct = await rawGet(viaRelay)
    assert.match(direct, /from the vm/, 'root (the router) reaches it through the relay')
  })

  it('switches routes off and on, and reports health and listening ports', async () => {
    const apps = (await api(owner, 'GET', '/api/v1/apps')).json.apps
    const app = apps.find((x: { subdomain: string }) => x.subdomain === 'pub-web')
    // The route alone (POST …/stop would stop the app's unit too: test/apps/services-vm.test.ts).
    const off = await api(owner, 'PATCH', `/api/v1/apps/${app.id}`, { status: 'inactive' })
    assert.equal(off.status, 200)
    assert.equal((await viaRouter(routerPort, 'pub-web')).status, 404)
    await api(owner, 'PATCH', `/api/v1/apps/${app.id}`, { status: 'active' })
    assert.equal((await viaRouter(routerPort, 'pub-web')).status, 200)
    const health = await api(owner, 'GET', `/api/v1/apps/${app.id}/health`)
    assert.deepEqual(
      { live: health.json.live, port_open: health.json.port_open, status: health.json.status },
      { live: true, port_open: true, status: 'healthy' },
    )
    assert.equal(health.json.service_status, 'active')
    const ports = await api(owner, 'GET', `/api/v1/workspaces/${a.id}/listening-ports`)
    const p8000 = ports.json.ports.find((p: { port: number }) => p.port === 8000)
    assert.equal(p8000.already_exposed, true)
    const detect = await api(owner, 'POST', `/api/v1/workspaces/${a.id}/expose-port`, {
      port: 8000,
      step: 'detect',
    })
    assert.equal(detect.json.is_systemd, true)
    assert.equal(detect.json.systemd_unit, 'rigapp.service')
    // A port nothing listens on: the router answers 502.
    await api(owner, 'POST', '/api/v1/apps', {
      name: 'closed-port',
      workspace_id: a.id,
      port: 8999,
    })
    const closedApp = (await api(owner, 'GET', '/api/v1/apps')).json.apps.find(
      (x: { subdomain: string }) => x.subdomain === 'closed-port',
    )
    await api(owner, 'PUT', `/api/v1/apps/${closedApp.id}/visibility`, { visibility: 'public' })
    assert.equal((await viaRouter(routerPort, 'closed-port')).status, 502)
  })

  it('streams SSE and carries WebSockets through the router', async () => {
    const times: number[] = []
    await new Promise<void>((resolve, reject) => {
      http
        .get(
          {
            host: '127.0.0.1',
            port: routerPort,
            path: '/sse',
            headers: { host: `pub-web.localhost:${routerPort}` },
          },
          (res) => {
            res.on('data', () => times.push(Date.now()))
            res.on('end', resolve)
          },
        )
        .on('error', reject)
    })
    assert.ok(times.length >= 3, `got ${times.length} chunks`)
    assert.ok(times.at(-1)! - times[0] >= 1500, 'events arrived as sent, not buffered to the end')

    const sock = net.connect(routerPort, '127.0.0.1')
    const key = crypto.randomBytes(16).toString('base64')
    sock.write(
      `GET /ws HTTP/1.1\r\nHost: pub-web.localhost:${routerPort}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    )
    let got = Buffer.alloc(0)
    const frame = (text: string) => {
      const mask = crypto.randomBytes(4)
      const data = Buffer.from(text).map((c, i) => c ^ mask[i % 4])
      return Buffer.concat([Buffer.from([0x81, 0x80 | data.length]), mask, data])
    }
    await new Promise<void>((resolve) => {
      sock.on('data', (c) => {
        got = Buffer.concat([got, c])
        if (got.includes('\r\n\r\n') && !got.includes('echo me')) sock.write(frame('echo me'))
        if (got.includes('echo me')) resolve()
      })
    })
    sock.destroy()
    assert.match(got.toString('latin1'), /^HTTP\/1\.1 101/)
  })

  it('knows the VM from its channel: whoami unchanged after editing workspace.json', async () => {
    const before = await exec(a.id, 'rig --json whoami')
    assert.equal(JSON.parse(before.stdout).workspace.id, a.id)
    await exec(
      a.id,
      `echo '{"id":"${b.id}","name":"net-b","owner_id":"someone"}' > /etc/rigbox/workspace.json`,
      'root',
    )
    const afterEdit = await exec(
      a.id,
      `curl -s -H 'x-workspace-id: ${b.id}' http://172.16.0.1:9090/rig/v1/whoami`,
    )
    assert.equal(JSON.parse(afterEdit.stdout).workspace.id, a.id)
    const made = await exec(a.id, 'rig app new from-inside --port 8000 && rig --json app ls')
    assert.equal(made.exit_code, 0, made.stderr)
    assert.match(made.stdout, /from-inside/)
  })

  it('isolates VMs: no VM→VM, no host loopback, no private addresses, directly or via the proxy', async () => {
    const apiPort = (platform.app.server.address() as net.AddressInfo).port
    const direct = await exec(
      a.id,
      [
        `curl -s -m 5 --noproxy '*' http://${b.ip_address}:22 >/dev/null; echo vm2vm=$?`,
        `curl -s -m 5 --noproxy '*' http://172.16.1.254:${apiPort}/healthz >/dev/null; echo gw=$?`,
        `curl -s -m 5 --noproxy '*' http://127.0.0.1:${apiPort}/healthz >/dev/null; echo lo=$?`,
        `curl -s -m 5 --noproxy '*' http://10.213.0.1/ >/dev/null; echo private=$?`,
      ].join('; '),
    )
    for (const key of ['vm2vm', 'gw', 'lo', 'private']) {
      assert.doesNotMatch(direct.stdout, new RegExp(`${key}=0\\b`), direct.stdout)
    }
    const proxied = await exec(
      a.id,
      [
        // Explicitly through the proxy: NO_PROXY would send 127.0.0.1 to the VM's own loopback.
        `curl -s -o /dev/null -w 'lo=%{http_code}\\n' -m 10 -x http://172.16.0.1:3128 --noproxy '' http://127.0.0.1:${apiPort}/healthz`,
        `curl -s -o /dev/null -w 'vm=%{http_code}\\n' -m 10 http://${b.ip_address}:22/`,
        `curl -s -o /dev/null -w 'meta=%{http_code}\\n' -m 10 http://169.254.169.254/`,
      ].join('; '),
    )
    assert.match(proxied.stdout, /lo=403/)
    assert.match(proxied.stdout, /vm=403/)
    assert.match(proxied.stdout, /meta=403/)
  })

  it('reaches an allow-listed test host through the egress proxy, and only then', async () => {
    const host = await createNetnsHost()
    if ('skip' in host) assert.fail(`network namespaces are needed here: ${host.skip}`)
    netns = host
    const url = `http://${host.address}:${host.port}/hello`
    const refused = await exec(a.id, `curl -s -o /dev/null -w '%{http_code}' -m 10 ${url}`)
    assert.equal(refused.stdout, '403')
    const set = await api(owner, 'PUT', `/api/v1/workspaces/${a.id}/egress`, {
      allow: [host.address],
      deny: [],
    })
    assert.equal(set.status, 200, set.body)
    const allowed = await exec(a.id, `curl -s -m 10 ${url}`)
    assert.equal(JSON.parse(allowed.stdout).from, 'netns')
    const metrics = await api(owner, 'GET', `/api/v1/workspaces/${a.id}/metrics`)
    assert.ok(metrics.json.egress.connections >= 2)
    assert.ok(metrics.json.egress.refused >= 1)
    assert.ok(metrics.json.egress.bytes_in > 0)
  })

  it('lets a real OpenSSH client in through the gateway with a registered key only', async () => {
    const key = path.join(keysDir, 'id')
    const other = path.join(keysDir, 'other')
    for (const f of [key, other])
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', f])
    const pub = fs.readFileSync(`${key}.pub`, 'utf8')
    assert.equal(
      (await api(owner, 'POST', '/api/v1/ssh-keys', { name: 'test', public_key: pub })).status,
      201,
    )
    const user = `${a.name}-${a.id.slice(3)}`
    const opts = [
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'BatchMode=yes',
    ]
    const ssh = (identity: string, ...cmd: string[]) =>
      run('ssh', [...opts, '-i', identity, '-p', String(sshPort), `${user}@127.0.0.1`, ...cmd])
    const { stdout } = await ssh(key, 'hostname; whoami')
    assert.equal(stdout, 'net-a\ndeveloper\n')
    const local = path.join(keysDir, 'payload.txt')
    fs.writeFileSync(local, 'copied through the gateway\n')
    await run('scp', [
      ...opts,
      '-i',
      key,
      '-P',
      String(sshPort),
      local,
      `${user}@127.0.0.1:payload.txt`,
    ])
    assert.equal((await ssh(key, 'cat payload.txt')).stdout, 'copied through the gateway\n')
    await assert.rejects(ssh(other, 'true'), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 255)
      assert.match(err.stderr, /Permission denied \(publickey\)/)
      return true
    })
    const listed = await api(owner, 'GET', `/api/v1/workspaces/${a.id}/ssh-keys`)
    assert.ok(listed.json.keys.some((k: { comment: string }) => k.comment === 'rigbox-gateway'))
  })
})
