import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { buildApp } from '../../src/app.ts'
import { loadMasterKey, SecretBox, SecretDecryptError } from '../../src/ai/secrets.ts'
import { loadConfig } from '../../src/config/config.ts'
import { call, makeUser, tempDir, type TestApp } from '../helpers/app.ts'
import { FakeNode } from '../helpers/fake-node.ts'
import { referenceErrors } from '../helpers/reference.ts'

/** A key shaped like a real one, unique to this run so any sighting of it is ours. */
const KEY = `sk-ant-test-${Math.random().toString(36).slice(2)}-${'Q'.repeat(40)}`

/**
 * BYOK end to end through the API: the key goes in once and is seen again only by forCall (the
 * proxy) and the VM env; not in responses, the database file or the log.
 */
describe('BYOK keys', () => {
  let t: TestApp
  let logs = ''
  const responses: string[] = []
  let key: string
  let ws: string
  let other: string

  /** call() that keeps every response body for the final sweep. */
  const req = async (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, body?: unknown) => {
    const res = await call(t.app, key, method, url, body)
    responses.push(`${JSON.stringify(res.headers)}\n${res.body}`)
    return res
  }
  const config = (id = ws) => req('GET', `/api/v1/workspaces/${id}/ai-config`)
  const put = (body: unknown, id = ws) => req('PUT', `/api/v1/workspaces/${id}/ai-config`, body)
  const storedKey = async (id = ws) =>
    (
      await t.app.rigbox.db
        .selectFrom('workspace_ai')
        .select('api_key_enc')
        .where('workspace_id', '=', id)
        .executeTakeFirst()
    )?.api_key_enc ?? null

  before(async () => {
    const dataDir = tempDir()
    const config = loadConfig({ RIGBOX_DATA_DIR: dataDir, RIGBOX_NODE: 'none' })
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs += chunk.toString()
        done()
      },
    })
    // Every level, so the request and error logging paths are all exercised.
    const app = await buildApp({
      config,
      node: new FakeNode(),
      logger: { level: 'trace', stream },
    })
    await app.ready()
    const adminKey = fs.readFileSync(path.join(dataDir, 'admin.key'), 'utf8').trim()
    t = { app, config, dataDir, adminKey, close: () => app.close() }
    key = (await makeUser(t, 'byok@example.com', 'pro')).key
    const mk = async (name: string) =>
      (await req('POST', '/api/v1/workspaces', { name })).json.vm.id
    ws = await mk('byok-ws')
    other = await mk('byok-other')
  })
  after(() => t.close())

  it('stores a key for BYOK and reports byok_active, never the key', async () => {
    const res = await put({
      mode: 'byok',
      provider: 'anthropic',
      api_key: KEY,
      model: 'claude-3-5-haiku',
    })
    assert.equal(res.status, 200, res.body)
    assert.deepEqual(referenceErrors('WorkspaceAiConfigResponse', res.json), [])
    assert.deepEqual(
      { ...res.json, updated_at: undefined },
      {
        mode: 'byok',
        provider: 'anthropic',
        model: 'claude-3-5-haiku',
        status: 'byok_active',
        updated_at: undefined,
      },
    )
    assert.match(String(await storedKey()), /^v1\./)
    const got = await config()
    assert.deepEqual(got.json, res.json)
    const mode = await req('GET', `/api/v1/workspaces/${ws}/mode`)
    assert.deepEqual(mode.json, { mode: 'byok', source: 'workspace' })
    assert.deepEqual(referenceErrors('WorkspaceAiModeResponse', mode.json), [])
  })

  it('opens the key only for a call and the VM env', async () => {
    const s = await t.app.rigbox.aiSettings.forCall(ws)
    assert.equal(s?.apiKey, KEY)
    assert.equal(s?.provider, 'anthropic')
    assert.equal(s?.mode, 'byok')
    assert.deepEqual(await t.app.rigbox.aiSettings.vmEnvFor(ws), {
      RIGBOX_AI_MODE: 'byok',
      ANTHROPIC_API_KEY: KEY,
    })
    assert.equal(await t.app.rigbox.aiSettings.forCall('ws-nosuchws'), null)
  })

  it('refuses a ciphertext moved to another workspace', async () => {
    const sealed = (await storedKey()) as string
    await put({ mode: 'byok', provider: 'anthropic' }, other)
    await t.app.rigbox.db
      .updateTable('workspace_ai')
      .set({ api_key_enc: sealed })
      .where('workspace_id', '=', other)
      .execute()
    const s = await t.app.rigbox.aiSettings.forCall(other)
    assert.equal(s?.mode, 'byok')
    assert.equal(s?.apiKey, null)
    const box = new SecretBox(loadMasterKey(t.config))
    assert.equal(box.open(sealed, ws), KEY)
    assert.throws(() => box.open(sealed, other), SecretDecryptError)
    assert.throws(() => box.open(sealed.replace(/^v1\./, 'v2.'), ws), SecretDecryptError)
    const flipped = Buffer.from(sealed.slice(3), 'base64url')
    flipped[flipped.length - 1] ^= 1
    assert.throws(() => box.open(`v1.${flipped.toString('base64url')}`, ws), SecretDecryptError)
    await put({ api_key: null }, other)
  })

  it('keeps the key out of error answers too', async () => {
    const bad = [
      { mode: 'byok', api_key: KEY, colour: 'blue' },
      { mode: 'managed', api_key: KEY },
      { mode: 'byok', api_key: `${KEY} ` + 'x' },
      { mode: 'byok', api_key: `${KEY}\u0000` },
      { mode: 'sideways', api_key: KEY },
      { api_key: 12345678 },
    ]
    for (const body of bad) {
      const res = await put(body)
      assert.equal(res.status, 400, JSON.stringify(body))
      assert.equal(res.json.error.code, 'VALIDATION_ERROR')
    }
    const raw = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/workspaces/${ws}/ai-config`,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      payload: `{"api_key": "${KEY}",`,
    })
    responses.push(raw.body)
    assert.equal(raw.statusCode, 400)
    // Nothing of the refused requests was applied.
    assert.equal((await config()).json.status, 'byok_active')
  })

  it('PUT keeps omitted fields, clears null ones and refuses unknown ones', async () => {
    const before = (await config()).json
    const model = await put({ model: 'claude-3-7-sonnet' })
    assert.deepEqual(
      { ...model.json, updated_at: 0 },
      { ...before, model: 'claude-3-7-sonnet', updated_at: 0 },
    )
    // null: back to the owner's default.
    const cleared = await put({ model: null })
    assert.equal(cleared.json.model, 'rigbox/default')
    assert.equal(cleared.json.status, 'byok_active')
    const unknown = await put({ model: 'x-1', temperature: 2 })
    assert.equal(unknown.status, 400)
    assert.match(unknown.json.error.message, /temperature|unrecognized/i)
    assert.equal((await config()).json.model, 'rigbox/default')
    // Flat surface: the same operation.
    const flat = await call(t.app, key, 'GET', `/api/workspaces/${ws}/ai-config`)
    assert.equal(flat.json.status, 'byok_active')
  })

  it('drops the key with a change of provider, and on switching to managed', async () => {
    const other = await put({ provider: 'openai' })
    assert.equal(other.json.status, 'invalid_missing_key')
    assert.equal(await storedKey(), null)
    assert.equal((await t.app.rigbox.aiSettings.forCall(ws))?.apiKey, null)
    await put({ provider: 'anthropic', api_key: KEY })
    assert.equal((await config()).json.status, 'byok_active')
    const managed = await put({ mode: 'managed' })
    assert.equal(managed.json.status, 'managed_active')
    assert.equal(await storedKey(), null)
    const managedEnv = await t.app.rigbox.aiSettings.vmEnvFor(ws)
    assert.equal(managedEnv.ANTHROPIC_API_KEY, 'managed-by-rigbox')
    // Back to BYOK without a key: not usable until one is given.
    const noKey = await put({ mode: 'byok' })
    assert.equal(noKey.json.status, 'invalid_missing_key')
    assert.equal((await put({ api_key: KEY })).json.status, 'byok_active')
    assert.equal((await put({ api_key: null })).json.status, 'invalid_missing_key')
    assert.equal((await put({ api_key: KEY })).json.status, 'byok_active')
  })

  it('sets and clears the workspace mode through /mode', async () => {
    const off = await req('PUT', `/api/v1/workspaces/${ws}/mode`, { mode: 'off' })
    assert.deepEqual(off.json, { mode: 'off', source: 'workspace' })
    assert.equal((await config()).json.status, 'disabled')
    assert.deepEqual(await t.app.rigbox.aiSettings.vmEnvFor(ws), { RIGBOX_AI_MODE: 'off' })
    // off keeps the key for a return to BYOK; {} changes nothing.
    assert.notEqual(await storedKey(), null)
    const same = await req('PUT', `/api/v1/workspaces/${ws}/mode`, {})
    assert.deepEqual(same.json, { mode: 'off', source: 'workspace' })
    const inherit = await req('PUT', `/api/v1/workspaces/${ws}/mode`, { mode: null })
    assert.deepEqual(inherit.json, { mode: 'managed', source: 'user_default' })
    assert.deepEqual(referenceErrors('WorkspaceAiModeResponse', inherit.json), [])
    // Clearing the override to a managed default is a switch to managed: the key goes.
    assert.equal(await storedKey(), null)
    const byok = await req('PUT', `/api/v1/workspaces/${ws}/mode`, { mode: 'byok' })
    assert.equal(byok.json.mode, 'byok')
    assert.equal((await config()).json.status, 'invalid_missing_key')
    assert.equal((await put({ api_key: KEY })).json.status, 'byok_active')
  })

  it('never shows the key in a response, the database file or the log', async () => {
    // Everything else that describes the workspace or the account, read once more.
    for (const url of [
      `/api/v1/workspaces/${ws}`,
      '/api/v1/workspaces',
      `/api/v1/workspaces/${ws}/ai-config`,
      '/api/v1/users/me/ai-defaults',
      '/api/v1/users/me/credits',
      '/api/v1/users/me/limits',
    ]) {
      assert.equal((await req('GET', url)).status, 200, url)
    }
    assert.equal((await t.app.rigbox.aiSettings.forCall(ws))?.apiKey, KEY)
    const seen = responses.filter((r) => r.includes(KEY) || r.includes(KEY.slice(12, 30)))
    assert.deepEqual(seen, [])
    assert.ok(responses.length > 30)

    const files = ['', '-wal', '-shm']
      .map((suffix) => `${t.config.dbPath}${suffix}`)
      .filter((f) => fs.existsSync(f))
    assert.ok(files.length >= 2, `${files}`)
    const db = Buffer.concat(files.map((f) => fs.readFileSync(f)))
    assert.ok(db.includes('byok-ws'), 'the files hold the data (a check that can fail)')
    assert.equal(db.includes(KEY), false)
    assert.equal(db.includes(Buffer.from(KEY, 'utf16le')), false)

    // Something that logs a body would be redacted, too.
    t.app.log.info({ body: { api_key: KEY }, api_key: KEY }, 'a careless log line')
    assert.match(logs, /incoming request/)
    assert.match(logs, /a careless log line/)
    assert.equal(logs.includes(KEY), false)
  })
})

describe('the master key', () => {
  it('is made 0600 in the data dir at first start, or taken from the environment', () => {
    const dataDir = tempDir()
    const config = loadConfig({ RIGBOX_DATA_DIR: dataDir, RIGBOX_NODE: 'none' })
    const made = loadMasterKey(config)
    const file = path.join(dataDir, 'ai.key')
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    assert.deepEqual(loadMasterKey(config), made)
    const env = Buffer.alloc(32, 7).toString('base64')
    const fromEnv = loadConfig({
      RIGBOX_DATA_DIR: tempDir(),
      RIGBOX_NODE: 'none',
      RIGBOX_AI_MASTER_KEY: env,
    })
    assert.deepEqual(loadMasterKey(fromEnv), Buffer.alloc(32, 7))
    assert.equal(fs.existsSync(path.join(fromEnv.dataDir, 'ai.key')), false)
    // Sealed under one key, nothing opens under another.
    const sealed = new SecretBox(made).seal('secret', 'ws-a')
    assert.throws(() => new SecretBox(Buffer.alloc(32, 7)).open(sealed, 'ws-a'), SecretDecryptError)
  })
})
