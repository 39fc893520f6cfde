import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { UsageRecord } from '../../src/ai/types.ts'
import { UsageStore } from '../../src/ai/usage.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { referenceErrors } from '../helpers/reference.ts'

const MIN = 60_000

/** The ledger's views over the API, from rows recorded at known times before now. */
describe('AI usage', () => {
  let t: TestApp
  let key: string
  let otherKey: string
  let userId: string
  let wsA: string
  let wsB: string
  let gone: string
  /** What the test recorded in the last hour: the figures every view must add up to. */
  const lastHour = { requests: 0, input: 0, output: 0, micro: 0 }

  const record = async (agoMs: number, row: Partial<UsageRecord> & { workspaceId: string }) => {
    const at = new Date(Date.now() - agoMs)
    const store = new UsageStore(t.app.rigbox.db, { now: () => at })
    const full: UsageRecord = {
      userId,
      workspaceName: 'ledger-name',
      mode: 'managed',
      provider: 'openrouter',
      model: 'openai/gpt-4o-mini',
      endpoint: 'chat.completions',
      inputTokens: 100,
      outputTokens: 20,
      creditsMicro: 1_500_000,
      status: 'ok',
      httpStatus: 200,
      durationMs: 30,
      ...row,
    }
    await store.record(full)
    if (agoMs < 55 * MIN) {
      lastHour.requests++
      lastHour.input += full.inputTokens
      lastHour.output += full.outputTokens
      lastHour.micro += full.creditsMicro
    }
  }

  before(async () => {
    t = await makeApp()
    const u = await makeUser(t, 'usage@example.com', 'pro')
    key = u.key
    userId = u.user.id
    otherKey = (await makeUser(t, 'usage-other@example.com', 'pro')).key
    const mk = async (name: string) =>
      (await call(t.app, key, 'POST', '/api/v1/workspaces', { name })).json.vm.id as string
    wsA = await mk('alpha')
    wsB = await mk('beta')
    gone = await mk('gone')
    await record(2 * MIN, { workspaceId: wsA })
    await record(3 * MIN, { workspaceId: wsA, inputTokens: 7, outputTokens: 3, creditsMicro: 1 })
    await record(20 * MIN, { workspaceId: wsB, creditsMicro: 4_000_000 })
    // BYOK calls are recorded, never charged.
    await record(40 * MIN, {
      workspaceId: wsB,
      mode: 'byok',
      provider: 'anthropic',
      creditsMicro: 0,
    })
    await record(5 * 3600_000, { workspaceId: wsA, creditsMicro: 2_000_000 })
    await record(3 * 24 * 3600_000, { workspaceId: gone, workspaceName: 'gone-as-recorded' })
    await record(40 * 24 * 3600_000, { workspaceId: wsA, creditsMicro: 99_000_000 })
    await call(t.app, key, 'DELETE', `/api/v1/workspaces/${gone}`)
    await t.app.rigbox.reconciler.idle()
    assert.equal(await t.app.rigbox.store.get(gone), undefined)
  })
  after(() => t.close())

  it('shows 30 days per day and per workspace, as the reference GetAiUsageResponse', async () => {
    for (const base of ['/api/v1', '/api']) {
      const res = await call(t.app, key, 'GET', `${base}/users/me/ai-usage`)
      assert.equal(res.status, 200)
      assert.deepEqual(referenceErrors('GetAiUsageResponse', res.json), [])
      const { window_days, daily, by_workspace } = res.json
      assert.equal(window_days, 30)
      assert.equal(daily.length, 30)
      assert.equal(daily.at(-1).day, new Date().toISOString().slice(0, 10))
      const sum = (k: string) => daily.reduce((n: number, d: Record<string, number>) => n + d[k], 0)
      // The 40-day-old row is outside the window; the others (6 calls) are in.
      assert.equal(sum('requests'), 6)
      assert.equal(sum('credits_micro'), 1_500_000 + 1 + 4_000_000 + 0 + 2_000_000 + 1_500_000)
      // Largest spend first; names as the workspaces are called now (the ledger's if deleted).
      assert.deepEqual(
        by_workspace.map((w: Record<string, unknown>) => [w.workspace_name, w.requests, w.credits]),
        [
          ['beta', 2, 4],
          ['alpha', 3, 3.500001],
          ['gone-as-recorded', 1, 1.5],
        ],
      )
      assert.equal(by_workspace[0].workspace_id, wsB)
    }
  })

  it('gives series per step over each range, summing to the summary', async () => {
    const steps = { '1h': 60, '6h': 300, '24h': 900, '7d': 3600 } as const
    for (const [range, step] of Object.entries(steps)) {
      const m = await call(t.app, key, 'GET', `/api/v1/users/me/ai-usage/metrics?range=${range}`)
      assert.equal(m.status, 200)
      assert.deepEqual(referenceErrors('AiUsageMetricsResponse', m.json), [])
      assert.equal(m.json.step_seconds, step)
      assert.equal(m.json.workspace_id, null)
      const s = await call(
        t.app,
        key,
        'GET',
        `/api/users/me/ai-usage/metrics/summary?range=${range}`,
      )
      assert.deepEqual(referenceErrors('AiUsageMetricsSummaryResponse', s.json), [])
      const total = (k: string) =>
        m.json.series[k].reduce((n: number, p: { v: number }) => n + p.v, 0)
      assert.equal(total('requests'), s.json.total_requests, range)
      assert.equal(total('input_tokens'), s.json.input_tokens, range)
      assert.equal(total('output_tokens'), s.json.output_tokens, range)
      assert.ok(Math.abs(total('credits') - s.json.total_credits) < 1e-9, range)
      const ts = m.json.series.requests.map((p: { t: number }) => p.t)
      assert.ok(ts.every((x: number, i: number) => i === 0 || x - ts[i - 1] === step))
      assert.ok(ts.at(-1) <= Date.now() / 1000 && ts.at(-1) > Date.now() / 1000 - step)
    }
    const hour = await call(t.app, key, 'GET', '/api/v1/users/me/ai-usage/metrics/summary?range=1h')
    assert.deepEqual(
      [
        hour.json.total_requests,
        hour.json.input_tokens,
        hour.json.output_tokens,
        hour.json.total_credits_micro,
      ],
      [lastHour.requests, lastHour.input, lastHour.output, lastHour.micro],
    )
    const day = await call(t.app, key, 'GET', '/api/v1/users/me/ai-usage/metrics/summary')
    assert.equal(day.json.range, '24h')
    assert.equal(day.json.total_requests, 5)
    const week = await call(t.app, key, 'GET', '/api/v1/users/me/ai-usage/metrics/summary?range=7d')
    assert.equal(week.json.total_requests, 6)
    const bad = await call(t.app, key, 'GET', '/api/v1/users/me/ai-usage/metrics?range=2d')
    assert.equal(bad.status, 400)
  })

  it("scopes a workspace's metrics to it, and hides it from other users", async () => {
    const url = `/api/v1/workspaces/${wsB}/ai-usage/metrics`
    const m = await call(t.app, key, 'GET', `${url}?range=1h`)
    assert.deepEqual(referenceErrors('AiUsageMetricsResponse', m.json), [])
    assert.equal(m.json.workspace_id, wsB)
    const requests = m.json.series.requests.reduce((n: number, p: { v: number }) => n + p.v, 0)
    assert.equal(requests, 2)
    const s = await call(t.app, key, 'GET', `/api/v1/workspaces/${wsB}/ai-usage/metrics/summary`)
    assert.deepEqual(referenceErrors('AiUsageMetricsSummaryResponse', s.json), [])
    assert.deepEqual(
      [s.json.workspace_id, s.json.total_requests, s.json.total_credits],
      [wsB, 2, 4],
    )
    for (const path of [`${url}?range=1h`, `/api/v1/workspaces/${wsB}/ai-usage/metrics/summary`]) {
      const foreign = await call(t.app, otherKey, 'GET', path)
      assert.equal(foreign.status, 404)
      assert.equal(foreign.json.error.code, 'WORKSPACE_NOT_FOUND')
    }
    const theirs = await call(t.app, otherKey, 'GET', '/api/v1/users/me/ai-usage')
    assert.deepEqual(theirs.json.by_workspace, [])
  })
})
