import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'

/** The snapshot API and its state rules against an in-memory node (real disks: test/node). */
describe('snapshots API', () => {
  let t: TestApp
  let node: FakeNode
  let key: string
  let otherKey: string
  let freeKey: string

  const idle = () => t.app.rigbox.reconciler.idle()
  const status = async (id: string) =>
    (await call(t.app, key, 'GET', `/api/v1/workspaces/${id}`)).json.vm.status as string
  /** A workspace that ran once and is stopped, its fake disk holding `disk`. */
  const stoppedWorkspace = async (name: string, disk: string, k = key) => {
    const ws = (await call(t.app, k, 'POST', '/api/v1/workspaces', { name })).json.vm
    await call(t.app, k, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await idle()
    await call(t.app, k, 'POST', `/api/v1/workspaces/${ws.id}/stop`)
    await idle()
    node.disks.set(ws.id, disk)
    return ws.id as string
  }

  before(async () => {
    node = new FakeNode()
    t = await makeApp({ node })
    key = (await makeUser(t, 'snap@example.com', 'pro')).key
    freeKey = (await makeUser(t, 'free@example.com', 'free')).key
    otherKey = (await makeUser(t, 'other@example.com', 'pro')).key
  })
  after(() => t.close())

  it('refuses a running workspace with 409 saying to stop it', async () => {
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'live' })).json.vm
    await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await idle()
    const res = await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/snapshots`, {
      name: 'x',
    })
    assert.equal(res.status, 409)
    assert.equal(res.json.error.code, 'INVALID_STATE')
    assert.match(res.json.error.message, /is running.*stop it first/)
    assert.equal(node.snapshots.size, 0)
    await call(t.app, key, 'DELETE', `/api/v1/workspaces/${ws.id}`)
    await idle()
  })

  it('creates, lists, restores and deletes on the /api/v1 paths, matching the reference', async () => {
    const id = await stoppedWorkspace('alpha', 'v1')
    const created = await call(t.app, key, 'POST', `/api/v1/workspaces/${id}/snapshots`, {
      name: 'before-migration',
    })
    assert.equal(created.status, 201)
    assert.deepEqual(referenceErrors('CreateSnapshotResponse', created.json), [])
    const snap = created.json.snapshot
    assert.match(snap.id, /^snap-[a-z0-9]{8}$/)
    assert.equal(snap.workspace_id, id)
    assert.equal(snap.name, 'before-migration')
    assert.equal(snap.size_bytes, 4096 + 2)
    assert.equal(snap.size_mb, 1)

    // Unnamed: a timestamped name.
    const unnamed = await call(t.app, key, 'POST', `/api/v1/workspaces/${id}/snapshots`, {})
    assert.match(unnamed.json.snapshot.name, /^snapshot-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)

    const list = await call(t.app, key, 'GET', `/api/v1/workspaces/${id}/snapshots`)
    assert.deepEqual(referenceErrors('ListSnapshotsResponse', list.json), [])
    assert.deepEqual(
      list.json.snapshots.map((s: { id: string }) => s.id).sort(),
      [snap.id, unnamed.json.snapshot.id].sort(),
    )
    const mine = await call(t.app, key, 'GET', '/api/v1/snapshots')
    assert.equal(mine.json.snapshots.length, 2)
    assert.deepEqual((await call(t.app, otherKey, 'GET', '/api/v1/snapshots')).json.snapshots, [])

    node.disks.set(id, 'v2')
    const restored = await call(
      t.app,
      key,
      'POST',
      `/api/v1/workspaces/${id}/snapshots/${snap.id}/restore`,
    )
    assert.equal(restored.status, 200)
    assert.deepEqual(referenceErrors('RestoreSnapshotResponse', restored.json), [])
    assert.equal(restored.json.workspace_id, id)
    assert.equal(node.disks.get(id), 'v1')

    node.disks.set(id, 'v3')
    const byId = await call(t.app, key, 'POST', `/api/v1/snapshots/${snap.id}/restore`)
    assert.equal(byId.status, 200)
    assert.equal(node.disks.get(id), 'v1')

    const del = await call(t.app, key, 'DELETE', `/api/v1/workspaces/${id}/snapshots/${snap.id}`)
    assert.equal(del.status, 200)
    assert.equal(node.snapshots.has(`${id}/${snap.id}`), false)
    const del2 = await call(t.app, key, 'DELETE', `/api/v1/snapshots/${unnamed.json.snapshot.id}`)
    assert.equal(del2.status, 200)
    assert.deepEqual((await call(t.app, key, 'GET', '/api/v1/snapshots')).json.snapshots, [])
    const gone = await call(t.app, key, 'DELETE', `/api/v1/snapshots/${snap.id}`)
    assert.equal(gone.status, 404)
    assert.equal(gone.json.error.code, 'SNAPSHOT_NOT_FOUND')
  })

  it('serves the seed’s flat shapes on /api: the object with its id, bare arrays', async () => {
    const id = await stoppedWorkspace('flat', 'data')
    const created = await call(t.app, key, 'POST', `/api/workspaces/${id}/snapshots`, {
      name: 'before-experiment',
    })
    assert.equal(created.status, 201)
    assert.equal(created.json.workspace_id, id)
    assert.match(created.json.id, /^snap-/)
    assert.equal(typeof created.json.size_bytes, 'number')
    const list = await call(t.app, key, 'GET', `/api/workspaces/${id}/snapshots`)
    assert.ok(Array.isArray(list.json))
    assert.deepEqual(Object.keys(list.json[0]).sort(), [
      'created_at',
      'id',
      'name',
      'size_bytes',
      'size_mb',
      'workspace_id',
    ])
    assert.ok(Array.isArray((await call(t.app, key, 'GET', '/api/snapshots')).json))
    const restored = await call(
      t.app,
      key,
      'POST',
      `/api/workspaces/${id}/snapshots/${created.json.id}/restore`,
    )
    assert.equal(restored.status, 200)
  })

  it('keeps snapshots to their workspace and their owner', async () => {
    const a = await stoppedWorkspace('owner-a', 'a')
    const b = await stoppedWorkspace('owner-b', 'b', otherKey)
    const snap = (await call(t.app, key, 'POST', `/api/v1/workspaces/${a}/snapshots`, {})).json
      .snapshot
    // Another user's snapshot does not exist for them, on either path.
    for (const [method, url] of [
      ['POST', `/api/v1/snapshots/${snap.id}/restore`],
      ['DELETE', `/api/v1/snapshots/${snap.id}`],
      ['POST', `/api/v1/snapshots/${snap.id}/fork`],
    ] as const) {
      const res = await call(t.app, otherKey, method, url, method === 'POST' ? {} : undefined)
      assert.equal(res.status, 404, `${method} ${url}`)
    }
    const cross = await call(
      t.app,
      otherKey,
      'POST',
      `/api/v1/workspaces/${b}/snapshots/${snap.id}/restore`,
    )
    assert.equal(cross.status, 404)
    assert.equal(node.disks.get(b), 'b')
    assert.equal(
      (await call(t.app, otherKey, 'GET', `/api/v1/workspaces/${a}/snapshots`)).status,
      404,
    )
  })

  it('limits snapshots per workspace by plan (free: 3) with 402 naming the limit', async () => {
    const id = await stoppedWorkspace('limited', 'x', freeKey)
    for (let i = 0; i < 3; i++) {
      const res = await call(t.app, freeKey, 'POST', `/api/v1/workspaces/${id}/snapshots`, {})
      assert.equal(res.status, 201)
    }
    const over = await call(t.app, freeKey, 'POST', `/api/v1/workspaces/${id}/snapshots`, {})
    assert.equal(over.status, 402)
    assert.equal(over.json.error.code, 'LIMIT_EXCEEDED')
    assert.match(over.json.error.message, /max_snapshots_per_workspace/)
    assert.equal(node.snapshots.size >= 3, true)
  })

  it('rejects bad names with a clear 400', async () => {
    const id = await stoppedWorkspace('names', 'x')
    for (const name of ['', 'a'.repeat(129), 'line\nbreak']) {
      const mine = await call(t.app, key, 'POST', `/api/v1/workspaces/${id}/snapshots`, { name })
      assert.equal(mine.status, 400, JSON.stringify(name))
      assert.equal(mine.json.error.code, 'VALIDATION_ERROR')
    }
  })

  it('holds the workspace while its disk is copied: start, resize and delete wait', async () => {
    const id = await stoppedWorkspace('busy', 'x')
    let release!: () => void
    node.holdCopies = new Promise<void>((r) => (release = r))
    const creating = call(t.app, key, 'POST', `/api/v1/workspaces/${id}/snapshots`, {
      name: 'slow',
    })
    await new Promise((r) => setTimeout(r, 50))
    // Not listed until its data is complete.
    assert.deepEqual(
      (await call(t.app, key, 'GET', `/api/v1/workspaces/${id}/snapshots`)).json.snapshots,
      [],
    )
    for (const [method, url, body] of [
      ['POST', `/api/v1/workspaces/${id}/start`, undefined],
      ['PUT', `/api/v1/workspaces/${id}/resources`, { ram_mb: 512 }],
      ['DELETE', `/api/v1/workspaces/${id}`, undefined],
      ['POST', `/api/v1/workspaces/${id}/snapshots`, {}],
    ] as const) {
      const res = await call(t.app, key, method, url, body)
      assert.equal(res.status, 409, `${method} ${url}`)
      assert.match(res.json.error.message, /busy: a snapshot is being taken/)
    }
    release()
    node.holdCopies = null
    assert.equal((await creating).status, 201)
    assert.equal((await call(t.app, key, 'POST', `/api/v1/workspaces/${id}/start`)).status, 200)
    await idle()
    assert.equal(await status(id), 'running')
    await call(t.app, key, 'DELETE', `/api/v1/workspaces/${id}`)
    await idle()
  })

  it('deletes a workspace’s snapshots with it; a fork keeps its own disk', async () => {
    const id = await stoppedWorkspace('parent', 'parent-data')
    const taken = (await call(t.app, key, 'POST', `/api/v1/workspaces/${id}/snapshots`, {})).json
      .snapshot
    const fork = await call(t.app, key, 'POST', `/api/v1/snapshots/${taken.id}/fork`, {
      name: 'child',
    })
    assert.equal(fork.status, 201, fork.body)
    const child = fork.json.vm
    assert.notEqual(child.id, id)
    assert.equal(child.name, 'child')
    assert.equal(child.status, 'provisioned')
    assert.equal(node.disks.get(child.id), 'parent-data')
    // The fork is an ordinary workspace: it starts, and it is not busy.
    assert.equal(
      (await call(t.app, key, 'POST', `/api/v1/workspaces/${child.id}/start`)).status,
      200,
    )
    await idle()
    assert.equal(await status(child.id), 'running')

    await call(t.app, key, 'DELETE', `/api/v1/workspaces/${id}`)
    await idle()
    const restoreGone = await call(t.app, key, 'POST', `/api/v1/snapshots/${taken.id}/restore`)
    assert.equal(restoreGone.status, 404)
    assert.equal(
      [...node.snapshots.keys()].some((k) => k.startsWith(`${id}/`)),
      false,
    )
    const left = (await call(t.app, key, 'GET', '/api/v1/snapshots')).json.snapshots
    assert.equal(
      left.some((s: { workspace_id: string }) => s.workspace_id === id),
      false,
    )
    assert.equal(node.disks.get(child.id), 'parent-data')
    await call(t.app, key, 'DELETE', `/api/v1/workspaces/${child.id}`)
    await idle()
  })

  it('pauses and resumes: paused frees the VM; stop and delete work on a paused workspace', async () => {
    const ws = (await call(t.app, otherKey, 'POST', '/api/v1/workspaces', { name: 'sleepy' })).json
      .vm
    const refused = await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/pause`)
    assert.equal(refused.status, 409)
    await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await idle()
    const paused = await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/pause`)
    assert.equal(paused.status, 200)
    await idle()
    const get = async () =>
      (await call(t.app, otherKey, 'GET', `/api/v1/workspaces/${ws.id}`)).json.vm
    assert.equal((await get()).status, 'paused')
    assert.equal(node.vms.has(ws.id), false)
    assert.ok(node.paused.has(ws.id))
    const snapRefused = await call(
      t.app,
      otherKey,
      'POST',
      `/api/v1/workspaces/${ws.id}/snapshots`,
      {},
    )
    assert.equal(snapRefused.status, 409)
    assert.match(snapRefused.json.error.message, /paused.*memory state/)

    const resumes = node.resumes
    assert.equal(
      (await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/resume`)).status,
      200,
    )
    await idle()
    assert.equal((await get()).status, 'running')
    assert.equal(node.resumes, resumes + 1)
    const notPaused = await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/resume`)
    assert.equal(notPaused.status, 409)

    await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/pause`)
    await idle()
    assert.equal(
      (await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/stop`)).status,
      200,
    )
    await idle()
    assert.equal((await get()).status, 'stopped')
    assert.equal(node.paused.has(ws.id), false, 'stop discards the memory state')

    await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await idle()
    await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/pause`)
    await idle()
    assert.equal((await call(t.app, otherKey, 'DELETE', `/api/v1/workspaces/${ws.id}`)).status, 200)
    await idle()
    assert.equal((await call(t.app, otherKey, 'GET', `/api/v1/workspaces/${ws.id}`)).status, 404)
  })

  it('calls a failed pause off: the workspace keeps running and says why', async () => {
    const ws = (await call(t.app, otherKey, 'POST', '/api/v1/workspaces', { name: 'stubborn' }))
      .json.vm
    await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await idle()
    node.failPause = true
    await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/pause`)
    await idle()
    node.failPause = false
    const vm = (await call(t.app, otherKey, 'GET', `/api/v1/workspaces/${ws.id}`)).json.vm
    assert.equal(vm.status, 'running')
    assert.equal(vm.failure_code, 'PAUSE_FAILED')
    assert.match(vm.failure_reason, /disk full/)
    assert.ok(node.vms.has(ws.id))
    // Asking again works, and clears the old failure.
    assert.equal(
      (await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/pause`)).status,
      200,
    )
    const twice = await call(t.app, otherKey, 'POST', `/api/v1/workspaces/${ws.id}/pause`)
    await idle()
    assert.equal(twice.status, 409)
    const after = (await call(t.app, otherKey, 'GET', `/api/v1/workspaces/${ws.id}`)).json.vm
    assert.equal(after.status, 'paused')
    assert.equal(after.failure_code, null)
    await call(t.app, otherKey, 'DELETE', `/api/v1/workspaces/${ws.id}`)
    await idle()
  })

  it('recovers from a crash: unfinished snapshots and forks vanish, busy marks clear', async () => {
    const id = await stoppedWorkspace('crashy', 'x')
    const { snapshots, store } = t.app.rigbox
    const row = (await store.get(id))!
    const user = row.user_id
    // What a crash in the middle of a snapshot and of a fork leaves behind.
    await store.transition(row, { disk_op: 'snapshot' })
    await t.app.rigbox.db
      .insertInto('snapshots')
      .values({
        id: 'snap-halfdone',
        user_id: user,
        workspace_id: id,
        node_id: 'fake',
        name: 'half',
        state: 'creating',
        size_bytes: 0,
        created_at: new Date().toISOString(),
      })
      .execute()
    node.snapshots.set(`${id}/snap-halfdone`, 'partial')
    node.snapshots.set(`${id}/snap-orphan`, 'no row')
    const fork = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'halffork' })).json
      .vm
    await idle()
    await store.transition((await store.get(fork.id))!, { disk_op: 'fork' })

    await snapshots.recover()
    assert.equal((await store.get(id))!.disk_op, null)
    assert.equal(await store.get(fork.id), undefined)
    assert.ok(node.destroyed.includes(fork.id))
    assert.equal(node.snapshots.has(`${id}/snap-halfdone`), false)
    assert.equal(node.snapshots.has(`${id}/snap-orphan`), false)
    assert.equal((await call(t.app, key, 'POST', `/api/v1/workspaces/${id}/start`)).status, 200)
    await idle()
  })
})
