import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { bearer, call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'

/** The bound on every JSON body (src/http/json-body.ts). */
const MAX_JSON_DEPTH = 64
const nested = (depth: number, leaf = '1') => '{"a":'.repeat(depth) + leaf + '}'.repeat(depth)
const nestedArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth)

/** Finding 7: deeply nested JSON (app metadata, 4,100 levels) answered 500. */
describe('JSON nesting and app metadata bounds', () => {
  let t: TestApp
  let key: string
  let workspaceId: string
  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    key = (await makeUser(t, 'deep@example.com', 'pro')).key
    workspaceId = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'web' })).json.vm.id
  })
  after(() => t.close())

  const postRaw = (url: string, payload: string, method: 'POST' | 'PATCH' = 'POST') =>
    t.app.inject({
      method,
      url,
      headers: { ...bearer(key), 'content-type': 'application/json' },
      payload,
    })
  const appCount = async () => (await call(t.app, key, 'GET', '/api/v1/apps')).json.apps.length

  it('refuses app metadata nested thousands of levels deep with 400, not 500', async () => {
    for (const [depth, metadata] of [
      [4_100, nested(4_100)],
      [10_000, nested(10_000)],
      [10_000, nestedArrays(10_000)],
      [100_000, nestedArrays(100_000)],
    ] as const) {
      const res = await postRaw(
        '/api/v1/apps',
        `{"name":"deep","workspace_id":"${workspaceId}","port":80,"metadata":${metadata}}`,
      )
      assert.equal(res.statusCode, 400, `depth ${depth}: ${res.body.slice(0, 200)}`)
      assert.equal(res.json().error.code, 'BAD_REQUEST')
      assert.match(res.json().error.message, new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`))
    }
    assert.equal(await appCount(), 0)
  })

  it('bounds nesting for every JSON body, counting only structure outside strings', async () => {
    const tooDeep = await postRaw('/api/v1/workspaces', nested(MAX_JSON_DEPTH + 1, '"x"'))
    assert.equal(tooDeep.statusCode, 400)
    assert.match(tooDeep.json().error.message, /deeper than 64 levels/)
    // At the limit the parser lets it through, and the schema answers (here: unknown key).
    const atLimit = await postRaw('/api/v1/workspaces', nested(MAX_JSON_DEPTH, '"x"'))
    assert.equal(atLimit.statusCode, 400)
    assert.equal(atLimit.json().error.code, 'VALIDATION_ERROR')
    // Brackets (and escaped quotes) inside strings are text, not nesting.
    const brackets = await postRaw(
      '/api/v1/workspaces',
      JSON.stringify({ name: 'brackets', env_vars: { X: `\\"${'[{'.repeat(500)}` } }),
    )
    assert.equal(brackets.statusCode, 201, brackets.body)
  })

  it('bounds metadata itself: 16 levels and 16 KiB, on create and on update', async () => {
    const deep = JSON.parse(nested(17)) as unknown
    const create = await call(t.app, key, 'POST', '/api/v1/apps', {
      name: 'meta',
      workspace_id: workspaceId,
      port: 80,
      metadata: deep,
    })
    assert.equal(create.status, 400)
    assert.equal(create.json.error.code, 'VALIDATION_ERROR')
    assert.match(create.json.error.message, /metadata nests deeper than 16 levels/)
    const big = await call(t.app, key, 'POST', '/api/v1/apps', {
      name: 'meta',
      workspace_id: workspaceId,
      port: 80,
      metadata: { blob: 'x'.repeat(17 * 1024) },
    })
    assert.equal(big.status, 400)
    assert.match(big.json.error.message, /metadata is over 16384 characters/)
    assert.equal(await appCount(), 0)

    const ok = await call(t.app, key, 'POST', '/api/v1/apps', {
      name: 'meta',
      workspace_id: workspaceId,
      port: 80,
      metadata: { ...(JSON.parse(nested(15)) as object), tags: ['a'] },
    })
    assert.equal(ok.status, 201, ok.body)
    const patch = await call(t.app, key, 'PATCH', `/api/v1/apps/${ok.json.app.id}`, {
      metadata: deep,
    })
    assert.equal(patch.status, 400)
    assert.match(patch.json.error.message, /metadata nests deeper/)
    const rawPatch = await postRaw(
      `/api/v1/apps/${ok.json.app.id}`,
      `{"metadata":${nested(10_000)}}`,
      'PATCH',
    )
    assert.equal(rawPatch.statusCode, 400)
    const kept = await call(t.app, key, 'GET', `/api/v1/apps/${ok.json.app.id}`)
    assert.deepEqual(kept.json.app.metadata, ok.json.app.metadata)
  })
})
