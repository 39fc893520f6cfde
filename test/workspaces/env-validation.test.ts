import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { EXEC_LIMITS } from '../../src/guest/index.ts'
import { loadOperations } from '../helpers/openapi.ts'

/** Every env the guest could never boot with; each must be refused wherever env arrives. */
const badEnvs: [string, Record<string, string>][] = [
  ['a NUL byte', { SECRET: 'abc\0def' }],
  ['a value over the limit', { BIG: 'x'.repeat(EXEC_LIMITS.envValueBytes + 1) }],
  ['a value over the limit in UTF-8 bytes', { BIG: 'é'.repeat(EXEC_LIMITS.envValueBytes / 2 + 1) }],
  ['a name that is not a variable name', { 'BAD-NAME': 'x' }],
  ['a name over 256 characters', { ['N'.repeat(257)]: 'x' }],
  ['over 1000 entries', Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`V${i}`, '']))],
  [
    'over 256 KiB in all',
    Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`V${i}`, 'x'.repeat(60 * 1024)])),
  ],
]

/** Finding 9: quick-deploy stored env that POST /workspaces refused (NUL, size). */
describe('workspace env: one validation however it arrives', () => {
  let t: TestApp
  let key: string
  let workspaceId: string
  let specId: string
  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    key = (await makeUser(t, 'env@example.com', 'pro')).key
    workspaceId = (
      await call(t.app, key, 'POST', '/api/v1/workspaces', {
        name: 'holder',
        env_vars: { KEEP: 'me' },
      })
    ).json.vm.id
    specId = (
      await call(t.app, key, 'POST', '/api/v1/service-specs', {
        name: 'holder',
        exec_start: 'true',
      })
    ).json.id
  })
  after(() => t.close())

  /** Each way env arrives: a request that is valid but for the env it carries. */
  const ways = () => [
    { method: 'POST', path: '/workspaces', body: { name: 'fresh' } },
    { method: 'POST', path: '/quick-deploy', body: { template_id: 'base', name: 'quick' } },
    { method: 'POST', path: `/workspaces/${workspaceId}/env`, body: {} },
    // A service spec's env is added to the workspace's in its unit (src/automation/).
    { method: 'POST', path: '/service-specs', body: { name: 'fresh', exec_start: 'true' } },
    { method: 'PUT', path: `/service-specs/${specId}`, body: {} },
  ]

  it('covers every operation whose body takes env_vars (new ones must be added here)', async () => {
    const takingEnv = (await loadOperations(t.app))
      .filter((op) => op.body?.properties && 'env_vars' in op.body.properties)
      .map((op) => `${op.method} ${op.path}`)
    const covered = ways().flatMap((w) =>
      ['/api/v1', '/api'].map(
        (prefix) =>
          `${w.method} ${prefix}${w.path.replace(workspaceId, '{id}').replace(specId, '{id}')}`,
      ),
    )
    assert.deepEqual(takingEnv.sort(), covered.sort())
  })

  for (const [what, env_vars] of badEnvs) {
    it(`refuses ${what} on create, quick-deploy and env set, on both surfaces`, async () => {
      const before = await call(t.app, key, 'GET', '/api/v1/workspaces')
      for (const prefix of ['/api/v1', '/api']) {
        for (const way of ways()) {
          const res = await call(t.app, key, way.method, `${prefix}${way.path}`, {
            ...way.body,
            env_vars,
          })
          assert.equal(
            res.status,
            400,
            `${way.method} ${prefix}${way.path}: ${res.body.slice(0, 300)}`,
          )
          assert.equal(res.json.error.code, 'VALIDATION_ERROR')
          assert.match(res.json.error.message, /env_vars/)
        }
      }
      // Nothing was created and the existing workspace's env is untouched.
      assert.deepEqual((await call(t.app, key, 'GET', '/api/v1/workspaces')).json, before.json)
    })
  }

  it('still takes a good env through every way, and quick-deploy stores it', async () => {
    const env_vars = { DATABASE_URL: 'postgres://db:5432/x', EMPTY: '', UNICODE: 'ħ ✓' }
    for (const way of ways()) {
      const res = await call(t.app, key, way.method, `/api/v1${way.path}`, {
        ...way.body,
        env_vars,
      })
      assert.ok(res.status === 200 || res.status === 201, `${way.path}: ${res.body}`)
    }
    const quick = (await call(t.app, key, 'GET', '/api/v1/workspaces')).json.vms.find(
      (w: { name: string }) => w.name === 'quick',
    )
    assert.deepEqual(quick.env_vars, env_vars)
  })
})
