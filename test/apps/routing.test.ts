import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateApiKey } from '../../src/auth/keys.ts'
import { routerDeps } from '../../src/apps/routing.ts'
import type { Router } from '../../src/router/index.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { get, startRouter } from '../router/helpers.ts'

/**
 * The router's Bearer checks share the API's budget of failed authentications per client address:
 * neither is a way around the other's limit (finding 11 of the security review).
 */
describe('the app router counts failed keys with the API', () => {
  let t: TestApp
  let router: { router: Router; port: number }
  let key: string

  before(async () => {
    t = await makeApp({ node: new FakeNode(), env: { RIGBOX_RATE_LIMIT_AUTH_FAILURES: '3' } })
    key = (await makeUser(t, 'limits@example.com', 'pro')).key
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'web' })).json.vm
    const made = await call(t.app, key, 'POST', '/api/v1/apps', {
      name: 'guarded',
      workspace_id: ws.id,
      port: 8000,
    })
    assert.equal(made.status, 201, made.body)
    router = await startRouter(routerDeps(t.app, 'localhost'))
  })
  after(async () => {
    await router.router.close()
    await t.close()
  })

  const withKey = (k: string) =>
    get(router.port, 'guarded.localhost', '/', {
      accept: 'application/json',
      authorization: `Bearer ${k}`,
    })

  it('refuses the address once its failures are spent, on the router and the API alike', async () => {
    // The right key is admitted (502: no VM behind the fake node), not refused.
    assert.equal((await withKey(key)).status, 502)
    for (let i = 0; i < 3; i++) assert.equal((await withKey(generateApiKey())).status, 401)
    const limited = await withKey(generateApiKey())
    assert.equal(limited.status, 429)
    assert.equal((limited.json().error as { code: string }).code, 'RATE_LIMITED')
    assert.match(String(limited.headers['retry-after']), /^\d+$/)
    // Blocked before the key is even looked at: the right key waits too…
    assert.equal((await withKey(key)).status, 429)
    // …and the API (the same address, 127.0.0.1) shares the count.
    const api = await t.app.inject({
      method: 'GET',
      url: '/api/v1/workspaces',
      remoteAddress: '127.0.0.1',
      headers: { authorization: `Bearer ${generateApiKey()}` },
    })
    assert.equal(api.statusCode, 429)
  })
})
