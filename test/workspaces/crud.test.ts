import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { referenceErrors } from '../helpers/reference.ts'

describe('workspace records', () => {
  let t: TestApp
  let key: string
  let other: string
  before(async () => {
    t = await makeApp()
    key = (await makeUser(t, 'owner@example.com', 'pro')).key
    other = (await makeUser(t, 'other@example.com', 'pro')).key
  })
  after(() => t.close())

  it('creates a workspace: 201, reference envelope, ws- id, provisioned', async () => {
    const res = await call(t.app, key, 'POST', '/api/v1/workspaces', {
      name: 'my-project',
      image: 'base',
      ram_mb: 512,
      disk_size_mb: 3072,
      vcpu_count: 1,
    })
    assert.equal(res.status, 201)
    assert.deepEqual(referenceErrors('GetWorkspaceResponse', res.json), [])
    const vm = res.json.vm
    assert.match(vm.id, /^ws-[a-z0-9]{8}$/)
    assert.equal(vm.status, 'provisioned')
    assert.equal(vm.name, 'my-project')
    assert.deepEqual([vm.ram_mb, vm.vcpu_count, vm.disk_size_mb], [512, 1, 3072])

    const got = await call(t.app, key, 'GET', `/api/v1/workspaces/${vm.id}`)
    assert.equal(got.status, 200)
    assert.deepEqual(referenceErrors('GetWorkspaceResponse', got.json), [])
    assert.equal(got.json.vm.id, vm.id)

    const list = await call(t.app, key, 'GET', '/api/v1/workspaces')
    assert.deepEqual(referenceErrors('ListWorkspacesResponse', list.json), [])
    assert.deepEqual(
      list.json.vms.map((v: { id: string }) => v.id),
      [vm.id],
    )
  })

  it('serves flat shapes on the unversioned surface', async () => {
    const res = await call(t.app, key, 'POST', '/api/workspaces', { name: 'flat-one' })
    assert.equal(res.status, 201)
    assert.match(res.json.id, /^ws-/)
    assert.equal(res.json.status, 'provisioned')
    assert.deepEqual([res.json.ram_mb, res.json.vcpu_count, res.json.disk_size_mb], [512, 1, 3072])
    const got = await call(t.app, key, 'GET', `/api/workspaces/${res.json.id}`)
    assert.equal(got.json.status, 'provisioned')
    const list = await call(t.app, key, 'GET', '/api/workspaces')
    assert.ok(Array.isArray(list.json))
    assert.ok(list.json.some((w: { id: string }) => w.id === res.json.id))
  })

  it('refuses bad names, unknown images and impossible sizes with the field named', async () => {
    const cases: [unknown, RegExp][] = [
      [{ name: 'Has Spaces' }, /body\.name/],
      [{ name: '-leading' }, /body\.name/],
      [{ name: 'x'.repeat(64) }, /body\.name/],
      [{}, /body\.name/],
      [{ name: 'ok', ram_mb: 'lots' }, /body\.ram_mb/],
      [{ name: 'ok', vcpu_count: -1 }, /body\.vcpu_count/],
      [{ name: 'ok', image: 'windows' }, /image "windows" is unknown/],
      [{ name: 'ok', ram_mb: 64 }, /ram_mb must be at least 256/],
      [{ name: 'ok', env_vars: { 'BAD-NAME': 'x' } }, /body\.env_vars/],
    ]
    for (const [body, message] of cases) {
      const res = await call(t.app, key, 'POST', '/api/v1/workspaces', body)
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.equal(typeof res.json.error.code, 'string')
      assert.match(res.json.error.message, message)
    }
  })

  it('keeps names unique per user (409), not across users', async () => {
    await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'dup' })
    const again = await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'dup' })
    assert.equal(again.status, 409)
    assert.equal(again.json.error.code, 'NAME_TAKEN')
    const theirs = await call(t.app, other, 'POST', '/api/v1/workspaces', { name: 'dup' })
    assert.equal(theirs.status, 201)
  })

  it("answers 404 for another user's workspace on every route", async () => {
    const mine = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'private' })).json.vm
    const routes: [string, string, unknown?][] = [
      ['GET', ''],
      ['DELETE', ''],
      ['POST', '/start'],
      ['POST', '/stop'],
      ['POST', '/cancel'],
      ['POST', '/retry'],
      ['PUT', '/resources', { ram_mb: 1024 }],
      ['POST', '/env', { env_vars: { A: '1' } }],
      ['GET', '/metrics'],
      ['GET', '/logs'],
    ]
    for (const [method, suffix, body] of routes) {
      const res = await call(t.app, other, method, `/api/v1/workspaces/${mine.id}${suffix}`, body)
      assert.equal(res.status, 404, `${method} ${suffix}`)
      assert.equal(res.json.error.code, 'WORKSPACE_NOT_FOUND')
    }
    const still = await call(t.app, key, 'GET', `/api/v1/workspaces/${mine.id}`)
    assert.equal(still.json.vm.status, 'provisioned')
    assert.deepEqual(still.json.vm.env_vars, {})
  })

  it('stores env vars, replacing the set, and keeps them across a restart', async () => {
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'envy' })).json.vm
    const set = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/env`, {
      env_vars: { DATABASE_URL: 'postgres://localhost:5432/mydb', API_SECRET: 'sk-abc123' },
    })
    assert.equal(set.status, 200)
    assert.deepEqual(referenceErrors('MessageResponse', set.json), [])
    const restarted = await makeApp({ dataDir: t.dataDir })
    try {
      const got = await call(restarted.app, key, 'GET', `/api/v1/workspaces/${ws.id}`)
      assert.deepEqual(got.json.vm.env_vars, {
        DATABASE_URL: 'postgres://localhost:5432/mydb',
        API_SECRET: 'sk-abc123',
      })
    } finally {
      await restarted.close()
    }
  })

  it('resizes while provisioned or stopped; the disk only grows', async () => {
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'sizer' })).json.vm
    const res = await call(t.app, key, 'PUT', `/api/v1/workspaces/${ws.id}/resources`, {
      ram_mb: 1024,
      vcpu_count: 2,
      disk_size_mb: 5120,
    })
    assert.equal(res.status, 200)
    assert.deepEqual(referenceErrors('ResizeWorkspaceResponse', res.json), [])
    assert.deepEqual(
      [res.json.vm.ram_mb, res.json.vm.vcpu_count, res.json.vm.disk_size_mb],
      [1024, 2, 5120],
    )
    const shrink = await call(t.app, key, 'PUT', `/api/v1/workspaces/${ws.id}/resources`, {
      disk_size_mb: 4096,
    })
    assert.equal(shrink.status, 400)
    assert.match(shrink.json.error.message, /only grow/)
  })

  it('deletes a workspace; afterwards it is gone', async () => {
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'doomed' })).json.vm
    const del = await call(t.app, key, 'DELETE', `/api/v1/workspaces/${ws.id}`)
    assert.equal(del.status, 200)
    assert.deepEqual(referenceErrors('MessageResponse', del.json), [])
    await t.app.rigbox.reconciler.idle()
    assert.equal((await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}`)).status, 404)
  })

  it('fails start honestly when this server has no node (503, workspace unchanged)', async () => {
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'nonode' })).json.vm
    const res = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    assert.equal(res.status, 503)
    assert.equal(res.json.error.code, 'NODE_UNAVAILABLE')
    const got = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}`)
    assert.equal(got.json.vm.status, 'provisioned')
  })

  it('lists templates and quick-deploys with template floors raising low requests', async () => {
    const list = await call(t.app, key, 'GET', '/api/v1/templates')
    assert.deepEqual(referenceErrors('TemplatesResponse', list.json), [])
    const ids = list.json.templates.map((x: { id: string }) => x.id)
    for (const id of ['base', 'dev', 'web-fullstack', 'ai-agent-starter'])
      assert.ok(ids.includes(id))

    const res = await call(t.app, key, 'POST', '/api/v1/quick-deploy', {
      template_id: 'dev',
      ram_mb: 256,
      disk_size_mb: 2048,
    })
    assert.equal(res.status, 200)
    assert.deepEqual(referenceErrors('QuickDeployResponse', res.json), [])
    assert.equal(res.json.workspace.image, 'dev')
    assert.equal(res.json.workspace.template_id, 'dev')
    assert.equal(res.json.workspace.ram_mb, 1024)
    assert.equal(res.json.workspace.disk_size_mb, 4096)
    assert.match(res.json.workspace.name, /^dev-[a-z0-9]{5}$/)

    const flat = await call(t.app, key, 'POST', '/api/quick-deploy', { template_id: 'base' })
    assert.match(flat.json.id, /^ws-/)
    const missing = await call(t.app, key, 'POST', '/api/v1/quick-deploy', { template_id: 'nope' })
    assert.equal(missing.status, 404)
  })
})
