import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { issueLoginToken, verifyLoginToken, type Router } from '../../src/router/index.ts'
import { safeNext } from '../../src/router/login.ts'
import { issueSession } from '../../src/router/tokens.ts'
import {
  bearer,
  get,
  loginToken,
  memoryDeps,
  route,
  startRouter,
  startUpstream,
  users,
} from './helpers.ts'

const secret = crypto.randomBytes(32)
const owner = { userId: users.owner.userId, email: users.owner.email }
const id = 'lnk-1'

describe('login tokens', () => {
  it('verify for their subdomain until they expire', () => {
    const now = 1_700_000_000_000
    const t = issueLoginToken(secret, { id, subdomain: 'app', ...owner, ttlMs: 60_000, now })
    assert.match(t, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
    assert.deepEqual(verifyLoginToken(secret, t, 'app', now + 59_000), {
      id,
      subdomain: 'app',
      ...owner,
      expiresAt: now + 60_000,
    })
    assert.equal(verifyLoginToken(secret, t, 'app', now + 60_000), null, 'expired')
    assert.equal(verifyLoginToken(secret, t, 'other', now), null, 'other host')
    assert.equal(verifyLoginToken(crypto.randomBytes(32), t, 'app', now), null, 'other secret')
  })

  it('refuse tampering and sessions presented as login tokens', () => {
    const t = issueLoginToken(secret, { id, subdomain: 'app', ...owner, ttlMs: 60_000 })
    const [body, sig] = t.split('.')
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>
    const forged = Buffer.from(JSON.stringify({ ...claims, u: 'u_stranger' })).toString('base64url')
    assert.equal(verifyLoginToken(secret, `${forged}.${sig}`, 'app'), null)
    assert.equal(verifyLoginToken(secret, `${body}.${sig.slice(0, -2)}`, 'app'), null)
    assert.equal(verifyLoginToken(secret, 'garbage', 'app'), null)
    const session = issueSession(secret, { id, subdomain: 'app', ...owner, expiresAt: Infinity })
    assert.equal(verifyLoginToken(secret, session, 'app'), null)
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
  const link = (sub: string, over: Parameters<typeof loginToken>[2] = {}) =>
    loginToken(deps, sub, over)
  /** Visits a fresh link and returns the session cookie (`rigbox_session=…`). */
  const signIn = async (sub: string, user = users.owner) => {
    const r = await get(port, `${sub}.localhost`, `/__rigbox/login?token=${link(sub, { user })}`)
    assert.equal(r.status, 302)
    return (r.headers['set-cookie']?.[0] ?? '').split(';')[0]
  }

  before(async () => {
    up = await startUpstream()
    deps = memoryDeps(up.port, [
      route('priv'),
      route('other'),
      route('club', { visibility: 'privileged', allowedEmails: [users.friend.email] }),
    ])
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

  it('a login link works once: a second visit, even a concurrent one, is refused', async () => {
    const token = link('priv')
    const first = await get(port, 'priv.localhost', `/__rigbox/login?token=${token}`)
    assert.equal(first.status, 302)
    const again = await get(port, 'priv.localhost', `/__rigbox/login?token=${token}`, {
      accept: 'application/json',
    })
    assert.equal(again.status, 403)
    assert.equal((again.json().error as { code: string }).code, 'INVALID_LOGIN_LINK')
    assert.equal(again.headers['set-cookie'], undefined)

    const racing = link('priv')
    const both = await Promise.all(
      [1, 2, 3].map(() => get(port, 'priv.localhost', `/__rigbox/login?token=${racing}`)),
    )
    assert.deepEqual(both.map((r) => r.status).sort(), [302, 403, 403])
    // A HEAD (a link checker) does not use a link up.
    const headed = link('priv')
    const head = await get(
      port,
      'priv.localhost',
      `/__rigbox/login?token=${headed}`,
      {},
      {
        method: 'HEAD',
      },
    )
    assert.equal(head.status, 404)
    assert.equal((await get(port, 'priv.localhost', `/__rigbox/login?token=${headed}`)).status, 302)
  })

  it('logout ends the session on the server: the old cookie is refused afterwards', async () => {
    const cookie = await signIn('priv')
    assert.equal((await get(port, 'priv.localhost', '/', { cookie })).status, 200)
    const r = await get(port, 'priv.localhost', '/__rigbox/logout', { cookie })
    assert.equal(r.status, 302)
    assert.match(r.headers['set-cookie']?.[0] ?? '', /^rigbox_session=; .*Max-Age=0/)
    assert.equal((await get(port, 'priv.localhost', '/', { cookie })).status, 403)
  })

  it("revoking the key that made the link ends that link's sessions, and unused links", async () => {
    const cookie = await signIn('club', users.friend)
    const unused = link('club', { user: users.friend })
    assert.equal((await get(port, 'club.localhost', '/', { cookie })).status, 200)
    const key = deps.keys.get(users.friend.key)!
    deps.keys.delete(users.friend.key)
    try {
      assert.equal((await get(port, 'club.localhost', '/', { cookie })).status, 403)
      const late = await get(port, 'club.localhost', `/__rigbox/login?token=${unused}`)
      assert.equal(late.status, 403)
      // The owner's own key and sessions are untouched.
      assert.equal((await get(port, 'club.localhost', '/', bearer(users.owner.key))).status, 200)
    } finally {
      deps.keys.set(users.friend.key, key)
    }
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
