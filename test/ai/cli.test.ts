import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, makeApp, makeUser, tempDir, type TestApp } from '../helpers/app.ts'
import { rig } from '../helpers/cli.ts'

const KEY = `sk-proj-cli-${'Z'.repeat(30)}`

describe('rig credits and rig ai against a listening server', () => {
  let t: TestApp
  let env: Record<string, string>
  let userId: string
  before(async () => {
    t = await makeApp()
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = t.app.server.address() as { port: number }
    const u = await makeUser(t, 'ai-cli@example.com', 'free')
    userId = u.user.id
    env = {
      RIGBOX_CONFIG_DIR: tempDir(),
      RIGBOX_DATA_DIR: tempDir(),
      RIGBOX_API_URL: `http://127.0.0.1:${port}`,
      RIGBOX_API_KEY: u.key,
    }
    const ws = (await call(t.app, u.key, 'POST', '/api/v1/workspaces', { name: 'cli-ai' })).json
    await t.app.rigbox.usage.record({
      userId,
      workspaceId: ws.vm.id,
      workspaceName: 'cli-ai',
      mode: 'managed',
      provider: 'openrouter',
      model: 'openai/gpt-4o-mini',
      endpoint: 'chat.completions',
      inputTokens: 1200,
      outputTokens: 300,
      creditsMicro: 2_500_000,
      status: 'ok',
      httpStatus: 200,
      durationMs: 40,
    })
  })
  after(() => t.close())

  it('shows the balance', async () => {
    const r = await rig(['credits'], env)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /credits: 250\.00 of 250\.00 left \(AI mode: managed\)/)
    assert.match(r.stdout, /renews:\s+\d{4}-\d\d-\d\dT/)
    const json = JSON.parse((await rig(['--json', 'credits'], env)).stdout)
    assert.equal(json.total_micro, 250_000_000)
  })

  it('shows usage over a range and per workspace', async () => {
    const r = await rig(['ai', 'usage', '--range', '1h'], env)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /last 1h: 1 requests, 1200 input \/ 300 output tokens, 2\.50 credits/)
    assert.match(r.stdout, /^cli-ai\s+ws-\w+\s+1\s+1200\s+300\s+2\.50$/m)
    const bad = await rig(['ai', 'usage', '--range', '2d'], env)
    assert.equal(bad.code, 2)
  })

  it('configures a workspace: BYOK with the key from stdin, then managed, then off', async () => {
    const byok = await rig(
      ['ai', 'config', 'cli-ai', '--byok', 'openai', '--model', 'gpt-4o'],
      env,
      `${KEY}\n`,
    )
    assert.equal(byok.code, 0, byok.stderr)
    assert.match(byok.stdout, /mode:\s+byok \(byok_active\)/)
    assert.match(byok.stdout, /model:\s+gpt-4o/)
    assert.equal(byok.stdout.includes(KEY), false)
    const row = await t.app.rigbox.db
      .selectFrom('workspaces')
      .select('id')
      .where('name', '=', 'cli-ai')
      .executeTakeFirstOrThrow()
    assert.equal((await t.app.rigbox.aiSettings.forCall(row.id))?.apiKey, KEY)
    const show = await rig(['ai', 'config', 'cli-ai'], env)
    assert.match(show.stdout, /provider:\s+openai/)
    const managed = await rig(['ai', 'config', 'cli-ai', '--managed'], env)
    assert.match(managed.stdout, /mode:\s+managed \(managed_active\)/)
    assert.equal((await t.app.rigbox.aiSettings.forCall(row.id))?.apiKey, null)
    const off = await rig(['ai', 'config', 'cli-ai', '--off'], env)
    assert.match(off.stdout, /mode:\s+off \(disabled\)/)
    const both = await rig(['ai', 'config', 'cli-ai', '--off', '--managed'], env)
    assert.equal(both.code, 2)
    const noKey = await rig(['ai', 'config', 'cli-ai', '--byok', 'google'], env, '')
    assert.equal(noKey.code, 2)
    assert.match(noKey.stderr, /pipe your google API key/)
  })
})
