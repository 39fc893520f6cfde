import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { InjectOptions } from 'fastify'
import { sql } from 'kysely'
import { bearer, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import {
  loadOperations,
  minimalInstance,
  referenceStatuses,
  resourceKey,
  urlOf,
  type Operation,
} from '../helpers/openapi.ts'
import { bodyReference, createOwnedResources, type ResourceIds } from '../helpers/resources.ts'

/**
 * Generated from our own OpenAPI: every operation, on both surfaces, called by an anonymous
 * caller and by a second user on the owner's resources. No route list is kept here: a new
 * operation is covered the moment it is in the spec, and one whose path parameter cannot be
 * filled with a real id of the owner fails the suite.
 */
describe('authorization matrix', () => {
  let t: TestApp
  let node: FakeNode
  let ops: Operation[]
  let ids: ResourceIds
  let owner: { key: string; user: { id: string } }
  let foreign: { key: string; user: { id: string } }
  let requests = 0

  before(async () => {
    node = new FakeNode()
    const unlimited = '1000000'
    t = await makeApp({
      node,
      env: {
        RIGBOX_RATE_LIMIT_AUTH: unlimited,
        RIGBOX_RATE_LIMIT_WORKSPACES: unlimited,
        RIGBOX_RATE_LIMIT_APPS: unlimited,
      },
    })
    owner = await makeUser(t, 'owner@example.com', 'pro')
    foreign = await makeUser(t, 'foreign@example.com', 'pro')
    ids = await createOwnedResources(t, owner.key)
    await t.app.rigbox.reconciler.idle()
    ops = await loadOperations(t.app)
  })
  after(() => t.close())

  /** Path params filled with the owner's ids; required query params and the body minimal. */
  const requestFor = (op: Operation): InjectOptions => {
    const params = Object.fromEntries(
      op.pathParams.map((p) => [p.name, ids[resourceKey(op.path, p.name)] as string]),
    )
    const query = new URLSearchParams(
      op.query.filter((q) => q.required).map((q) => [q.name, String(minimalInstance(q.schema))]),
    ).toString()
    const req: InjectOptions = { method: op.method, url: urlOf(op, params, query) }
    if (op.body) {
      const body = minimalInstance(op.body) as Record<string, unknown>
      for (const property of Object.keys(op.body.properties ?? {})) {
        const id = bodyReference(ids, property)
        if (id) body[property] = id
      }
      req.payload = body
    }
    return req
  }
  const ownerIds = () => [owner.user.id, ...Object.values(ids)]
  const carriesOwnerId = (req: InjectOptions) => {
    const text = `${req.url} ${JSON.stringify(req.payload ?? '')}`
    return ownerIds().some((id) => text.includes(id))
  }
  const send = async (req: InjectOptions, key: string | null) => {
    requests++
    const res = await t.app.inject({ ...req, headers: key ? bearer(key) : {} })
    return { status: res.statusCode, body: res.body }
  }

  /** Everything of the owner's: every DB row mentioning one of their ids, and the node's VMs. */
  const ownerState = async () => {
    const db = t.app.rigbox.db
    const tables = await sql<{ name: string }>`
      select name from sqlite_master
      where type = 'table' and name not like 'sqlite_%' and name not like 'kysely_%'
      order by name`.execute(db)
    const mine = (v: unknown) => ownerIds().some((id) => JSON.stringify(v).includes(id))
    const state: Record<string, unknown> = {}
    for (const { name } of tables.rows) {
      const rows = await sql<Record<string, unknown>>`select * from ${sql.table(name)}`.execute(db)
      state[name] = rows.rows
        .filter(mine)
        .map((r) => JSON.stringify(r))
        .sort()
    }
    state.node = {
      vms: [...node.vms.keys()].filter(mine),
      paused: [...node.paused].filter(mine),
      provisioned: [...node.provisioned].filter(mine),
      destroyed: node.destroyed.filter(mine),
      disks: [...node.disks.entries()].filter(mine),
      snapshots: [...node.snapshots.keys()].filter(mine),
      configured: node.configured.filter(mine).length,
    }
    return state
  }

  it('can fill every path parameter of every operation with a real id of the owner', () => {
    assert.ok(ops.length > 50, `the spec lists ${ops.length} operations`)
    assert.ok(
      ops.some((o) => o.path.startsWith('/api/v1/')) &&
        ops.some((o) => !o.path.startsWith('/api/v1/')),
    )
    const unfilled = ops.flatMap((op) =>
      op.pathParams
        .filter((p) => !ids[resourceKey(op.path, p.name)])
        .map((p) => `${op.method} ${op.path}: {${p.name}} (${resourceKey(op.path, p.name)})`),
    )
    assert.deepEqual(
      unfilled,
      [],
      'create such a resource for the owner in test/helpers/resources.ts so these are covered',
    )
  })

  it('marks public only the operations meant to be public', () => {
    // Opening an operation to anonymous callers is a security decision: it is made here too.
    const meantToBePublic: string[] = []
    const marked = ops.filter((o) => o.isPublic).map((o) => `${o.method} ${o.path}`)
    assert.deepEqual(marked, meantToBePublic)
  })

  it('answers an anonymous caller 401 on every operation not marked public', async () => {
    const baseline = await ownerState()
    const wrong: string[] = []
    for (const op of ops) {
      const res = await send(requestFor(op), null)
      const expected = op.isPublic ? res.status < 500 && !leaks(res.body) : res.status === 401
      if (!expected || !isErrorShape(res))
        wrong.push(`${op.method} ${op.path}: ${res.status} ${res.body.slice(0, 200)}`)
    }
    assert.deepEqual(wrong, [])
    assert.deepEqual(await ownerState(), baseline)
  })

  it("answers a foreign user 404 on the owner's resources and changes nothing of theirs", async (ctx) => {
    let baseline = await ownerState()
    const wrong: string[] = []
    let onOwnerResources = 0
    for (const op of ops) {
      const req = requestFor(op)
      const res = await send(req, foreign.key)
      const where = `${op.method} ${req.url}`
      if (carriesOwnerId(req)) {
        onOwnerResources++
        const documented = referenceStatuses(op.method, op.path)
        // An administrators' operation refuses everyone else alike (403), whoever its id names.
        const adminOnly = op.path.includes('/admin/')
        const allowed =
          adminOnly || (documented.includes('403') && !documented.includes('404')) ? [403] : [404]
        if (!allowed.includes(res.status) || !isErrorShape(res)) {
          wrong.push(`${where}: ${res.status} (want ${allowed}) ${res.body.slice(0, 200)}`)
        }
      } else if (res.status >= 500 || leaks(res.body)) {
        wrong.push(`${where}: ${res.status} ${res.body.slice(0, 200)}`)
      }
      // Compared after each call, so a change names the operation that made it.
      const now = await ownerState()
      if (JSON.stringify(now) !== JSON.stringify(baseline)) {
        wrong.push(`${where} changed the owner's state`)
        baseline = now
      }
    }
    assert.deepEqual(wrong, [])
    // The anonymous pass ran just before: together, every operation once per caller.
    ctx.diagnostic(
      `authz matrix: ${ops.length} operations x 2 callers (anonymous, foreign user) = ${requests} requests; ${onOwnerResources} operations aimed at the owner's resources`,
    )
  })

  /** Anything of the owner's in a response to someone else. */
  const leaks = (body: string) =>
    [...ownerIds(), 'owner@example.com'].some((secret) => body.includes(secret))
  const isErrorShape = (res: { status: number; body: string }) => {
    if (res.status < 400) return true
    try {
      const json = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } }
      return typeof json.error?.code === 'string' && typeof json.error.message === 'string'
    } catch {
      return false
    }
  }
})
