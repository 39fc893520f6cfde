import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import fc from 'fast-check'
import type { LightMyRequestResponse } from 'fastify'
import type { ExecResult, ExecSpec, GuestMetrics } from '../../src/node/types.ts'
import { bearer, call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { requestFor } from '../helpers/fuzz-arbitraries.ts'
import { loadOperations, type Operation } from '../helpers/openapi.ts'
import { createOwnedResources } from '../helpers/resources.ts'

/** Requests per operation: ~112 operations × this keeps the file near a minute on 2 cores. */
const RUNS_PER_OPERATION = 300

/**
 * The fake node with a guest that answers like a healthy one, so the fuzz reaches past the
 * node into our own handling of exec, files and metrics (the real guest is tested in test/guest).
 */
class GuestfulNode extends FakeNode {
  files = new Map<string, Buffer>()
  private check(id = '') {
    if (!this.vms.has(id)) throw new Error('not running')
  }
  // Optional parameters: FakeNode declares these without any.
  override async exec(id?: string, spec?: ExecSpec): Promise<ExecResult> {
    this.check(id)
    return {
      exit_code: 0,
      stdout: spec?.command ?? '',
      stderr: '',
      timed_out: false,
      truncated: false,
    }
  }
  override async readFile(id?: string, path?: string): Promise<Buffer> {
    this.check(id)
    return this.files.get(`${id}:${path}`) ?? Buffer.from('ssh-ed25519 AAAA fuzz\n')
  }
  override async writeFile(id?: string, path?: string, data?: Buffer): Promise<void> {
    this.check(id)
    this.files.set(`${id}:${path}`, data ?? Buffer.alloc(0))
  }
  override async metrics(id?: string): Promise<GuestMetrics> {
    this.check(id)
    return {
      cpu_percent: 1.5,
      ram_used_mb: 100,
      ram_total_mb: 512,
      disk_used_mb: 1,
      disk_total_mb: 2,
    }
  }
}

/** What every answer must be: no 5xx, and every error in our JSON shape. */
function checkAnswer(res: LightMyRequestResponse, what: string) {
  assert.ok(res.statusCode < 500, `${what} → ${res.statusCode} ${res.body.slice(0, 300)}`)
  if (res.statusCode < 400) return
  assert.match(String(res.headers['content-type']), /^application\/json/, `${what}: content type`)
  const json = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } }
  assert.equal(typeof json.error?.code, 'string', `${what}: ${res.body.slice(0, 300)}`)
  assert.equal(typeof json.error?.message, 'string', `${what}: ${res.body.slice(0, 300)}`)
}

describe('property-based fuzzing of every operation', () => {
  let t: TestApp
  let ops: Operation[]
  let requests = 0
  let users = 0

  before(async () => {
    const unlimited = '100000000'
    t = await makeApp({
      node: new GuestfulNode(),
      env: {
        RIGBOX_RATE_LIMIT_AUTH: unlimited,
        RIGBOX_RATE_LIMIT_WORKSPACES: unlimited,
        RIGBOX_RATE_LIMIT_APPS: unlimited,
      },
    })
    ops = await loadOperations(t.app)
  })
  after(() => t.close())

  /** A fresh owner with one of everything, so what one operation's runs did never limits the next. */
  const freshOwner = async () => {
    const { key } = await makeUser(t, `owner${users++}@example.com`, 'pro')
    const ids = await createOwnedResources(t, key)
    return { key, ids }
  }

  it('answers every operation without 5xx, always in the error shape, and stays up', async (ctx) => {
    assert.ok(ops.length > 50, `the spec lists ${ops.length} operations`)
    const started = Date.now()
    for (const op of ops) {
      const owner = await freshOwner()
      // Operations for administrators only are fuzzed as the administrator, or they would only
      // ever answer 403.
      const probe = await call(t.app, owner.key, op.method, op.path.replace(/\{[^}]+\}/g, 'x'))
      const key = probe.status === 403 ? t.adminKey : owner.key
      await fc.assert(
        fc.asyncProperty(requestFor(op, owner.ids), async ({ url, body }) => {
          requests++
          const res = await t.app.inject({
            method: op.method,
            url,
            headers: {
              ...bearer(key),
              ...(body.contentType === undefined ? {} : { 'content-type': body.contentType }),
            },
            ...(body.payload === undefined ? {} : { payload: body.payload }),
          })
          checkAnswer(res, `${op.method} ${url.slice(0, 200)}`)
        }),
        { numRuns: RUNS_PER_OPERATION, includeErrorInReport: true },
      )
      // Still up, and still itself: a plain authenticated request works after each operation.
      await t.app.rigbox.reconciler.idle()
      const me = await call(t.app, owner.key, 'GET', '/api/v1/users/me')
      assert.equal(me.status, 200, `after ${op.method} ${op.path}: ${me.body}`)
    }
    ctx.diagnostic(
      `fuzz: ${requests} requests over ${ops.length} operations (${RUNS_PER_OPERATION} each) in ${Math.round((Date.now() - started) / 1000)} s`,
    )
  })
})
