import assert from 'node:assert/strict'
import type http from 'node:http'
import { after, before, beforeEach, describe, it } from 'node:test'
import type { Router } from '../../src/router/index.ts'
import { bearer, get, loginToken, memoryDeps, route, startRouter, users } from './helpers.ts'
import { rawRequest, recordingUpstream } from './raw.ts'

describe('router CORS preflights (nothing from an anonymous caller reaches a private app)', () => {
  let up: Awaited<ReturnType<typeof recordingUpstream>>
  let router: Router
  let port: number
  let deps: ReturnType<typeof memoryDeps>
  const origin = (sub: string, p = port, scheme = 'http') => `${scheme}://${sub}.localhost:${p}`
  const preflight = (sub: string, headers: http.OutgoingHttpHeaders, path = '/api') =>
    get(port, `${sub}.localhost:${port}`, path, headers, { method: 'OPTIONS' })
  const ask = (from: string) => ({
    origin: from,
    'access-control-request-method': 'PUT',
    'access-control-request-headers': 'content-type, x-trace',
  })

  before(async () => {
    up = await recordingUpstream()
    deps = memoryDeps(up.port, [
      route('priv'),
      route('sib'),
      route('club', { visibility: 'privileged', allowedEmails: [users.friend.email] }),
      route('pub', { visibility: 'public' }),
      route('alien', { ownerId: users.stranger.userId }),
      route('parked', { enabled: false }),
    ])
    ;({ router, port } = await startRouter(deps))
  })
  beforeEach(() => {
    up.seen.length = 0
  })
  after(async () => {
    await router.close()
    await up.close()
  })

  it("grants CORS to the owner's other apps on this router, at the router", async () => {
    for (const app of ['priv', 'club']) {
      const r = await preflight(app, ask(origin('sib')))
      assert.equal(r.status, 204)
      assert.equal(r.headers['access-control-allow-origin'], origin('sib'))
      assert.equal(r.headers['access-control-allow-credentials'], 'true')
      assert.equal(r.headers['access-control-allow-methods'], 'PUT')
      assert.equal(r.headers['access-control-allow-headers'], 'content-type, x-trace')
      assert.equal(r.headers['access-control-max-age'], '600')
      assert.match(r.headers.vary ?? '', /^Origin, Access-Control-Request-Method/)
    }
    assert.deepEqual(up.seen, [], 'the app saw nothing')
  })

  it('any other origin gets a 204 with no grant, and the app sees nothing', async () => {
    for (const from of [
      origin('alien'), // another owner's app
      origin('parked'), // the owner's, but switched off
      origin('nope'),
      origin('sib', port + 1), // another port on the same name
      origin('sib', port, 'https'),
      'http://evil.example',
      `http://sib.localhost.evil.example:${port}`,
      `${origin('sib')}/`,
      'null',
    ]) {
      const r = await preflight('priv', ask(from))
      assert.equal(r.status, 204, from)
      assert.equal(r.headers['access-control-allow-origin'], undefined, from)
      assert.equal(r.headers['access-control-allow-methods'], undefined, from)
      assert.match(r.headers.vary ?? '', /Origin/)
    }
    assert.deepEqual(up.seen, [])
  })

  it('requested headers that are not a token list are not granted', async () => {
    const r = await preflight('priv', {
      ...ask(origin('sib')),
      'access-control-request-headers': 'x-a, bad header',
    })
    assert.equal(r.headers['access-control-allow-origin'], origin('sib'))
    assert.equal(r.headers['access-control-allow-headers'], undefined)
  })

  it('a preflight with a query, a body and a bad key still never reaches the app', async () => {
    const body = 'GET /inner HTTP/1.1\r\nHost: priv.localhost\r\n\r\n'
    const r = await rawRequest(
      port,
      `OPTIONS /admin?delete=all HTTP/1.1\r\nHost: priv.localhost:${port}\r\n` +
        `Origin: http://evil.example\r\nAccess-Control-Request-Method: DELETE\r\n` +
        `Authorization: Bearer rb_${'x'.repeat(40)}\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    )
    assert.equal(r?.status, 204)
    assert.equal(r.headers['access-control-allow-origin'], undefined)
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.deepEqual(up.seen, [])
  })

  it('an OPTIONS that passes the access check is forwarded like any request', async () => {
    const byKey = await preflight('priv', { ...ask(origin('sib')), ...bearer(users.owner.key) })
    assert.equal(byKey.status, 200)
    const login = await get(
      port,
      `club.localhost:${port}`,
      `/__rigbox/login?token=${loginToken(deps, 'club', { user: users.friend })}`,
    )
    const cookie = (login.headers['set-cookie']?.[0] ?? '').split(';')[0]
    const byCookie = await preflight('club', { ...ask(origin('pub')), cookie })
    assert.equal(byCookie.status, 200)
    assert.deepEqual(
      up.seen.map((s) => [s.method, s.url]),
      [
        ['OPTIONS', '/api'],
        ['OPTIONS', '/api'],
      ],
    )
    // A signed-in user who is not allowed is answered by the router too.
    const stranger = await preflight('priv', {
      ...ask(origin('sib')),
      ...bearer(users.stranger.key),
    })
    assert.equal(stranger.status, 204)
    assert.equal(up.seen.length, 2)
  })

  it("a public app's preflights go to the app, which decides", async () => {
    const r = await preflight('pub', ask('http://evil.example'))
    assert.equal(r.status, 200)
    assert.deepEqual(
      up.seen.map((s) => [s.method, s.url, s.headers.origin]),
      [['OPTIONS', '/api', 'http://evil.example']],
    )
  })
})
