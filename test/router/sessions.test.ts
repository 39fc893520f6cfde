import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { routerDeps } from '../../src/apps/routing.ts'
import type { Router } from '../../src/router/index.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { get, startRouter } from './helpers.ts'

/**
 * Login links and sessions on the real control plane: SQLite, the API, and two routers, each
 * with its own app and database connection on one database file (two hosts, one database).
 * An admitted request answers 502 WORKSPACE_NOT_RUNNING (no VM behind the fake node); a refused
 * one 403. That difference is all these tests need from the upstream.
 */
describe('router sessions on the control plane (single-use links, revocation, logout)', () => {
  let t: TestApp
  let t2: TestApp
  const routers: { router: Router; port: number }[] = []
  let key: string
  let appId: string

  before(async () => {
    t = await makeApp({ node: new FakeNode() })
    key = (await makeUser(t, 'sessions@example.com', 'pro')).key
    const ws = (await call(t.app, key, 'POST', '/api/v1/workspaces', { name: 'web' })).json.vm
    const app = await call(t.app, key, 'POST', '/api/v1/apps', {
      name: 'secret-app',
      workspace_id: ws.id,
      port: 8000,
    })
    assert.equal(app.status, 201, app.body)
    appId = app.json.app.id
    t2 = await makeApp({ node: new FakeNode(), dataDir: t.dataDir })
    for (const a of [t, t2]) routers.push(await startRouter(routerDeps(a.app, 'localhost')))
  })
  after(async () => {
    for (const r of routers) await r.router.close()
    await t2.close()
    await t.close()
  })

  /** A login link from the API, made with `withKey`: the path and query to visit. */
  const newLink = async (withKey = key) => {
    const res = await call(t.app, withKey, 'POST', `/api/v1/apps/${appId}/login-link`, {})
    assert.equal(res.status, 200, res.body)
    const url = new URL(res.json.url as string)
    return `${url.pathname}${url.search}`
  }
  const visit = (path: string, router = 0, headers = {}) =>
    get(routers[router].port, 'secret-app.localhost', path, {
      accept: 'application/json',
      ...headers,
    })
  const signIn = async (withKey = key) => {
    const r = await visit(await newLink(withKey))
    assert.equal(r.status, 302)
    return (r.headers['set-cookie']?.[0] ?? '').split(';')[0]
  }
  const admitted = async (cookie: string, router = 0) => {
    const r = await visit('/', router, { cookie })
    if (r.status === 502)
      assert.equal((r.json().error as { code: string }).code, 'WORKSPACE_NOT_RUNNING')
    else assert.equal(r.status, 403)
    return r.status === 502
  }

  it('a link logs in once; a second visit is refused on any router', async () => {
    assert.equal(await admitted('rigbox_session=none'), false)
    const link = await newLink()
    const first = await visit(link)
    assert.equal(first.status, 302)
    const cookie = (first.headers['set-cookie']?.[0] ?? '').split(';')[0]
    assert.equal(await admitted(cookie, 0), true)
    assert.equal(await admitted(cookie, 1), true, 'the other host sees the session')
    for (const router of [0, 1]) {
      const again = await visit(link, router)
      assert.equal(again.status, 403)
      assert.equal((again.json().error as { code: string }).code, 'INVALID_LOGIN_LINK')
    }
  })

  it('concurrent visits of one link, on two routers: exactly one logs in', async () => {
    for (let round = 0; round < 5; round++) {
      const link = await newLink()
      const results = await Promise.all([visit(link, 0), visit(link, 1), visit(link, 0)])
      assert.deepEqual(results.map((r) => r.status).sort(), [302, 403, 403], `round ${round}`)
    }
  })

  it('revoking the key that made a link ends its sessions and unused links, on every router', async () => {
    const made = await call(t.app, key, 'POST', '/api/v1/api-keys', { name: 'laptop' })
    const laptop = made.json.key as string
    const cookie = await signIn(laptop)
    const unused = await newLink(laptop)
    const other = await signIn(key)
    assert.equal(await admitted(cookie, 1), true)
    const del = await call(t.app, key, 'DELETE', `/api/v1/api-keys/${made.json.api_key.id}`)
    assert.equal(del.status, 200)
    assert.equal(await admitted(cookie, 0), false)
    assert.equal(await admitted(cookie, 1), false)
    assert.equal((await visit(unused, 1)).status, 403)
    assert.equal(await admitted(other, 1), true, "another key's session lives on")
  })

  it('logout on one router ends the session on the server, for every router', async () => {
    const cookie = await signIn()
    assert.equal(await admitted(cookie, 1), true)
    const out = await visit('/__rigbox/logout', 0, { cookie })
    assert.equal(out.status, 302)
    assert.match(out.headers['set-cookie']?.[0] ?? '', /Max-Age=0/)
    assert.equal(await admitted(cookie, 0), false)
    assert.equal(await admitted(cookie, 1), false)
  })

  it('expired links and sessions are swept', async () => {
    const { db } = t.app.rigbox
    const keyRow = await db
      .selectFrom('api_keys')
      .select(['id', 'user_id'])
      .executeTakeFirstOrThrow()
    const past = new Date(Date.now() - 1000).toISOString()
    for (const table of ['app_login_links', 'app_sessions'] as const)
      await db
        .insertInto(table)
        .values({
          id: `${table}-old`,
          user_id: keyRow.user_id,
          key_id: keyRow.id,
          subdomain: 'secret-app',
          expires_at: past,
          created_at: past,
        })
        .execute()
    const before = await db.selectFrom('app_sessions').select('id').execute()
    await newLink()
    for (const table of ['app_login_links', 'app_sessions'] as const) {
      const old = await db.selectFrom(table).where('id', '=', `${table}-old`).select('id').execute()
      assert.deepEqual(old, [], `${table}: the expired row is gone`)
    }
    const live = await db.selectFrom('app_sessions').select('id').execute()
    assert.equal(live.length, before.length - 1, 'live sessions are kept')
  })
})
