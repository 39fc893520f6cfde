import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { runSeedPython, seedPython } from '../helpers/seeds.ts'

/** Over a real listening socket, with real HTTP clients (fetch, and Python's requests). */
describe('listening server', () => {
  let t: TestApp
  let base: string
  let key: string
  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const addr = t.app.server.address()
    assert.ok(addr && typeof addr === 'object')
    base = `http://127.0.0.1:${addr.port}`
    key = (await makeUser(t, 'net@example.com', 'pro')).key
  })
  after(() => t.close())

  it('serves the API over TCP with Bearer keys', async () => {
    const anon = await fetch(`${base}/api/v1/workspaces`)
    assert.equal(anon.status, 401)
    assert.equal(anon.headers.get('content-type')?.startsWith('application/json'), true)
    const created = await fetch(`${base}/api/v1/workspaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'over-tcp' }),
    })
    assert.equal(created.status, 201)
    const body = (await created.json()) as { vm: { id: string } }
    const got = await fetch(`${base}/api/v1/workspaces/${body.vm.id}`, {
      headers: { authorization: `Bearer ${key}` },
    })
    assert.equal(got.status, 200)
    const capacity = await fetch(`${base}/api/v1/capacity`, {
      headers: { authorization: `Bearer ${key}` },
    })
    assert.equal(capacity.status, 200)
  })

  it('publishes OpenAPI 3.1 for both surfaces, generated from the route schemas', async () => {
    const res = await fetch(`${base}/api/v1/openapi.json`)
    assert.equal(res.status, 200)
    const spec = (await res.json()) as {
      openapi: string
      paths: Record<string, Record<string, { operationId: string }>>
      components: { schemas: Record<string, unknown> }
    }
    assert.equal(spec.openapi, '3.1.0')
    for (const p of [
      '/api/v1/workspaces',
      '/api/v1/workspaces/{id}',
      '/api/v1/workspaces/{id}/start',
      '/api/workspaces',
      '/api/v1/api-keys',
      '/api/v1/quick-deploy',
      '/api/v1/capacity',
      '/api/v1/users/me/limits',
    ]) {
      assert.ok(spec.paths[p], `OpenAPI lists ${p}`)
    }
    for (const name of ['Vm', 'GetWorkspaceResponse', 'ApiErrorBody', 'CreateWorkspaceRequest']) {
      assert.ok(spec.components.schemas[name], `component ${name}`)
    }
  })

  it("runs the seed's create-start-poll Python example unchanged (base URL and key swapped)", async () => {
    const code = seedPython('000_2a1cdc7bb71463a1.txt', /is running and ready to use/)
    const { stdout } = await runSeedPython(code, `${base}/api`, key)
    assert.match(stdout, /Created workspace: ws-[a-z0-9]{8}/)
    assert.match(stdout, /Status: running/)
    assert.match(stdout, /is running and ready to use/)
  })
})
