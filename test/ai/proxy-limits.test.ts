import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import Anthropic from '@anthropic-ai/sdk'
import { countTokens, decode, encode } from 'gpt-tokenizer'
import { estimateInput } from '../../src/ai/proxy/meter.ts'
import OpenAI from 'openai'
import { PLACEHOLDER_KEY } from '../../src/ai/vm-env.ts'
import { startAiBridge, type AiBridge, type Workspace } from '../helpers/ai-bridge.ts'
import { REPLY } from '../helpers/ai-upstream.ts'
import { call } from '../helpers/app.ts'

const sdk = (ws: Workspace) => ({
  openai: new OpenAI({ apiKey: PLACEHOLDER_KEY, baseURL: `${ws.url}/v1`, maxRetries: 0 }),
  anthropic: new Anthropic({ apiKey: PLACEHOLDER_KEY, baseURL: ws.url, maxRetries: 0 }),
})
const ask = (o: OpenAI, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) =>
  o.chat.completions.create({
    model: 'test/small',
    messages: [{ role: 'user', content: 'hi' }],
    ...extra,
  })
type OpenAiError = InstanceType<typeof OpenAI.APIError>
type AnthropicError = InstanceType<typeof Anthropic.APIError>

describe('AI proxy: credits and the concurrency cap', () => {
  let env: AiBridge
  let ws: Workspace
  before(async () => {
    env = await startAiBridge({ env: { RIGBOX_AI_MAX_CONCURRENT: '2' } })
    ws = await env.workspace('ai-limits')
  })
  after(() => env.close())

  it('answers 402 in each shape when the balance is empty, without calling upstream', async () => {
    await env.setRemaining(0)
    const { openai, anthropic } = sdk(ws)
    const posts = () => env.upstream.requests.filter((r) => r.method === 'POST').length
    const calls = posts()
    await assert.rejects(ask(openai), (err: OpenAiError) => {
      assert.equal(err.status, 402)
      assert.equal(err.code, 'CREDITS_EXHAUSTED')
      assert.equal(err.type, 'insufficient_quota')
      assert.match(err.message, /AI credits exhausted: 0\.00 credits left/)
      return true
    })
    await assert.rejects(
      anthropic.messages.create({
        model: 'test/small',
        max_tokens: 10,
        messages: [{ role: 'user', content: 'x' }],
      }),
      (err: AnthropicError) =>
        err.status === 402 && err.type === 'billing_error' && err.errorCode === 'CREDITS_EXHAUSTED',
    )
    assert.equal(posts(), calls)
    const rows = await env.waitLedger(2)
    assert.deepEqual(
      rows.map((r) => [r.status, r.http_status, r.credits_micro]),
      [
        ['refused', 402, 0],
        ['refused', 402, 0],
      ],
    )
    // Free models still work with nothing left.
    const free = await ask(openai, { model: 'test/free' })
    assert.equal(free.choices[0].message.content, REPLY)
  })

  it('sizes max_tokens to what the balance covers, so the call cannot overspend', async () => {
    const { openai } = sdk(ws)
    const n = (await env.ledger()).length
    const messages = [{ role: 'user' as const, content: 'hi' }]
    // The prompt's estimate at 100 micro-credits a token, plus 5 completion tokens at 200.
    const prompt = estimateInput('chat.completions', { messages }) * 100
    await env.setRemaining(prompt + 5 * 200 + 150)
    const res = await ask(openai, { messages })
    const sent = env.upstream.requests.at(-1)!
    assert.equal(sent.body?.max_tokens, 5)
    assert.equal(res.choices[0].message.content, decode(encode(REPLY).slice(0, 5)))
    assert.equal(res.choices[0].finish_reason, 'length')
    const row = (await env.waitLedger(n + 1)).at(-1)!
    assert.equal(row.output_tokens, 5)
    assert.equal(await env.remaining(), prompt + 5 * 200 + 150 - row.credits_micro)
    // Two choices may each take every token: the same balance now covers half as many.
    await env.setRemaining(prompt + 5 * 200 + 150)
    await ask(openai, { messages, n: 2 })
    assert.equal(env.upstream.requests.at(-1)!.body?.max_tokens, 2)
  })

  it('caps the calls in flight per user with 429 and Retry-After', async () => {
    await env.setRemaining(10_000_000)
    env.upstream.knobs.chunkDelayMs = 30
    env.upstream.maxInFlight = 0
    try {
      const { openai } = sdk(ws)
      const streams = await Promise.all(
        [1, 2].map(() =>
          openai.chat.completions.create({
            model: 'test/small',
            messages: [{ role: 'user', content: 'slow' }],
            stream: true,
          }),
        ),
      )
      const third = await fetch(`${ws.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test/small', messages: [{ role: 'user', content: 'x' }] }),
      })
      assert.equal(third.status, 429)
      assert.equal(third.headers.get('retry-after'), '1')
      const body = (await third.json()) as { error: { code: string; type: string } }
      assert.deepEqual([body.error.code, body.error.type], ['AI_BUSY', 'rate_limit_error'])
      // Another user is not held up by this one.
      const stranger = await env.otherUser('ai-stranger@example.com')
      const theirs = await env.workspace('ai-stranger', stranger)
      assert.equal((await ask(sdk(theirs).openai)).choices[0].message.content, REPLY)
      for (const s of streams) for await (const _ of s);
      assert.ok(env.upstream.maxInFlight <= 3)
      assert.equal((await ask(openai)).choices[0].message.content, REPLY)
    } finally {
      env.upstream.knobs.chunkDelayMs = 0
    }
  })
})

describe('AI proxy: modes, BYOK and configuration', () => {
  let env: AiBridge
  before(async () => {
    env = await startAiBridge()
  })
  after(() => env.close())

  const setConfig = async (ws: Workspace, body: object) => {
    const res = await call(
      env.t.app,
      env.user.key,
      'PUT',
      `/api/v1/workspaces/${ws.id}/ai-config`,
      body,
    )
    assert.equal(res.status, 200, res.body)
  }

  it('answers 403 AI_DISABLED when the workspace is off, and serves it again once on', async () => {
    const ws = await env.workspace('ai-off')
    await setConfig(ws, { mode: 'off' })
    const { openai, anthropic } = sdk(ws)
    await assert.rejects(
      ask(openai),
      (e: OpenAiError) => e.status === 403 && e.code === 'AI_DISABLED',
    )
    await assert.rejects(
      anthropic.messages.create({
        model: 'test/small',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'x' }],
      }),
      (e: AnthropicError) => e.status === 403 && e.type === 'permission_error',
    )
    await assert.rejects(openai.models.list(), (e: OpenAiError) => e.status === 403)
    // Every call is a ledger row, the refused ones too (never charged).
    const refused = (await env.ledger()).filter((r) => r.workspace_id === ws.id)
    assert.deepEqual(
      refused.map((r) => [r.mode, r.status, r.http_status, r.credits_micro]),
      [
        ['off', 'refused', 403, 0],
        ['off', 'refused', 403, 0],
      ],
    )
    // A mode change applies to the next call.
    await setConfig(ws, { mode: 'managed' })
    assert.equal((await ask(openai)).choices[0].message.content, REPLY)
  })

  it('sends BYOK calls to the provider with the workspace key, records them, charges nothing', async () => {
    const ws = await env.workspace('ai-byok')
    const own = 'sk-proj-USERS-OWN-KEY-0123456789'
    await setConfig(ws, { mode: 'byok', provider: 'openai', api_key: own })
    const { openai, anthropic } = sdk(ws)
    const before = await env.remaining()
    const n = (await env.ledger()).length
    const res = await ask(openai, { model: 'gpt-any' })
    assert.equal(res.choices[0].message.content, REPLY)
    const sent = env.upstream.requests.at(-1)!
    assert.equal(sent.headers.authorization, `Bearer ${own}`)
    assert.equal(sent.body?.model, 'gpt-any')
    assert.equal(sent.body?.max_tokens, undefined)
    const row = (await env.waitLedger(n + 1)).at(-1)!
    assert.deepEqual(
      [row.mode, row.provider, row.status, row.credits_micro, row.output_tokens],
      ['byok', 'openai', 'ok', 0, countTokens(REPLY)],
    )
    assert.equal(await env.remaining(), before)
    // The other provider's shape is a clear 400; nothing goes upstream.
    await assert.rejects(
      anthropic.messages.create({
        model: 'm',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'x' }],
      }),
      (e: AnthropicError) => e.status === 400 && /own openai key \(BYOK\)/.test(e.message),
    )
    assert.equal(env.upstream.requests.at(-1), sent)

    const claude = await env.workspace('ai-byok-anthropic')
    const antKey = 'sk-ant-USERS-OWN-KEY-0123456789'
    await setConfig(claude, { mode: 'byok', provider: 'anthropic', api_key: antKey })
    const msg = await sdk(claude).anthropic.messages.create({
      model: 'claude-whatever',
      max_tokens: 50,
      messages: [{ role: 'user', content: 'hi' }],
    })
    assert.equal(msg.usage.output_tokens, countTokens(REPLY))
    assert.equal(env.upstream.requests.at(-1)!.headers['x-api-key'], antKey)
    await assert.rejects(
      ask(sdk(claude).openai),
      (e: OpenAiError) => e.status === 400 && /\/v1\/messages/.test(e.message),
    )
  })

  it('answers 403 for BYOK without a key, naming how to set one', async () => {
    const ws = await env.workspace('ai-byok-nokey')
    await setConfig(ws, { mode: 'byok', provider: 'openai' })
    await assert.rejects(
      ask(sdk(ws).openai),
      (e: OpenAiError) =>
        e.status === 403 && e.code === 'AI_DISABLED' && /has none set/.test(e.message),
    )
  })

  it('refuses bad bodies in the OpenAI shape: not JSON, not an object, too large', async () => {
    const ws = await env.workspace('ai-bodies')
    const post = (body: string, type = 'application/json') =>
      fetch(`${ws.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': type },
        body,
      })
    for (const [body, status] of [
      ['{nope', 400],
      ['[1,2]', 400],
      [' '.repeat(9 * 2 ** 20), 413],
    ] as const) {
      const res = await post(body)
      assert.equal(res.status, status)
      const json = (await res.json()) as { error: { message: string; type: string; code: string } }
      assert.equal(json.error.type, 'invalid_request_error')
      assert.ok(json.error.code && json.error.message)
    }
    // A vision payload (a 3 MiB inline image) is well within bounds.
    const image = {
      type: 'image_url',
      image_url: { url: `data:image/png;base64,${'A'.repeat(3 << 20)}` },
    }
    const vision = await post(
      JSON.stringify({ model: 'test/small', messages: [{ role: 'user', content: [image] }] }),
    )
    assert.equal(vision.status, 200)
    // `curl -d` sends form-urlencoded; the body is JSON all the same.
    const curlish = await post(
      JSON.stringify({ model: 'test/small', messages: [{ role: 'user', content: 'x' }] }),
      'application/x-www-form-urlencoded',
    )
    assert.equal(curlish.status, 200)
  })
})

describe('AI proxy: no upstream configured', () => {
  let env: AiBridge
  before(async () => {
    env = await startAiBridge({ unconfigured: true })
  })
  after(() => env.close())

  it('says which variable to set, in each shape', async () => {
    const ws = await env.workspace('ai-none')
    const { openai, anthropic } = sdk(ws)
    await assert.rejects(
      ask(openai),
      (e: OpenAiError) =>
        e.status === 503 &&
        e.code === 'AI_NOT_CONFIGURED' &&
        /RIGBOX_AI_UPSTREAM_URL/.test(e.message),
    )
    await assert.rejects(
      openai.models.list(),
      (e: OpenAiError) => e.status === 503 && /RIGBOX_AI_UPSTREAM_URL/.test(e.message),
    )
    await assert.rejects(
      anthropic.messages.create({
        model: 'm',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'x' }],
      }),
      (e: AnthropicError) => e.status === 503 && /RIGBOX_AI_ANTHROPIC_URL/.test(e.message),
    )
    assert.equal(env.upstream.requests.length, 0)
  })
})

describe('AI proxy: many calls at once on a nearly empty balance', () => {
  let env: AiBridge
  before(async () => {
    env = await startAiBridge({ env: { RIGBOX_AI_MAX_CONCURRENT: '64' } })
  })
  after(() => env.close())

  it('never overspends: the holds, not luck, bound what 50 concurrent calls take', async () => {
    const ws = await env.workspace('ai-race')
    const { openai } = sdk(ws)
    const messages = [{ role: 'user' as const, content: 'race' }]
    const bound = estimateInput('chat.completions', { messages }) * 100 + 20 * 200
    const start = 3 * bound + 10
    await env.setRemaining(start)
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => ask(openai, { messages, max_tokens: 20 })),
    )
    const ok = results.filter((r) => r.status === 'fulfilled').length
    const failed = results.flatMap((r) =>
      r.status === 'rejected' ? [(r.reason as OpenAiError).status] : [],
    )
    assert.ok(ok >= 3, `${ok} calls went through`)
    assert.ok(failed.length > 0 && failed.every((s) => s === 402), `statuses ${failed}`)
    const rows = await env.waitLedger(50)
    const charged = rows.reduce((n, r) => n + r.credits_micro, 0)
    assert.equal(rows.filter((r) => r.status === 'ok').length, ok)
    const left = await env.remaining()
    assert.ok(left >= 0)
    assert.equal(left, start - charged)
  })
})
