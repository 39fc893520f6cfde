import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'

describe('plan limits', () => {
  let t: TestApp
  let free: string
  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    free = (await makeUser(t, 'free@example.com', 'free')).key
  })
  after(() => t.close())

  const expect402 = (
    res: { status: number; json: { error: { code: string; message: string } } },
    limit: string,
  ) => {
    assert.equal(res.status, 402)
    assert.equal(res.json.error.code, 'LIMIT_EXCEEDED')
    assert.match(res.json.error.message, new RegExp(limit))
  }

  it('refuses sizes beyond the free plan per workspace, naming the limit', async () => {
    const post = (body: object) =>
      call(t.app, free, 'POST', '/api/v1/workspaces', { name: 'big', ...body })
    expect402(await post({ ram_mb: 2048 }), 'max_ram_per_vm_mb')
    expect402(await post({ vcpu_count: 2 }), 'max_vcpu_per_vm')
    expect402(await post({ disk_size_mb: 8192 }), 'max_disk_per_vm_mb')
  })

  it('refuses a third workspace on the free plan, and an oversized resize', async () => {
    const a = await call(t.app, free, 'POST', '/api/v1/workspaces', {
      name: 'one',
      disk_size_mb: 4096,
    })
    assert.equal(a.status, 201)
    const b = await call(t.app, free, 'POST', '/api/v1/workspaces', { name: 'two' })
    assert.equal(b.status, 201)
    expect402(await call(t.app, free, 'POST', '/api/v1/workspaces', { name: 'three' }), 'max_vms')
    expect402(
      await call(t.app, free, 'PUT', `/api/v1/workspaces/${b.json.vm.id}/resources`, {
        ram_mb: 4096,
      }),
      'max_ram_per_vm_mb',
    )
    // Quick deploy counts against the same limits.
    expect402(
      await call(t.app, free, 'POST', '/api/v1/quick-deploy', { template_id: 'base' }),
      'max_vms',
    )
  })

  it('refuses to start beyond the running vCPU budget', async () => {
    const pro = (await makeUser(t, 'pro-limits@example.com', 'pro')).key
    const ids: string[] = []
    for (let i = 0; i < 4; i++) {
      const res = await call(t.app, pro, 'POST', '/api/v1/workspaces', {
        name: `w${i}`,
        vcpu_count: 4,
        ram_mb: 1024,
      })
      ids.push(res.json.vm.id)
    }
    const extra = await call(t.app, pro, 'POST', '/api/v1/workspaces', {
      name: 'w4',
      vcpu_count: 1,
    })
    ids.push(extra.json.vm.id)
    for (const id of ids.slice(0, 4)) {
      assert.equal((await call(t.app, pro, 'POST', `/api/v1/workspaces/${id}/start`)).status, 200)
    }
    expect402(
      await call(t.app, pro, 'POST', `/api/v1/workspaces/${ids[4]}/start`),
      'max_running_vcpus',
    )
    await t.app.rigbox.reconciler.idle()
  })

  it('reports limits and usage', async () => {
    const res = await call(t.app, free, 'GET', '/api/v1/users/me/limits')
    assert.equal(res.status, 200)
    assert.deepEqual(referenceErrors('GetUserLimitsResponse', res.json), [])
    assert.equal(res.json.plan, 'free')
    assert.equal(res.json.limits.max_vms, 2)
    assert.equal(res.json.limits.max_ram_per_vm_mb, 1024)
    assert.equal(res.json.limits.max_vcpu_per_vm, 1)
    assert.equal(res.json.limits.max_disk_per_vm_mb, 4096)
    assert.equal(res.json.usage.workspace_count, 2)
    assert.equal(res.json.usage.total_disk_mb, 4096 + 3072)
  })

  it('tells capacity to authenticated callers only', async () => {
    for (const url of ['/api/v1/capacity', '/api/capacity']) {
      const anon = await call(t.app, null, 'GET', url)
      assert.equal(anon.status, 401, url)
      assert.equal(anon.json.error.code, 'UNAUTHORIZED')
      assert.equal(anon.json.total, undefined)
    }
    const res = await call(t.app, free, 'GET', '/api/v1/capacity')
    assert.equal(res.status, 200)
    const { available, total, used } = res.json
    assert.ok(Number.isInteger(total) && total > 0)
    assert.equal(used, 4, 'the four running pro workspaces')
    assert.ok(available >= 0 && available <= total)
  })
})
