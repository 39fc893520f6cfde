import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { parseHost } from '../../src/router/host.ts'
import type { Router } from '../../src/router/index.ts'
import { bearer, get, memoryDeps, route, startRouter, startUpstream, users } from './helpers.ts'

describe('router host parsing', () => {
  it('takes one DNS label under the domain, with or without a port', () => {
    assert.deepEqual(parseHost('myapp.localhost:8081', 'localhost'), {
      subdomain: 'myapp',
      port: 8081,
    })
    assert.deepEqual(parseHost('MyApp.LocalHost', 'localhost'), { subdomain: 'myapp', port: null })
    assert.deepEqual(parseHost('a-1.apps.example.com.', 'apps.example.com'), {
      subdomain: 'a-1',
      port: null,
    })
    for (const bad of [
      'localhost',
      '.localhost',
      'a.b.localhost',
      'a.localhostx',
      'a.otherlocalhost',
      '-a.localhost',
      'a_b.localhost',
      '127.0.0.1:8081',
      '[::1]:8081',
      'a.localhost:99999',
      'a.localhost:',
      '',
    ])
      assert.equal(parseHost(bad, 'localhost'), null, bad)
  })
})

describe('router access control', () => {
  let up: Awaited<ReturnType<typeof startUpstream>>
  let router: Router
  let port: number
  const deps = () =>
    memoryDeps(up.port, [
      route('pub', { visibility: 'public' }),
      route('priv', { visibility: 'private' }),
      route('club', { visibility: 'privileged', allowedEmails: [users.friend.email] }),
      route('off', { visibility: 'public', enabled: false }),
    ])

  before(async () => {
    up = await startUpstream()
    ;({ router, port } = await startRouter(deps()))
  })
  after(async () => {
    await router.close()
    await up.close()
  })

  it('serves a public app anonymously', async () => {
    const r = await get(port, `pub.localhost:${port}`, '/hello?x=1')
    assert.equal(r.status, 200)
    assert.equal(r.json().url, '/hello?x=1')
    assert.equal(
      r.json().headers && (r.json().headers as Record<string, string>).host,
      `pub.localhost:${port}`,
    )
  })

  it('private: anonymous 403 with a hint, owner 200, other user 403', async () => {
    const anon = await get(port, 'priv.localhost', '/', { accept: 'application/json' })
    assert.equal(anon.status, 403)
    assert.deepEqual(Object.keys(anon.json().error as object), ['code', 'message'])
    const page = await get(port, 'priv.localhost', '/', { accept: 'text/html' })
    assert.equal(page.status, 403)
    assert.match(page.headers['content-type'] ?? '', /text\/html/)
    assert.match(page.body, /login link/)
    assert.equal((await get(port, 'priv.localhost', '/', bearer(users.owner.key))).status, 200)
    assert.equal((await get(port, 'priv.localhost', '/', bearer(users.friend.key))).status, 403)
  })

  it('privileged: listed e-mail 200, owner 200, other user 403, anonymous 403', async () => {
    assert.equal((await get(port, 'club.localhost', '/', bearer(users.friend.key))).status, 200)
    assert.equal((await get(port, 'club.localhost', '/', bearer(users.owner.key))).status, 200)
    assert.equal((await get(port, 'club.localhost', '/', bearer(users.stranger.key))).status, 403)
    assert.equal((await get(port, 'club.localhost', '/')).status, 403)
  })

  it('refuses a platform-shaped key it does not know with 401', async () => {
    const r = await get(port, 'priv.localhost', '/', bearer(`rb_${'x'.repeat(40)}`))
    assert.equal(r.status, 401)
    assert.equal((r.json().error as { code: string }).code, 'UNAUTHORIZED')
  })

  it('never forwards the platform key or the router cookie; app credentials pass', async () => {
    const r = await get(port, 'priv.localhost', '/', {
      ...bearer(users.owner.key),
      cookie: 'a=1; rigbox_session=forged; b=2',
    })
    assert.equal(r.status, 200)
    const seen = r.json().headers as Record<string, string>
    assert.equal(seen.authorization, undefined)
    assert.equal(seen.cookie, 'a=1; b=2')
    assert.ok(!JSON.stringify(r.json()).includes(users.owner.key))
    // The app cannot overwrite the router's cookie; its own cookies pass.
    assert.deepEqual(r.headers['set-cookie'], ['app=1; Path=/'])

    const app = await get(port, 'pub.localhost', '/', { authorization: 'Bearer app.jwt.token' })
    assert.equal(
      (app.json().headers as Record<string, string>).authorization,
      'Bearer app.jwt.token',
    )
  })

  it('stopped route and unknown subdomain or domain answer 404', async () => {
    for (const host of ['off.localhost', 'nope.localhost', 'pub.example.com', 'x.pub.localhost']) {
      const r = await get(port, host, '/')
      assert.equal(r.status, 404, host)
      assert.equal((r.json().error as { code: string }).code, 'APP_NOT_FOUND')
    }
    const page = await get(port, 'nope.localhost', '/', { accept: 'text/html,*/*' })
    assert.match(page.body, /No such app/)
  })

  it('answers an anonymous CORS preflight itself (see cors.test.ts); a bare OPTIONS is 403', async () => {
    const pre = await get(
      port,
      'priv.localhost',
      '/api',
      {
        origin: 'http://other.localhost',
        'access-control-request-method': 'PUT',
      },
      { method: 'OPTIONS' },
    )
    assert.equal(pre.status, 204)
    // Not the app's answer (it allows PUT from anywhere), and no grant for an unknown origin.
    assert.equal(pre.headers['access-control-allow-methods'], undefined)
    assert.equal(pre.headers['access-control-allow-origin'], undefined)
    const bare = await get(port, 'priv.localhost', '/api', {}, { method: 'OPTIONS' })
    assert.equal(bare.status, 403)
  })

  it('502 when the workspace is not running or the port is closed', async () => {
    const d = memoryDeps(up.port, [route('p', { visibility: 'public' })])
    const r2 = await startRouter(d)
    try {
      d.targets.set('p', { error: 'not_running' })
      let r = await get(r2.port, 'p.localhost', '/')
      assert.equal(r.status, 502)
      assert.equal((r.json().error as { code: string }).code, 'WORKSPACE_NOT_RUNNING')
      d.targets.set('p', { error: 'port_closed' })
      r = await get(r2.port, 'p.localhost', '/')
      assert.equal((r.json().error as { code: string }).code, 'APP_PORT_CLOSED')
    } finally {
      await r2.router.close()
    }
  })
})
