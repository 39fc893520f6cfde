import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { StaleVersionError } from '../../src/workspaces/store.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { MANAGED_AI_ENV } from '../../src/ai/vm-env.ts'

/** Lifecycle intent and reconciler logic against an in-memory node (real VMs: test/node). */
describe('workspace lifecycle (reconciler, fenced transitions)', () => {
  let t: TestApp
  let node: FakeNode
  let key: string
  const status = async (id: string) =>
    (await call(t.app, key, 'GET', `/api/v1/workspaces/${id}`)).json.vm.status as string
  const create = async (name: string) =>
    (await call(t.app, key, 'POST', '/api/v1/workspaces', { name })).json.vm as { id: string }

  before(async () => {
    node = new FakeNode()
    t = await makeApp({ node })
    key = (await makeUser(t, 'life@example.com', 'pro')).key
  })
  after(() => t.close())

  it('provisions the disk at create, then start → starting → running, stop → stopped', async () => {
    const ws = await create('cycle')
    await t.app.rigbox.reconciler.idle()
    assert.ok(node.provisioned.has(ws.id))
    node.bootDelayMs = 50
    const started = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    assert.equal(started.status, 200)
    assert.equal(started.json.vm.status, 'starting')
    const twice = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    assert.equal(twice.status, 400)
    assert.equal(twice.json.error.code, 'ALREADY_RUNNING')
    await t.app.rigbox.reconciler.idle()
    assert.equal(await status(ws.id), 'running')
    const got = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}`)
    assert.equal(got.json.vm.ip_address, '172.16.0.2')
    assert.equal(got.json.vm.creation_attempts, 1)

    const resize = await call(t.app, key, 'PUT', `/api/v1/workspaces/${ws.id}/resources`, {
      ram_mb: 1024,
    })
    assert.equal(resize.status, 409)

    const stopped = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/stop`)
    assert.equal(stopped.json.vm.status, 'stopping')
    await t.app.rigbox.reconciler.idle()
    assert.equal(await status(ws.id), 'stopped')
    assert.equal(node.vms.has(ws.id), false)
    const again = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/stop`)
    assert.equal(again.status, 400)
    assert.equal(again.json.error.code, 'NOT_RUNNING')
  })

  it('cancels a start in progress; cancel of an idle workspace is 409', async () => {
    const ws = await create('cancelme')
    node.bootDelayMs = 10_000
    await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    const res = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/cancel`)
    assert.equal(res.status, 200)
    await t.app.rigbox.reconciler.idle()
    assert.equal(await status(ws.id), 'stopped')
    assert.equal(node.vms.has(ws.id), false)
    const idle = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/cancel`)
    assert.equal(idle.status, 409)
    node.bootDelayMs = 0
  })

  it('records a failed boot with code and reason; retry only from failed', async () => {
    const ws = await create('flaky')
    node.failBoot = { code: 'BOOT_TIMEOUT', message: 'agent never answered' }
    await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await t.app.rigbox.reconciler.idle()
    const failed = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}`)
    assert.equal(failed.json.vm.status, 'failed')
    assert.equal(failed.json.vm.failure_code, 'BOOT_TIMEOUT')
    assert.equal(failed.json.failure.retryable, true)
    assert.match(failed.json.failure.message, /agent never answered/)

    node.failBoot = null
    const retry = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/retry`)
    assert.equal(retry.status, 200)
    assert.equal(retry.json.vm.status, 'provisioning')
    await t.app.rigbox.reconciler.idle()
    assert.equal(await status(ws.id), 'running')
    const notFailed = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/retry`)
    assert.equal(notFailed.status, 409)
  })

  it('turns a VM that dies on its own into failed, or stopped if the guest powered off', async () => {
    const a = await create('crashy')
    const b = await create('poweroff')
    for (const ws of [a, b]) await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await t.app.rigbox.reconciler.idle()
    node.exit(a.id, { reason: 'oom', detail: 'killed by the memory cgroup' })
    node.exit(b.id, { reason: 'poweroff', detail: 'guest shut down' })
    await new Promise((r) => setTimeout(r, 50))
    const crashed = await call(t.app, key, 'GET', `/api/v1/workspaces/${a.id}`)
    assert.equal(crashed.json.vm.status, 'failed')
    assert.equal(crashed.json.vm.failure_code, 'OOM_KILLED')
    assert.equal(await status(b.id), 'stopped')
    for (const ws of [a, b]) await call(t.app, key, 'DELETE', `/api/v1/workspaces/${ws.id}`)
    await t.app.rigbox.reconciler.idle()
  })

  it('pushes env changes into a running workspace', async () => {
    const ws = (await call(t.app, key, 'GET', '/api/v1/workspaces')).json.vms.find(
      (v: { status: string }) => v.status === 'running',
    )
    const res = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/env`, {
      env_vars: { FOO: 'bar' },
    })
    assert.match(res.json.message, /applied to the running workspace/)
    // The user's env, on top of the AI env every managed workspace gets (src/ai/vm-env.ts).
    assert.deepEqual(node.configured.at(-1)?.env, {
      ...MANAGED_AI_ENV,
      RIGBOX_AI_MODE: 'managed',
      FOO: 'bar',
    })
  })

  it('deletes a running workspace: the VM is destroyed and the record removed', async () => {
    const ws = (await call(t.app, key, 'GET', '/api/v1/workspaces')).json.vms.find(
      (v: { status: string }) => v.status === 'running',
    )
    await call(t.app, key, 'DELETE', `/api/v1/workspaces/${ws.id}`)
    await t.app.rigbox.reconciler.idle()
    assert.ok(node.destroyed.includes(ws.id))
    assert.equal(node.vms.has(ws.id), false)
    assert.equal((await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}`)).status, 404)
  })

  it('rejects a stale concurrent transition and leaves the newer state intact', async () => {
    const ws = await create('fenced')
    const store = t.app.rigbox.store
    const seenByA = (await store.get(ws.id))!
    const seenByB = (await store.get(ws.id))!
    await store.transition(seenByA, { ram_mb: 1024 })
    await assert.rejects(store.transition(seenByB, { ram_mb: 2048 }), StaleVersionError)
    const now = (await store.get(ws.id))!
    assert.equal(now.ram_mb, 1024)
    assert.equal(now.version, seenByA.version + 1)
    await assert.rejects(store.remove(seenByB), StaleVersionError)
    assert.ok(await store.get(ws.id))
  })

  it('answers two simultaneous starts with one winner', async () => {
    const ws = await create('racer')
    node.bootDelayMs = 20
    const [r1, r2] = await Promise.all([
      call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`),
      call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`),
    ])
    // The loser either saw the winner's write (400 already starting) or lost the fence (409).
    const statuses = [r1.status, r2.status].sort()
    assert.equal(statuses[0], 200)
    assert.ok([400, 409].includes(statuses[1]), `second start answered ${statuses[1]}`)
    await t.app.rigbox.reconciler.idle()
    assert.equal(await status(ws.id), 'running')
    assert.equal(
      (await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}`)).json.vm.creation_attempts,
      1,
    )
  })

  it('after a restart adopts running VMs and marks lost ones failed', async () => {
    const running = (await call(t.app, key, 'GET', '/api/v1/workspaces')).json.vms.find(
      (v: { status: string }) => v.status === 'running',
    )
    const lost = await create('lost')
    await call(t.app, key, 'POST', `/api/v1/workspaces/${lost.id}/start`)
    await t.app.rigbox.reconciler.idle()
    await t.close()
    node.vms.delete(lost.id) // died while the control plane was down
    node.vms.set('ws-orphan1', 'running') // a VM no record wants
    t = await makeApp({ node, dataDir: t.dataDir })
    await t.app.rigbox.reconciler.recover()
    await t.app.rigbox.reconciler.idle()
    assert.equal(await status(running.id), 'running')
    const l = await call(t.app, key, 'GET', `/api/v1/workspaces/${lost.id}`)
    assert.equal(l.json.vm.status, 'failed')
    assert.equal(l.json.vm.failure_code, 'VM_LOST')
    assert.equal(node.vms.has('ws-orphan1'), false)
  })
})
