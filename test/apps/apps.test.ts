import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'

describe('apps API (records, names, visibility, limits)', () => {
  let t: TestApp
  let node: FakeNode
  let key: string
  let otherKey: string
  let ws: { id: string }
  before(async () => {
    node = new FakeNode()
    t = await makeApp({ node })
    key = (await makeUser(t, 'apps@example.com', 'free')).key
    otherKey = (await makeUser(t, 'apps-other@example.com', 'pro')).key
    ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'web' })).json.vm
  })
  after(() => t.close())

  it('creates a private app on a globally unique subdomain', async () => {
    const res = await call(t.app, key, 'POST', '/api/v1/apps', {
      name: 'myapp',
      workspace_id: ws.id,
      port: 8000,
    })
    assert.equal(res.status, 201, res.body)
    assert.deepEqual(referenceErrors('GetAppResponse', res.json), [])
    const app = res.json.app
    assert.match(app.id, /^app-[a-z0-9]{8}$/)
    assert.equal(app.subdomain, 'myapp')
    assert.equal(app.visibility, 'private')
    assert.equal(app.status, 'active')
    assert.equal(app.url, 'http://myapp.localhost:8081')

    const theirs = (await call(t.app, otherKey, 'POST', '/api/v1/workspaces', { name: 'w2' })).json
      .vm
    const clash = await call(t.app, otherKey, 'POST', '/api/v1/apps', {
      name: 'myapp',
      workspace_id: theirs.id,
      port: 80,
    })
    assert.equal(clash.status, 409)
    const list = await call(t.app, key, 'GET', '/api/v1/apps')
    assert.deepEqual(referenceErrors('ListAppsResponse', list.json), [])
    assert.equal(list.json.apps.length, 1)
    const flat = await call(t.app, key, 'GET', '/api/apps')
    assert.ok(Array.isArray(flat.json))
  })

  it('refuses reserved and malformed names, bad ports, and foreign workspaces', async () => {
    for (const [body, status] of [
      [{ name: 'api', workspace_id: ws.id }, 400],
      [{ name: 'www', workspace_id: ws.id }, 400],
      [{ name: 'Bad_Name', workspace_id: ws.id }, 400],
      [{ name: 'ok-name', workspace_id: ws.id, port: 70000 }, 400],
      [{ name: 'ok-name', workspace_id: 'ws-zzzzzzzz' }, 404],
    ] as const) {
      const res = await call(t.app, key, 'POST', '/api/v1/apps', body)
      assert.equal(res.status, status, JSON.stringify(body))
    }
    const theirs = (await call(t.app, otherKey, 'GET', '/api/v1/workspaces')).json.vms[0]
    const foreign = await call(t.app, key, 'POST', '/api/v1/apps', {
      name: 'sneaky',
      workspace_id: theirs.id,
    })
    assert.equal(foreign.status, 404)
  })

  it('sets visibility with allowed emails, renames, toggles the route', async () => {
    const app = (await call(t.app, key, 'GET', '/api/v1/apps')).json.apps[0]
    const vis = await call(t.app, key, 'PUT', `/api/v1/apps/${app.id}/visibility`, {
      visibility: 'privileged',
      allowed_emails: ['Friend@Example.com', 'friend@example.com'],
    })
    assert.equal(vis.status, 200)
    assert.equal(vis.json.app.visibility, 'privileged')
    assert.deepEqual(vis.json.app.allowed_emails, ['friend@example.com'])
    const bad = await call(t.app, key, 'PUT', `/api/v1/apps/${app.id}/visibility`, {
      visibility: 'secret',
    })
    assert.equal(bad.status, 400)

    // Start and stop act on the app's unit in the VM (test/apps/services-*.test.ts); the route
    // alone is switched with PATCH status.
    const stop = await call(t.app, key, 'POST', `/api/v1/apps/${app.id}/stop`)
    assert.equal(stop.status, 409)
    assert.equal(stop.json.error.code, 'INVALID_STATE')
    const off = await call(t.app, key, 'PATCH', `/api/v1/apps/${app.id}`, { status: 'inactive' })
    assert.equal(off.json.app.status, 'inactive')
    const on = await call(t.app, key, 'PATCH', `/api/v1/apps/${app.id}`, { status: 'active' })
    assert.equal(on.json.app.status, 'active')

    const renamed = await call(t.app, key, 'PATCH', `/api/v1/apps/${app.id}`, {
      name: 'renamed',
      port: 9000,
    })
    assert.equal(renamed.status, 200)
    assert.equal(renamed.json.app.subdomain, 'renamed')
    assert.equal(renamed.json.app.port, 9000)
    assert.equal((await call(t.app, otherKey, 'GET', `/api/v1/apps/${app.id}`)).status, 404)
    assert.equal((await call(t.app, otherKey, 'DELETE', `/api/v1/apps/${app.id}`)).status, 404)
  })

  it('limits apps per plan (402)', async () => {
    for (const name of ['second', 'third']) {
      const res = await call(t.app, key, 'POST', '/api/v1/apps', {
        name,
        workspace_id: ws.id,
        port: 1,
      })
      assert.equal(res.status, 201)
    }
    const fourth = await call(t.app, key, 'POST', '/api/v1/apps', {
      name: 'fourth',
      workspace_id: ws.id,
    })
    assert.equal(fourth.status, 402)
    assert.match(fourth.json.error.message, /max_apps/)
  })

  it('needs a running workspace for ports and health', async () => {
    const ports = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}/listening-ports`)
    assert.equal(ports.status, 409)
    const app = (await call(t.app, key, 'GET', '/api/v1/apps')).json.apps[0]
    const health = await call(t.app, key, 'GET', `/api/v1/apps/${app.id}/health`)
    assert.equal(health.status, 200)
    assert.deepEqual(referenceErrors('AppHealthResponse', health.json), [])
    assert.equal(health.json.status, 'down')
  })

  it('reconciles a template workspace idempotently, and deleting the workspace removes its apps', async () => {
    const qd = await call(t.app, otherKey, 'POST', '/api/v1/quick-deploy', {
      template_id: 'web-fullstack',
    })
    const id = qd.json.workspace.id
    // Quick deploy made the template's app; reconciling after its removal makes it again.
    assert.equal(qd.json.expected_apps.length, 1)
    await call(t.app, otherKey, 'DELETE', `/api/v1/apps/${qd.json.expected_apps[0].id}`)
    const first = await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${id}/reconcile-apps`)
    assert.equal(first.status, 200)
    assert.deepEqual(referenceErrors('ReconcileAppsResponse', first.json), [])
    assert.equal(first.json.created.length, 1)
    assert.equal(first.json.created[0].port, 3000)
    const again = await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${id}/reconcile-apps`)
    assert.equal(again.json.created.length, 0)
    assert.equal(again.json.existing.length, 1)
    await call(t.app, otherKey, 'DELETE', `/api/v1/workspaces/${id}`)
    await t.app.rigbox.reconciler.idle()
    const left = (await call(t.app, otherKey, 'GET', '/api/v1/apps')).json.apps
    assert.ok(left.every((a: { workspace_id: string }) => a.workspace_id !== id))
  })
})
