import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import Fastify from 'fastify'
import { addMonths, CreditStore } from '../../src/ai/credits.ts'
import { MICRO_PER_CREDIT } from '../../src/ai/types.ts'
import { openDatabase, type Db } from '../../src/db/database.ts'
import { ApiError } from '../../src/http/errors.ts'
import { installErrorHandling } from '../../src/http/error-handler.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { referenceErrors } from '../helpers/reference.ts'

const CREDIT = MICRO_PER_CREDIT

/** Credits against a real SQLite file, from two connections as two server processes would. */
describe('AI credits', () => {
  let t: TestApp
  let second: Db
  let clock: Date
  let storeA: CreditStore
  let storeB: CreditStore
  before(async () => {
    t = await makeApp()
    second = await openDatabase(t.config.dbPath)
    clock = new Date('2025-01-31T10:00:00.000Z')
    storeA = new CreditStore(t.app.rigbox.db, { now: () => clock })
    storeB = new CreditStore(second, { now: () => clock })
  })
  after(async () => {
    await second.destroy()
    await t.close()
  })

  const newUser = async (email: string, plan: 'free' | 'pro' = 'free') =>
    (await makeUser(t, email, plan)).user.id

  it('starts a user at the plan allowance on first use (free 250, pro 2000)', async () => {
    const free = await storeA.balance(await newUser('first-free@example.com'))
    assert.equal(free.total_micro, 250 * CREDIT)
    assert.equal(free.remaining_micro, 250 * CREDIT)
    assert.equal(free.period_start, clock.toISOString())
    // Jan 31 + 1 month: February has no 31st, so its last day.
    assert.equal(free.renews_at, '2025-02-28T10:00:00.000Z')
    const pro = await storeB.balance(await newUser('first-pro@example.com', 'pro'))
    assert.equal(pro.total_micro, 2000 * CREDIT)
  })

  it('50 concurrent reserves against a nearly empty balance never overspend', async () => {
    const user = await newUser('race@example.com')
    // Spend all but 1 credit.
    await storeA.settle(await storeA.reserve(user, 249 * CREDIT), 249 * CREDIT)
    const ask = 30_000 // 0.03 credits: 33 fit in 1 credit, the 34th does not
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? storeA : storeB).reserve(user, ask)),
    )
    const won = results.filter((r) => r.status === 'fulfilled')
    const lost = results.filter((r) => r.status === 'rejected')
    assert.equal(won.length, 33)
    for (const r of lost) {
      assert.ok(r.reason instanceof ApiError)
      assert.equal(r.reason.code, 'CREDITS_EXHAUSTED')
    }
    const b = await storeA.balance(user)
    assert.equal(b.reserved_micro, 33 * ask)
    assert.ok(b.used_micro + b.reserved_micro <= b.total_micro)
    // Settling charges exactly what each call cost, at most what it held, and frees the rest.
    for (const [i, r] of won.entries()) {
      const reservation = (r as PromiseFulfilledResult<{ userId: string; micro: number }>).value
      await (i % 2 ? storeA : storeB).settle(reservation, i === 0 ? 10 * ask : 1_000)
    }
    const settled = await storeA.balance(user)
    assert.equal(settled.reserved_micro, 0)
    assert.equal(settled.used_micro, 249 * CREDIT + ask + 32 * 1_000)
  })

  it('a call that costs nothing is served from an exhausted balance', async () => {
    const user = await newUser('free-model@example.com')
    await storeA.settle(await storeA.reserve(user, 250 * CREDIT), 250 * CREDIT)
    await assert.rejects(storeA.reserve(user, 1), { code: 'CREDITS_EXHAUSTED' })
    const r = await storeA.reserve(user, 0)
    await storeA.settle(r, 0)
    assert.equal((await storeA.balance(user)).used_micro, 250 * CREDIT)
  })

  it('answers an exhausted balance 402 saying what is left, what was needed and when it renews', async () => {
    const user = await newUser('broke@example.com')
    await storeA.settle(await storeA.reserve(user, 249.5 * CREDIT), 249.5 * CREDIT)
    // The API's own error handler, as the bridge's proxy answers with it.
    const app = Fastify({ logger: false })
    installErrorHandling(app)
    app.get('/call', async () => storeA.reserve(user, 2 * CREDIT))
    const res = await app.inject({ method: 'GET', url: '/call' })
    await app.close()
    assert.equal(res.statusCode, 402)
    assert.deepEqual(res.json(), {
      error: {
        code: 'CREDITS_EXHAUSTED',
        message:
          'AI credits exhausted: 0.50 credits left of 250.00 credits this period, this call needs up to 2.00 credits; the monthly allowance renews at 2025-02-28T10:00:00.000Z (or use a cheaper model, rigbox/free, or bring your own key)',
        details: {
          remaining_micro: 0.5 * CREDIT,
          needed_micro: 2 * CREDIT,
          total_micro: 250 * CREDIT,
          renews_at: '2025-02-28T10:00:00.000Z',
        },
      },
    })
  })

  describe('the monthly period', () => {
    it('renews the allowance a month on, carrying over what is left of grants', async () => {
      clock = new Date('2025-01-31T10:00:00.000Z')
      const user = await newUser('monthly@example.com')
      await storeA.grant(user, 100 * CREDIT)
      // 300 spent: the 250 allowance, then 50 of the 100 granted.
      await storeA.settle(await storeA.reserve(user, 300 * CREDIT), 300 * CREDIT)
      clock = new Date('2025-02-28T09:59:59.999Z')
      assert.equal((await storeA.balance(user)).remaining_micro, 50 * CREDIT)
      clock = new Date('2025-02-28T10:00:00.000Z')
      const feb = await storeA.balance(user)
      assert.equal(feb.period_start, '2025-02-28T10:00:00.000Z')
      assert.equal(feb.used_micro, 0)
      assert.equal(feb.granted_micro, 50 * CREDIT)
      assert.equal(feb.total_micro, 300 * CREDIT)
      // Unused allowance does not carry over; an untouched grant does, whole.
      clock = new Date('2025-03-28T10:00:00.000Z')
      const mar = await storeA.balance(user)
      assert.equal(mar.granted_micro, 50 * CREDIT)
      assert.equal(mar.total_micro, 300 * CREDIT)
      // Months without a call: the period is the one now falls in.
      clock = new Date('2025-07-01T00:00:00.000Z')
      assert.equal((await storeA.balance(user)).period_start, '2025-06-28T10:00:00.000Z')
    })

    it('renews once however many callers find it due at the same moment', async () => {
      clock = new Date('2025-01-10T00:00:00.000Z')
      const user = await newUser('double-renew@example.com')
      await storeA.grant(user, 10 * CREDIT)
      await storeA.settle(await storeA.reserve(user, 255 * CREDIT), 255 * CREDIT)
      const stale = await storeA.account(user)
      clock = new Date('2025-02-10T00:00:00.000Z')
      // 20 renewals of the same read, over both connections: the period fence lets one through.
      const renewed = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? storeA : storeB).renew(stale, clock)),
      )
      assert.equal(renewed.filter(Boolean).length, 1)
      // A charge after the renewal survives a late renewal from the stale read.
      await storeA.settle(await storeA.reserve(user, 7 * CREDIT), 7 * CREDIT)
      assert.equal(await storeB.renew(stale, clock), false)
      const b = await storeA.balance(user)
      assert.equal(b.used_micro, 7 * CREDIT)
      assert.equal(b.granted_micro, 5 * CREDIT)
      assert.equal(b.period_start, '2025-02-10T00:00:00.000Z')
      // And many balance reads racing at the next boundary agree on one renewal.
      clock = new Date('2025-03-10T00:00:00.000Z')
      const reads = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? storeA : storeB).balance(user)),
      )
      assert.ok(reads.every((r) => r.period_start === '2025-03-10T00:00:00.000Z'))
      assert.equal((await storeA.balance(user)).granted_micro, 5 * CREDIT)
    })

    it('adds months as calendar months, the last day when the month is shorter', () => {
      const at = (s: string, n: number) => addMonths(new Date(s), n).toISOString()
      assert.equal(at('2024-01-31T00:00:00.000Z', 1), '2024-02-29T00:00:00.000Z')
      assert.equal(at('2025-12-15T23:00:00.000Z', 1), '2026-01-15T23:00:00.000Z')
      assert.equal(at('2025-08-31T12:00:00.000Z', 1), '2025-09-30T12:00:00.000Z')
    })
  })

  describe('over the API', () => {
    let admin: string
    let user: { key: string; user: { id: string } }
    before(async () => {
      admin = t.adminKey
      user = await makeUser(t, 'api-credits@example.com', 'pro')
    })

    it('shows the balance as the reference AiCredits, also in /users/me/limits', async () => {
      for (const base of ['/api/v1', '/api']) {
        const res = await call(t.app, user.key, 'GET', `${base}/users/me/credits`)
        assert.equal(res.status, 200)
        assert.deepEqual(referenceErrors('AiCredits', res.json), [])
        assert.equal(res.json.total, 2000)
        assert.equal(res.json.remaining_micro, 2000 * CREDIT)
        assert.equal(res.json.mode, 'managed')
      }
      const limits = await call(t.app, user.key, 'GET', '/api/v1/users/me/limits')
      assert.deepEqual(referenceErrors('GetUserLimitsResponse', limits.json), [])
      assert.deepEqual(referenceErrors('AiCredits', limits.json.credits), [])
      assert.equal(limits.json.limits.ai_credits_monthly, 2000)
      assert.equal(limits.json.credits.remaining, 2000)
    })

    it('lets an administrator grant credits, and nobody else', async () => {
      const url = `/api/v1/admin/users/${user.user.id}/credits`
      const res = await call(t.app, admin, 'POST', url, { credits: 12.5 })
      assert.equal(res.status, 200, res.body)
      assert.equal(res.json.user_id, user.user.id)
      assert.equal(res.json.granted_micro, 12.5 * CREDIT)
      assert.equal(res.json.total, 2012.5)
      const mine = await call(t.app, user.key, 'GET', '/api/v1/users/me/credits')
      assert.equal(mine.json.remaining, 2012.5)
      assert.equal((await call(t.app, user.key, 'POST', url, { credits: 1 })).status, 403)
      const nobody = await call(t.app, admin, 'POST', '/api/v1/admin/users/usr-nobody/credits', {
        credits: 1,
      })
      assert.equal(nobody.status, 404)
      for (const credits of [0, -5, 1e-9, 'ten', 2_000_000]) {
        const bad = await call(t.app, admin, 'POST', url, { credits })
        assert.equal(bad.status, 400, `${credits}: ${bad.body}`)
      }
      assert.equal((await call(t.app, admin, 'POST', url.replace('/v1', ''), {})).status, 404)
    })
  })
})
