import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'

describe('egress policy API', () => {
  let t: TestApp
  let node: FakeNode
  let key: string
  let ws: { id: string }
  before(async () => {
    node = new FakeNode()
    t = await makeApp({ node })
    key = (await makeUser(t, 'egress@example.com', 'pro')).key
    ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'out' })).json.vm
  })
  after(() => t.close())

  it('starts empty, stores a normalised policy, and refuses bad entries naming them', async () => {
    const empty = await call(t.app, key, 'GET', `/api/v1/workspaces/${ws.id}/egress`)
    assert.deepEqual(empty.json, { allow: [], deny: [] })
    const set = await call(t.app, key, 'PUT', `/api/v1/workspaces/${ws.id}/egress`, {
      allow: ['pypi.org', '*.npmjs.org', '10.20.0.0/16', 'pypi.org'],
      deny: ['evil.example.com'],
    })
    assert.equal(set.status, 200, set.body)
    assert.deepEqual(set.json.deny, ['evil.example.com'])
    assert.equal(set.json.allow.filter((a: string) => a === 'pypi.org').length, 1)
    const bad = await call(t.app, key, 'PUT', `/api/v1/workspaces/${ws.id}/egress`, {
      allow: ['10.20.1.0/16'],
      deny: [],
    })
    assert.equal(bad.status, 400)
    assert.match(bad.json.error.message, /allow\[0\]/)
    const other = (await makeUser(t, 'egress-other@example.com')).key
    assert.equal(
      (await call(t.app, other, 'GET', `/api/v1/workspaces/${ws.id}/egress`)).status,
      404,
    )
  })

  it('hands a running workspace its new policy at once', async () => {
    await call(t.app, key, 'POST', `/api/v1/workspaces/${ws.id}/start`)
    await t.app.rigbox.reconciler.idle()
    await call(t.app, key, 'PUT', `/api/v1/workspaces/${ws.id}/egress`, {
      allow: ['example.org'],
      deny: [],
    })
    assert.deepEqual(node.configured.at(-1)?.egress, { allow: ['example.org'], deny: [] })
  })
})
