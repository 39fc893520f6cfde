import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { issueLoginToken, verifyLoginToken, type Router } from '../../src/router/index.ts'
import { safeNext } from '../../src/router/login.ts'
import { issueSession } from '../../src/router/tokens.ts'
import { get, memoryDeps, route, startRouter, startUpstream, users } from './helpers.ts'

const secret = crypto.randomBytes(32)
const owner = { userId: users.owner.userId, email: users.owner.email }

describe('login tokens', () => {
  it('verify for their subdomain until they expire', () => {
    const now = 1_700_000_000_000
    const t = issueLoginToken(secret, { subdomain: 'app', ...owner, ttlMs: 60_000, now })
    assert.match(t, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
    assert.deepEqual(verifyLoginToken(secret, t, 'app', now + 59_000), {
      subdomain: 'app',
      ...owner,
      expiresAt: now + 60_000,
    })
    assert.equal(verifyLoginToken(secret, t, 'app', now + 60_000), null, 'expired')
    assert.equal(verifyLoginToken(secret, t, 'other', now), null, 'other host')
    assert.equal(verifyLoginToken(crypto.randomBytes(32), t, 'app', now), null, 'other secret')
  })

  it('refuse tampering and sessions presented as login tokens', () => {
    const t = issueLoginToken(secret, { subdomain: 'app', ...owner, ttlMs: 60_000 })
    const [body, sig] = t.split('.')
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>
    const forged = Buffer.from(JSON.stringify({ ...claims, u: 'u_stranger' })).toString('base64url')
    assert.equal(verifyLoginToken(secret, `${forged}.${sig}`, 'app'), null)
    assert.equal(verifyLoginToken(secret, `${body}.${sig.slice(0, -2)}`, 'app'), null)
    assert.equal(verifyLoginToken(secret, 'garbage', 'app'), null)
    const session = issueSession(secret, { subdomain: 'app', ...owner })
    assert.equal(verifyLoginToken(secret, session.value, 'app'), null)
  })

  it('only same-origin paths may follow a login', () => {
    assert.equal(safeNext('/dash?x=1#y'), '/dash?x=1#y')
    for (const bad of ['//evil.com', '/\\evil.com', 'https://evil.com', 'evil', '/a\nb', null])
      assert.equal(safeNext(bad), '/')
  })
})

describe('router login flow', () => {
  let up: Awaited<ReturnType<typeof startUpstream>>
  let router: Router
  let port: number
  let deps: ReturnType<typeof memoryDeps>
  const link = (sub: string, over: { ttlMs?: number; secret?: Buffer; userId?: string } = {}) =>
    issueLoginToken(over.secret ?? deps.sessionSecret, {
      subdomain: sub,
      userId: over.userId ?? owner.userId,
      email: owner.email,
      ttlMs: over.ttlMs ?? 60_000,
    })

  before(async () => {
    up = await startUpstream()
    deps = memoryDeps(up.port, [route('priv'), route('other')])
    ;({ router, port } = await startRouter(deps))
  })
  after(async () => {
    await router.close()
    await up.close()
  })

  it('login link → host-only HttpOnly cookie → 200 with the cookie, which never goes upstream', async () => {
    const r = await get(port, 'priv.localhost', `/__rigbox/login?token=${link('priv')}&next=/dash`)
    assert.equal(r.status, 302)
    assert.equal(r.headers.location, '/dash')
    assert.equal(r.headers['cache-control'], 'no-store')
    const setCookie = r.headers['set-cookie']?.[0] ?? ''
    assert.match(
      setCookie,
      /^rigbox_session=[^;]+; Path=\/; Max-Age=43\d{3}; HttpOnly; SameSite=Lax$/,
    )
    assert.doesNotMatch(setCookie, /Domain|Secure/i)
    const cookie = setCookie.split(';')[0]

    const ok = await get(port, 'priv.localhost', '/dash', { cookie: `${cookie}; theme=dark` })
    assert.equal(ok.status, 200)
    assert.equal((ok.json().headers as Record<string, string>).cookie, 'theme=dark')
    // The same cookie is worthless on another app's host.
    assert.equal((await get(port, 'other.localhost', '/', { cookie })).status, 403)
  })

  it('an open redirect in next falls back to /', async () => {
    const r = await get(
      port,
      'priv.localhost',
      `/__rigbox/login?token=${link('priv')}&next=//evil.com`,
    )
    assert.equal(r.headers.location, '/')
  })

  it('refuses expired, forged and other-host tokens', async () => {
    const expired = link('priv', { ttlMs: 0 })
    const forged = link('priv', { secret: crypto.randomBytes(32) })
    for (const [why, t, host] of [
      ['expired', expired, 'priv'],
      ['forged', forged, 'priv'],
      ['other host', link('other'), 'priv'],
      ['missing', '', 'priv'],
    ]) {
      const r = await get(port, `${host}.localhost`, `/__rigbox/login?token=${t}`, {
        accept: 'application/json',
      })
      assert.equal(r.status, 403, why)
      assert.equal((r.json().error as { code: string }).code, 'INVALID_LOGIN_LINK')
      assert.equal(r.headers['set-cookie'], undefined)
    }
  })

  it('logout clears the cookie', async () => {
    const r = await get(port, 'priv.localhost', '/__rigbox/logout')
    assert.equal(r.status, 302)
    assert.match(r.headers['set-cookie']?.[0] ?? '', /^rigbox_session=; .*Max-Age=0/)
  })

  it('a stopped app answers 404 even to a valid link', async () => {
    deps.routes.get('other')!.enabled = false
    try {
      assert.equal(
        (await get(port, 'other.localhost', `/__rigbox/login?token=${link('other')}`)).status,
        404,
      )
    } finally {
      deps.routes.get('other')!.enabled = true
    }
  })
})
