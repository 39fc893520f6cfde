import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { API_KEY_PATTERN, generateApiKey, hashApiKey } from '../../src/auth/keys.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'

describe('API keys', () => {
  it('generates rb_ keys with 32+ base62 characters and distinct hashes', () => {
    const a = generateApiKey()
    const b = generateApiKey()
    assert.match(a, API_KEY_PATTERN)
    assert.ok(a.length >= 35)
    assert.notEqual(a, b)
    assert.notEqual(hashApiKey(a), hashApiKey(b))
    assert.equal(hashApiKey(a).length, 64)
  })
})

describe('accounts and keys over HTTP', () => {
  let t: TestApp
  before(async () => {
    t = await makeApp()
  })
  after(() => t.close())

  it('writes the admin key on first start, mode 0600', () => {
    const keyFile = path.join(t.dataDir, 'admin.key')
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600)
    assert.match(t.adminKey, API_KEY_PATTERN)
  })

  it('answers 401 without a key, with a malformed header, or with an unknown key', async () => {
    for (const key of [null, 'rb_notarealkeynotarealkeynotarealkey1234']) {
      const res = await call(t.app, key, 'GET', '/api/v1/workspaces')
      assert.equal(res.status, 401)
      assert.equal(res.json.error.code, 'UNAUTHORIZED')
    }
    const res = await t.app.inject({
      url: '/api/v1/workspaces',
      headers: { authorization: `Basic ${t.adminKey}` },
    })
    assert.equal(res.statusCode, 401)
  })

  it('lets only the admin create users, and refuses duplicates', async () => {
    const { key, user } = await makeUser(t, 'alice@example.com', 'pro')
    assert.match(key, API_KEY_PATTERN)
    const me = await call(t.app, key, 'GET', '/api/v1/users/me')
    assert.equal(me.status, 200)
    assert.equal(me.json.user.id, user.id)
    assert.equal(me.json.user.plan, 'pro')
    assert.equal(me.json.user.is_admin, false)

    const forbidden = await call(t.app, key, 'POST', '/api/v1/admin/users', { email: 'x@y.z' })
    assert.equal(forbidden.status, 403)
    const dup = await call(t.app, t.adminKey, 'POST', '/api/v1/admin/users', {
      email: 'ALICE@example.com',
    })
    assert.equal(dup.status, 409)
    const bad = await call(t.app, t.adminKey, 'POST', '/api/v1/admin/users', {
      email: 'not-an-email',
      plan: 'gold',
    })
    assert.equal(bad.status, 400)
    assert.match(bad.json.error.message, /body\.email/)
    assert.match(bad.json.error.message, /body\.plan/)
  })

  it('creates, lists and revokes keys; a revoked key stops working at once', async () => {
    const { key } = await makeUser(t, 'bob@example.com')
    const created = await call(t.app, key, 'POST', '/api/v1/api-keys', { name: 'ci' })
    assert.equal(created.status, 201)
    const second: string = created.json.key
    assert.match(second, API_KEY_PATTERN)
    assert.equal(created.json.api_key.prefix, second.slice(0, 7))

    const used = await call(t.app, second, 'GET', '/api/v1/api-keys')
    assert.equal(used.status, 200)
    assert.equal(used.json.api_keys.length, 2)
    assert.ok(!JSON.stringify(used.json).includes(second), 'listing never shows a key')
    const listed = used.json.api_keys.find((k: { name: string }) => k.name === 'ci')
    assert.ok(listed.last_used_at, 'last_used_at is recorded')

    const flat = await call(t.app, key, 'GET', '/api/api-keys')
    assert.ok(Array.isArray(flat.json))

    const revoked = await call(t.app, key, 'DELETE', `/api/v1/api-keys/${listed.id}`)
    assert.equal(revoked.status, 200)
    assert.equal((await call(t.app, second, 'GET', '/api/v1/api-keys')).status, 401)
    assert.equal((await call(t.app, key, 'GET', '/api/v1/api-keys')).status, 200)
  })

  it("answers 404 for another user's key", async () => {
    const a = await makeUser(t, 'carol@example.com')
    const b = await makeUser(t, 'dave@example.com')
    const keys = await call(t.app, a.key, 'GET', '/api/v1/api-keys')
    const id = keys.json.api_keys[0].id
    const res = await call(t.app, b.key, 'DELETE', `/api/v1/api-keys/${id}`)
    assert.equal(res.status, 404)
    assert.equal((await call(t.app, a.key, 'GET', '/api/v1/api-keys')).status, 200)
  })

  it('keeps the admin account across restarts without writing a new key', async () => {
    const again = await makeApp({ dataDir: t.dataDir })
    try {
      assert.equal(again.app.rigbox.adminKeyPath, null)
      assert.equal(again.adminKey, t.adminKey)
    } finally {
      await again.close()
    }
  })
})
