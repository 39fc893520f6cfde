import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { createBridge, type Bridge } from '../../src/bridge/server.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'

/**
 * The bridge over real TCP connections, each handed over with the workspace it "came from"
 * (in production: the VM's tunnel port), as the node does.
 */
describe('VM bridge /rig/v1', () => {
  let t: TestApp
  let bridge: Bridge
  let key: string
  const listeners: net.Server[] = []
  const urls = new Map<string, string>()

  /** A loopback listener whose every connection is attributed to `workspaceId`. */
  async function channelFor(workspaceId: string) {
    const server = net.createServer((sock) => bridge.handle(sock, workspaceId))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    listeners.push(server)
    urls.set(workspaceId, `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`)
  }

  let a: { id: string; name: string }
  let b: { id: string; name: string }
  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    bridge = await createBridge(t.app.rigbox)
    key = (await makeUser(t, 'bridge@example.com', 'pro')).key
    a = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'vm-a' })).json.vm
    b = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'vm-b' })).json.vm
    await channelFor(a.id)
    await channelFor(b.id)
  })
  after(async () => {
    for (const l of listeners) l.close()
    await bridge.close()
    await t.close()
  })

  const get = async (ws: string, path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${urls.get(ws)}${path}`, { headers })
    return { status: res.status, json: (await res.json()) as Record<string, any> } // eslint-disable-line @typescript-eslint/no-explicit-any
  }

  it('knows the caller from its channel, whatever the request claims', async () => {
    const me = await get(a.id, '/rig/v1/whoami', {
      'x-workspace-id': b.id,
      authorization: 'Bearer x',
    })
    assert.equal(me.status, 200)
    assert.deepEqual(me.json.workspace, { id: a.id, name: 'vm-a' })
    assert.equal(me.json.user.email, 'bridge@example.com')
    const other = await get(b.id, '/rig/v1/whoami')
    assert.equal(other.json.workspace.id, b.id)
    const ws = await get(a.id, `/rig/v1/workspace?id=${b.id}`)
    assert.equal(ws.json.vm.id, a.id)
  })

  it('creates, lists and deletes apps of the calling workspace only', async () => {
    const made = await fetch(`${urls.get(a.id)}/rig/v1/apps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'from-inside', port: 8080, workspace_id: b.id }),
    })
    assert.equal(made.status, 201)
    const app = ((await made.json()) as { app: { id: string; workspace_id: string } }).app
    assert.equal(app.workspace_id, a.id)
    assert.equal((await get(a.id, '/rig/v1/apps')).json.apps.length, 1)
    assert.equal((await get(b.id, '/rig/v1/apps')).json.apps.length, 0)
    const fromB = await fetch(`${urls.get(b.id)}/rig/v1/apps/${app.id}`, { method: 'DELETE' })
    assert.equal(fromB.status, 404)
    const fromA = await fetch(`${urls.get(a.id)}/rig/v1/apps/${app.id}`, { method: 'DELETE' })
    assert.equal(fromA.status, 200)
  })

  it('refuses connections that belong to no workspace', async () => {
    await channelFor('ws-gone0000')
    const res = await get('ws-gone0000', '/rig/v1/whoami')
    assert.equal(res.status, 401)
  })
})
