import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, bearer, type TestApp } from '../helpers/app.ts'

describe('errors', () => {
  let t: TestApp
  let key: string
  before(async () => {
    t = await makeApp({
      env: { RIGBOX_RATE_LIMIT_AUTH: '5', RIGBOX_BODY_LIMIT_BYTES: '2048' },
    })
    key = (await makeUser(t, 'err@example.com')).key
  })
  after(() => t.close())

  const isErrorBody = (json: { error?: { code?: unknown; message?: unknown } }) =>
    typeof json?.error?.code === 'string' && typeof json.error.message === 'string'

  it('answers malformed JSON with 400 INVALID_JSON', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/workspaces',
      headers: { ...bearer(key), 'content-type': 'application/json' },
      payload: '{"name": "x",',
    })
    assert.equal(res.statusCode, 400)
    assert.equal(res.json().error.code, 'INVALID_JSON')
  })

  it('answers oversized bodies with 413', async () => {
    const res = await call(t.app, key, 'POST', '/api/v1/workspaces', {
      name: 'big',
      env_vars: { PAD: 'x'.repeat(4096) },
    })
    assert.equal(res.status, 413)
    assert.equal(res.json.error.code, 'PAYLOAD_TOO_LARGE')
  })

  it('answers unknown routes and ids with a JSON 404', async () => {
    const route = await call(t.app, key, 'GET', '/api/v1/nothing-here')
    assert.equal(route.status, 404)
    assert.ok(isErrorBody(route.json))
    const id = await call(t.app, key, 'GET', '/api/v1/workspaces/ws-zzzzzzzz')
    assert.equal(id.status, 404)
    assert.equal(id.json.error.code, 'WORKSPACE_NOT_FOUND')
  })

  it('rate-limits per user and class with 429, Retry-After and the JSON body', async () => {
    const other = (await makeUser(t, 'err2@example.com')).key
    let limited
    for (let i = 0; i < 10 && !limited; i++) {
      const res = await call(t.app, key, 'GET', '/api/v1/api-keys')
      if (res.status === 429) limited = res
    }
    assert.ok(limited, 'the sixth auth-class call is limited')
    assert.equal(limited.json.error.code, 'RATE_LIMITED')
    const retryAfter = Number(limited.headers['retry-after'])
    assert.ok(retryAfter >= 1 && retryAfter <= 60)
    // Another class, and another user, still pass.
    assert.equal((await call(t.app, key, 'GET', '/api/v1/workspaces')).status, 200)
    assert.equal((await call(t.app, other, 'GET', '/api/v1/workspaces')).status, 200)
  })

  it('never shows stack traces or SQL', async () => {
    const res = await call(t.app, key, 'GET', "/api/v1/workspaces/ws-'%3Bdrop")
    assert.equal(res.status, 404)
    assert.doesNotMatch(res.body, /at .*\.ts:\d+|SELECT|sqlite/i)
  })
})
