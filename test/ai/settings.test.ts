import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { loadMasterKey, SecretBox } from '../../src/ai/secrets.ts'
import { SettingsStore, vmEnv } from '../../src/ai/settings.ts'
import { call, makeApp, makeUser, type TestApp } from '../helpers/app.ts'
import { referenceErrors } from '../helpers/reference.ts'

describe('vmEnv', () => {
  it('points SDKs at the bridge with placeholder keys when managed', () => {
    assert.deepEqual(vmEnv({ mode: 'managed', provider: null, apiKey: null }), {
      RIGBOX_AI_MODE: 'managed',
      OPENAI_BASE_URL: 'http://172.16.0.1:9090/v1',
      OPENROUTER_BASE_URL: 'http://172.16.0.1:9090/v1',
      ANTHROPIC_BASE_URL: 'http://172.16.0.1:9090',
      OPENAI_API_KEY: 'managed-by-rigbox',
      OPENROUTER_API_KEY: 'managed-by-rigbox',
      ANTHROPIC_API_KEY: 'managed-by-rigbox',
    })
  })

  it("gives BYOK the provider's own key variable and no base URLs; off only the mode", () => {
    const byok = (provider: 'openai' | 'anthropic' | 'google') =>
      vmEnv({ mode: 'byok', provider, apiKey: 'k-123' })
    assert.deepEqual(byok('openai'), { RIGBOX_AI_MODE: 'byok', OPENAI_API_KEY: 'k-123' })
    assert.deepEqual(byok('anthropic'), { RIGBOX_AI_MODE: 'byok', ANTHROPIC_API_KEY: 'k-123' })
    assert.deepEqual(byok('google'), { RIGBOX_AI_MODE: 'byok', GOOGLE_API_KEY: 'k-123' })
    assert.deepEqual(vmEnv({ mode: 'byok', provider: 'openai', apiKey: null }), {
      RIGBOX_AI_MODE: 'byok',
    })
    assert.deepEqual(vmEnv({ mode: 'off', provider: null, apiKey: 'k' }), { RIGBOX_AI_MODE: 'off' })
  })
})

describe('AI settings over the API', () => {
  let t: TestApp
  let key: string
  let userId: string
  let otherKey: string
  let wsOwn: string
  let wsInherits: string
  before(async () => {
    t = await makeApp()
    const u = await makeUser(t, 'settings@example.com', 'free')
    key = u.key
    userId = u.user.id
    otherKey = (await makeUser(t, 'settings-other@example.com')).key
    const mk = async (name: string) =>
      (await call(t.app, key, 'POST', '/api/v1/workspaces', { name })).json.vm.id as string
    wsOwn = await mk('own-mode')
    wsInherits = await mk('inherits')
    await call(t.app, key, 'PUT', `/api/v1/workspaces/${wsOwn}/ai-config`, {
      mode: 'managed',
      model: 'openai/gpt-4o',
    })
  })
  after(() => t.close())

  it('reads and updates the account defaults; null restores the built-in one', async () => {
    const got = await call(t.app, key, 'GET', '/api/v1/users/me/ai-defaults')
    assert.deepEqual(referenceErrors('GetAiDefaultsResponse', got.json), [])
    assert.deepEqual(got.json, {
      default_mode: 'managed',
      default_provider: 'openai',
      default_model: 'rigbox/default',
    })
    const put = await call(t.app, key, 'PUT', '/api/users/me/ai-defaults', {
      default_provider: 'google',
      default_model: 'gemini-2.0-flash',
    })
    assert.deepEqual(put.json, {
      default_mode: 'managed',
      default_provider: 'google',
      default_model: 'gemini-2.0-flash',
    })
    const cfg = await call(t.app, key, 'GET', `/api/v1/workspaces/${wsInherits}/ai-config`)
    assert.deepEqual([cfg.json.provider, cfg.json.model], ['google', 'gemini-2.0-flash'])
    const own = await call(t.app, key, 'GET', `/api/v1/workspaces/${wsOwn}/ai-config`)
    assert.equal(own.json.model, 'openai/gpt-4o')
    const reset = await call(t.app, key, 'PUT', '/api/v1/users/me/ai-defaults', {
      default_model: null,
    })
    assert.deepEqual(reset.json.default_model, 'rigbox/default')
    assert.equal(reset.json.default_provider, 'google')
    for (const body of [{ default_colour: 'x' }, { default_mode: 'sometimes' }]) {
      const bad = await call(t.app, key, 'PUT', '/api/v1/users/me/ai-defaults', body)
      assert.equal(bad.status, 400, JSON.stringify(body))
    }
  })

  it('sets the account AI mode, which workspaces without their own follow', async () => {
    const res = await call(t.app, key, 'PUT', '/api/v1/users/me/ai-mode', { mode: 'off' })
    assert.equal(res.status, 200)
    assert.deepEqual(referenceErrors('AiCredits', res.json), [])
    assert.equal(res.json.mode, 'off')
    assert.equal(res.json.total, 250)
    const inherits = await call(t.app, key, 'GET', `/api/v1/workspaces/${wsInherits}/mode`)
    assert.deepEqual(inherits.json, { mode: 'off', source: 'user_default' })
    const own = await call(t.app, key, 'GET', `/api/v1/workspaces/${wsOwn}/mode`)
    assert.deepEqual(own.json, { mode: 'managed', source: 'workspace' })
    assert.equal((await t.app.rigbox.aiSettings.forCall(wsInherits))?.mode, 'off')
    assert.equal((await call(t.app, key, 'GET', '/api/v1/users/me/credits')).json.mode, 'off')
    const bad = await call(t.app, key, 'PUT', '/api/v1/users/me/ai-mode', { mode: 'maybe' })
    assert.equal(bad.status, 400)
    await call(t.app, key, 'PUT', '/api/v1/users/me/ai-mode', { mode: 'managed' })
  })

  it("answers another user's workspace 404 and changes nothing", async () => {
    for (const [method, path, body] of [
      ['GET', 'ai-config', undefined],
      ['PUT', 'ai-config', { mode: 'off' }],
      ['GET', 'mode', undefined],
      ['PUT', 'mode', { mode: 'off' }],
    ] as const) {
      const res = await call(t.app, otherKey, method, `/api/v1/workspaces/${wsOwn}/${path}`, body)
      assert.equal(res.status, 404, `${method} ${path}`)
      assert.equal(res.json.error.code, 'WORKSPACE_NOT_FOUND')
    }
    const own = await call(t.app, key, 'GET', `/api/v1/workspaces/${wsOwn}/mode`)
    assert.deepEqual(own.json, { mode: 'managed', source: 'workspace' })
  })

  it('tells the VM side which workspaces a change affects, and survives its failure', async () => {
    const changed: string[] = []
    let fail = false
    const lines: string[] = []
    const settings = new SettingsStore({
      db: t.app.rigbox.db,
      accounts: t.app.rigbox.credits,
      secrets: new SecretBox(loadMasterKey(t.config)),
      log: pino({ level: 'warn' }, { write: (l: string) => lines.push(l) }),
      onSettingsChanged: async (id) => {
        if (fail) throw new Error('node unreachable')
        changed.push(id)
      },
    })
    // A mode change reaches only the workspaces that follow the account's mode.
    await settings.updateDefaults(userId, { default_mode: 'byok' })
    assert.deepEqual(changed, [wsInherits])
    changed.length = 0
    await settings.updateDefaults(userId, { default_mode: 'byok' })
    assert.deepEqual(changed, [], 'no change, no notice')
    await settings.updateConfig(wsOwn, { model: 'openai/gpt-4o-mini' })
    assert.deepEqual(changed, [wsOwn])
    changed.length = 0
    // The model default: wsOwn has its own model, so only the other one.
    await settings.updateDefaults(userId, { default_model: 'x/y' })
    assert.deepEqual(changed, [wsInherits])
    fail = true
    const after = await settings.updateDefaults(userId, { default_mode: 'managed' })
    assert.equal(after.default_mode, 'managed')
    assert.match(lines.join(''), /live update of the VM failed/)
  })
})
