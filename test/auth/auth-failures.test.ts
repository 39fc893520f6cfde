import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { clientSubject } from '../../src/auth/guard.ts'
import { makeApp, makeUser, type TestApp } from '../helpers/app.ts'

const LIMIT = 5
const WINDOW_MS = 1500

/** Finding 11: failed authentication was never rate-limited. */
describe('failed authentication is limited per client address', () => {
  let t: TestApp
  let key: string
  before(async () => {
    t = await makeApp({
      env: {
        RIGBOX_RATE_LIMIT_AUTH_FAILURES: String(LIMIT),
        RIGBOX_RATE_LIMIT_WINDOW_MS: String(WINDOW_MS),
      },
    })
    key = (await makeUser(t, 'auth-limit@example.com')).key
  })
  after(() => t.close())

  /** A request from `address` with the given Authorization header (none when undefined). */
  const from = async (address: string, authorization?: string) => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/api/v1/users/me',
      remoteAddress: address,
      headers: authorization === undefined ? {} : { authorization },
    })
    return { status: res.statusCode, json: res.json(), headers: res.headers }
  }
  const guess = (n: number) => `Bearer rb_${String(n).padStart(40, '0')}`

  it('answers 429 with Retry-After once an address has failed too often, even for a good key', async () => {
    const attacker = '203.0.113.7'
    for (let i = 0; i < LIMIT; i++) {
      const res = await from(attacker, i % 2 ? guess(i) : 'Basic Zm9vOmJhcg==')
      assert.equal(res.status, 401, `failure ${i + 1} is an ordinary 401`)
    }
    const limited = await from(attacker, guess(99))
    assert.equal(limited.status, 429)
    assert.equal(limited.json.error.code, 'RATE_LIMITED')
    assert.equal(typeof limited.json.error.message, 'string')
    const retryAfter = Number(limited.headers['retry-after'])
    assert.ok(retryAfter >= 1 && retryAfter <= Math.ceil(WINDOW_MS / 1000), String(retryAfter))
    // The limit holds before the key is looked at: a right guess learns nothing either.
    assert.equal((await from(attacker, `Bearer ${key}`)).status, 429)

    // Other addresses, with good keys or bad, are unaffected.
    const other = await from('198.51.100.20', `Bearer ${key}`)
    assert.equal(other.status, 200)
    assert.equal(other.json.user.email, 'auth-limit@example.com')
    assert.equal((await from('198.51.100.21', guess(1))).status, 401)

    // The window turns over and the address may try again.
    await sleep(WINDOW_MS + 100)
    assert.equal((await from(attacker, `Bearer ${key}`)).status, 200)
  })

  it('does not count requests that present no key at all', async () => {
    const browser = '203.0.113.8'
    for (let i = 0; i < LIMIT * 3; i++) assert.equal((await from(browser)).status, 401)
    assert.equal((await from(browser, `Bearer ${key}`)).status, 200)
  })

  it('counts an IPv6 client by its /64 and a v4-mapped client as its IPv4 address', async () => {
    assert.equal(clientSubject('2001:db8:1:2:aaaa::1'), clientSubject('2001:db8:1:2::ffff:7'))
    assert.notEqual(clientSubject('2001:db8:1:2::1'), clientSubject('2001:db8:1:3::1'))
    assert.equal(clientSubject('::ffff:192.0.2.1'), clientSubject('192.0.2.1'))
    assert.notEqual(clientSubject('192.0.2.1'), clientSubject('192.0.2.2'))
    assert.equal(clientSubject('::1'), 'ip6:0:0:0:0::/64')

    for (let i = 0; i < LIMIT; i++) {
      assert.equal((await from(`2001:db8:5:6::${i + 1}`, guess(i))).status, 401)
    }
    assert.equal((await from('2001:db8:5:6:ffff::9', `Bearer ${key}`)).status, 429)
    assert.equal((await from('2001:db8:5:7::1', `Bearer ${key}`)).status, 200)
  })
})
