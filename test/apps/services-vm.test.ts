import assert from 'node:assert/strict'
import http from 'node:http'
import type net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { deliverParams } from '../../src/apps/params.ts'
import { GuestUnits } from '../../src/automation/guest.ts'
import { startVmPlatform, waitStatus, type VmPlatform } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'
import { call } from '../helpers/app.ts'
import { referenceErrors } from '../helpers/reference.ts'

/** A tiny service answering with its GREETING env var and pid; logs a line per request. */
const GREETER = `
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ('%s pid=%d' % (os.environ.get('GREETING', 'none'), os.getpid())).encode()
        self.send_response(200)
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print('greeter served %s' % self.path, flush=True)
    def log_message(self, *a):
        pass
print('greeter starting pid=%d' % os.getpid(), flush=True)
HTTPServer(('0.0.0.0', 8080), H).serve_forever()
`
const UNIT = `[Unit]
Description=greeter test service
[Service]
ExecStart=/usr/bin/python3 /opt/greeter.py
Restart=no
[Install]
WantedBy=multi-user.target
`

function viaRouter(
  port: number,
  sub: string,
  path = '/',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(
        { host: '127.0.0.1', port, path, headers: { host: `${sub}.localhost:${port}` } },
        (res) => {
          let body = ''
          res.on('data', (c) => (body += c))
          res.on('end', () => resolve({ status: res.statusCode!, body }))
        },
      )
      .on('error', reject)
  })
}

describe('apps backed by a systemd unit, in a real VM', { timeout: 6 * 60_000 }, () => {
  let release = () => {}
  let vmp: VmPlatform
  let key: string
  let ws: { id: string }
  let app: { id: string; subdomain: string }
  const api = (method: 'GET' | 'POST' | 'PATCH' | 'PUT', url: string, body?: unknown) =>
    call(vmp.platform.app, key, method, `/api/v1${url}`, body)
  const root = async (command: string) => {
    const r = await api('POST', `/workspaces/${ws.id}/exec`, { command, user: 'root' })
    assert.equal(r.status, 200, r.body)
    return r.json as { exit_code: number; stdout: string; stderr: string }
  }
  const mainPid = async () =>
    (await root('systemctl show -p MainPID --value greeter')).stdout.trim()
  const listening = async () => (await vmp.node.listeningPorts(ws.id)).some((p) => p.port === 8080)

  before(async () => {
    release = await holdVmLock()
    vmp = await startVmPlatform()
    key = await vmp.makeUser('services@example.com')
    ws = (await api('POST', '/workspaces', { name: 'svc-vm' })).json.vm
    await api('POST', `/workspaces/${ws.id}/start`)
    await waitStatus(vmp.platform.app, key, ws.id, ['running'])
    await vmp.node.writeFile(ws.id, '/opt/greeter.py', Buffer.from(GREETER))
    await vmp.node.writeFile(ws.id, '/etc/systemd/system/greeter.service', Buffer.from(UNIT))
    const started = await root(
      'systemctl daemon-reload && systemctl start greeter && ' +
        'for i in $(seq 50); do ss -ltn | grep -q ":8080 " && break; sleep 0.2; done',
    )
    assert.equal(started.exit_code, 0, started.stderr)
    const made = await api('POST', '/apps', { name: 'greeter', workspace_id: ws.id, port: 8080 })
    assert.equal(made.status, 201, made.body)
    app = made.json.app
    await api('PUT', `/apps/${app.id}/visibility`, { visibility: 'public' })
  })

  after(async () => {
    if (ws) await api('POST', `/workspaces/${ws.id}/stop`).catch(() => {})
    await vmp?.close()
    release()
  })

  it('stop ends the process and the route; start serves again; restart makes a new process', async () => {
    assert.match((await viaRouter(vmp.routerPort, app.subdomain)).body, /^none pid=/)
    const stop = await api('POST', `/apps/${app.id}/stop`)
    assert.equal(stop.status, 200, stop.body)
    assert.deepEqual(referenceErrors('ServiceActionResponse', stop.json), [])
    assert.equal(stop.json.service_name, 'greeter.service')
    assert.equal(await listening(), false, 'the port is closed: the process is gone')
    assert.equal((await root('systemctl is-active greeter')).stdout.trim(), 'inactive')
    assert.equal((await viaRouter(vmp.routerPort, app.subdomain)).status, 404)

    const start = await api('POST', `/apps/${app.id}/start`)
    assert.equal(start.status, 200, start.body)
    assert.deepEqual(referenceErrors('ServiceActionResponse', start.json), [])
    assert.equal((await viaRouter(vmp.routerPort, app.subdomain)).status, 200)

    const before = await mainPid()
    const restart = await api('POST', `/apps/${app.id}/restart`)
    assert.equal(restart.status, 200, restart.body)
    const afterPid = await mainPid()
    assert.notEqual(afterPid, before)
    assert.notEqual(afterPid, '0')
    const served = await viaRouter(vmp.routerPort, app.subdomain)
    assert.equal(served.body, `none pid=${afterPid}`)
  })

  it("params change the running app's env (sealed, delivered as a root-only env file)", async () => {
    const row = await vmp.platform.app.rigbox.db
      .selectFrom('apps')
      .selectAll()
      .where('id', '=', app.id)
      .executeTakeFirstOrThrow()
    await vmp.platform.app.rigbox.appServices.params.setSpecs(row, [
      { key: 'greeting', label: 'Greeting', param_type: 'string' },
      { key: 'api_token', label: 'Token', param_type: 'secret' },
    ])
    const res = await api('PATCH', `/apps/${app.id}/params`, {
      values: { greeting: 'hello "from" $params', api_token: 'sekrit-1' },
    })
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(referenceErrors('GetAppResponse', res.json), [])
    const served = await viaRouter(vmp.routerPort, app.subdomain)
    assert.match(served.body, /^hello "from" \$params pid=/)
    const file = await root(`stat -c '%a %U' /etc/rigbox/apps/${app.id}.env`)
    assert.equal(file.stdout.trim(), '600 root')
    const env = await root(
      `tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value greeter)/environ`,
    )
    assert.match(env.stdout, /^API_TOKEN=sekrit-1$/m)
    const params = await api('GET', `/apps/${app.id}/params`)
    assert.deepEqual(params.json.values, { greeting: 'hello "from" $params' })

    // What the boot runner calls: with nothing changed it writes nothing and restarts nothing.
    const pid = await mainPid()
    const fresh = await vmp.platform.app.rigbox.db
      .selectFrom('apps')
      .selectAll()
      .where('id', '=', app.id)
      .executeTakeFirstOrThrow()
    const units = new GuestUnits(vmp.node, ws.id)
    const again = await deliverParams(units, fresh, vmp.platform.app.rigbox.appServices.secrets)
    assert.deepEqual(again, { changed: false, restarted: false })
    assert.equal(await mainPid(), pid)
  })

  it("shows the unit's journal lines, and streams new ones", async () => {
    const logs = await api('GET', `/apps/${app.id}/logs?lines=50`)
    assert.equal(logs.status, 200, logs.body)
    assert.deepEqual(referenceErrors('GetAppLogsResponse', logs.json), [])
    assert.equal(logs.json.source.source_ref, 'greeter.service')
    const messages = logs.json.lines.map((l: { message: string }) => l.message)
    assert.ok(
      messages.some((m: string) => m.startsWith('greeter starting')),
      messages.join('\n'),
    )

    const port = (vmp.platform.app.server.address() as net.AddressInfo).port
    const abort = new AbortController()
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/apps/${app.id}/logs/stream`, {
      headers: { authorization: `Bearer ${key}` },
      signal: abort.signal,
    })
    assert.equal(res.status, 200)
    const reader = res.body!.getReader()
    let text = ''
    const seen = (async () => {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return false
        text += Buffer.from(value).toString()
        if (text.includes('greeter served /streamed')) return true
      }
    })()
    // The follow starts at the end of the journal: new lines arrive once it is attached.
    for (let i = 0; i < 20 && !text.includes('served /streamed'); i++) {
      await viaRouter(vmp.routerPort, app.subdomain, '/streamed')
      await Promise.race([seen, new Promise((r) => setTimeout(r, 500))])
    }
    abort.abort()
    assert.equal(await seen.catch(() => text.includes('greeter served /streamed')), true, text)
  })
})
