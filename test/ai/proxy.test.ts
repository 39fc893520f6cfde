import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import Anthropic from '@anthropic-ai/sdk'
import { countTokens } from 'gpt-tokenizer'
import OpenAI from 'openai'
import { PLACEHOLDER_KEY } from '../../src/ai/vm-env.ts'
import {
  MANAGED_KEY,
  ANTHROPIC_KEY,
  startAiBridge,
  type AiBridge,
  type Workspace,
} from '../helpers/ai-bridge.ts'
import { REPLY } from '../helpers/ai-upstream.ts'

/**
 * The AI proxy on the VM bridge with the official SDKs as a VM's code would use them (pointed at
 * the bridge with the placeholder key the VM gets), against a real local upstream; metering read
 * back from the real ledger and credit stores.
 */
describe('AI proxy: SDK calls through the bridge', () => {
  let env: AiBridge
  let ws: Workspace
  let openai: OpenAI
  let anthropic: Anthropic
  const FULL = 2000 * 1_000_000
  // test/small: $1e-6 per prompt token, $2e-6 per completion token = 100 and 200 micro-credits.
  const cost = (input: number, output: number) => Math.ceil(input * 100 + output * 200)
  const replyTokens = countTokens(REPLY)

  before(async () => {
    env = await startAiBridge()
    ws = await env.workspace('ai-sdk')
    openai = new OpenAI({ apiKey: PLACEHOLDER_KEY, baseURL: `${ws.url}/v1`, maxRetries: 0 })
    anthropic = new Anthropic({ apiKey: PLACEHOLDER_KEY, baseURL: ws.url, maxRetries: 0 })
  })
  after(() => env.close())

  const lastUpstream = () => env.upstream.requests.at(-1)!

  it('answers a chat completion, charges its usage and records it', async () => {
    const before = await env.remaining()
    const res = await openai.chat.completions.create({
      model: 'test/small',
      messages: [{ role: 'user', content: 'Tell me about foxes.' }],
    })
    assert.equal(res.choices[0].message.content, REPLY)
    assert.equal(res.usage?.completion_tokens, replyTokens)
    const sent = lastUpstream()
    assert.equal(sent.path, '/v1/chat/completions')
    assert.equal(sent.headers.authorization, `Bearer ${MANAGED_KEY}`)
    // No max_tokens asked: the proxy set what the balance covers, capped at the default.
    assert.equal(sent.body?.max_tokens, 4096)
    const [row] = await env.waitLedger(1)
    assert.deepEqual(
      {
        workspace: [row.workspace_id, row.workspace_name],
        mode: row.mode,
        model: row.model,
        endpoint: row.endpoint,
        status: row.status,
        http: row.http_status,
        tokens: [row.input_tokens, row.output_tokens],
      },
      {
        workspace: [ws.id, 'ai-sdk'],
        mode: 'managed',
        model: 'test/small',
        endpoint: 'chat.completions',
        status: 'ok',
        http: 200,
        tokens: [res.usage!.prompt_tokens, replyTokens],
      },
    )
    assert.equal(row.credits_micro, cost(res.usage!.prompt_tokens, replyTokens))
    assert.equal(await env.remaining(), before - row.credits_micro)
  })

  it('streams, reading the usage chunk it asked for without passing it on', async () => {
    const stream = await openai.chat.completions.create({
      model: 'rigbox/fast',
      messages: [{ role: 'user', content: 'Stream please.' }],
      stream: true,
    })
    let text = ''
    let chunks = 0
    for await (const chunk of stream) {
      chunks++
      assert.ok(
        chunk.choices.length > 0,
        'an empty-choices chunk (the usage chunk) reached the client',
      )
      assert.ok(!chunk.usage, 'usage reached a client that did not ask for it')
      text += chunk.choices[0].delta.content ?? ''
    }
    assert.equal(text, REPLY)
    assert.equal(chunks, replyTokens + 2)
    const sent = lastUpstream()
    assert.equal(sent.body?.model, 'test/small')
    assert.deepEqual(sent.body?.stream_options, { include_usage: true })
    const rows = await env.waitLedger(2)
    const row = rows.at(-1)!
    assert.equal(row.model, 'rigbox/fast')
    assert.equal(row.status, 'ok')
    assert.equal(row.output_tokens, replyTokens)
    assert.equal(row.credits_micro, cost(row.input_tokens, replyTokens))
  })

  it('passes the usage chunk on when the client asked for it', async () => {
    const stream = await openai.chat.completions.create({
      model: 'test/small',
      messages: [{ role: 'user', content: 'With usage.' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage
    assert.equal(usage?.completion_tokens, replyTokens)
    const row = (await env.waitLedger(3)).at(-1)!
    assert.equal(row.input_tokens, usage?.prompt_tokens)
  })

  it('passes a stream on chunk by chunk, not gathered', async () => {
    env.upstream.knobs.chunkDelayMs = 40
    try {
      const stream = await openai.chat.completions.create({
        model: 'test/small',
        messages: [{ role: 'user', content: 'Slowly.' }],
        stream: true,
      })
      let seen = 0
      for await (const chunk of stream) {
        if (chunk.choices[0].delta.content && seen++ === 0) {
          // The first token is here while the upstream is still producing the rest.
          assert.equal(env.upstream.inFlight, 1)
        }
      }
      assert.equal(seen, replyTokens)
    } finally {
      env.upstream.knobs.chunkDelayMs = 0
    }
    await env.waitLedger(4)
  })

  it('serves embeddings (the SDK asks for base64) and charges the prompt only', async () => {
    const res = await openai.embeddings.create({
      model: 'test/embed',
      input: ['one fox', 'two dogs'],
    })
    assert.equal(res.data.length, 2)
    assert.equal(res.data[0].embedding.length, 8)
    assert.equal(lastUpstream().body?.encoding_format, 'base64')
    const row = (await env.waitLedger(5)).at(-1)!
    assert.equal(row.endpoint, 'embeddings')
    assert.equal(row.input_tokens, res.usage.prompt_tokens)
    assert.equal(row.output_tokens, 0)
    // test/embed: $1e-7 per token = 10 micro-credits.
    assert.equal(row.credits_micro, res.usage.prompt_tokens * 10)
  })

  it('lists models with prices and the aliases, for both SDKs', async () => {
    const ids: string[] = []
    const byId = new Map<string, Record<string, unknown>>()
    for await (const m of openai.models.list()) {
      ids.push(m.id)
      byId.set(m.id, m as unknown as Record<string, unknown>)
    }
    assert.deepEqual(ids.slice(0, 3), ['rigbox/default', 'rigbox/fast', 'rigbox/free'])
    for (const id of ['test/small', 'test/big', 'test/free', 'test/embed'])
      assert.ok(ids.includes(id), id)
    assert.deepEqual(byId.get('test/small')?.pricing, {
      prompt: '0.000001',
      completion: '0.000002',
    })
    // rigbox/free is test/big here, and costs nothing.
    assert.deepEqual(byId.get('rigbox/free')?.pricing, { prompt: '0', completion: '0' })
    assert.equal(byId.get('test/big')?.max_completion_tokens, 1000)
    const viaAnthropic: string[] = []
    for await (const m of anthropic.models.list()) viaAnthropic.push(m.id)
    assert.deepEqual(viaAnthropic, ids)
  })

  it('serves /v1/messages to the Anthropic SDK, streamed and not, metered from its usage', async () => {
    const before = (await env.ledger()).length
    const msg = await anthropic.messages.create({
      model: 'test/small',
      max_tokens: 100,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'Hello there' }],
    })
    assert.equal(msg.content[0].type === 'text' && msg.content[0].text, REPLY)
    const sent = lastUpstream()
    assert.equal(sent.headers['x-api-key'], ANTHROPIC_KEY)
    // The client's own API version goes on (the SDK's, newer than our default).
    assert.match(String(sent.headers['anthropic-version']), /^\d{4}-\d{2}-\d{2}$/)
    const streamed = await anthropic.messages
      .stream({
        model: 'test/small',
        max_tokens: 100,
        messages: [{ role: 'user', content: 'Stream' }],
      })
      .finalMessage()
    assert.equal(streamed.usage.output_tokens, replyTokens)
    const rows = (await env.waitLedger(before + 2)).slice(-2)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.status, r.input_tokens, r.output_tokens, r.credits_micro]),
      [
        [
          'messages',
          'ok',
          msg.usage.input_tokens,
          replyTokens,
          cost(msg.usage.input_tokens, replyTokens),
        ],
        [
          'messages',
          'ok',
          streamed.usage.input_tokens,
          replyTokens,
          cost(streamed.usage.input_tokens, replyTokens),
        ],
      ],
    )
  })

  it('charges nothing for rigbox/free, whatever model it maps to', async () => {
    const before = await env.remaining()
    const n = (await env.ledger()).length
    await openai.chat.completions.create({
      model: 'rigbox/free',
      messages: [{ role: 'user', content: 'x' }],
    })
    assert.equal(lastUpstream().body?.model, 'test/big')
    const row = (await env.waitLedger(n + 1)).at(-1)!
    assert.equal(row.status, 'ok')
    assert.ok(row.output_tokens > 0)
    assert.equal(row.credits_micro, 0)
    assert.equal(await env.remaining(), before)
  })

  it('refuses an unknown model with model_not_found, in each shape, and records it', async () => {
    const n = (await env.ledger()).length
    const calls = env.upstream.requests.length
    await assert.rejects(
      openai.chat.completions.create({
        model: 'nope/none',
        messages: [{ role: 'user', content: 'x' }],
      }),
      (err: InstanceType<typeof OpenAI.APIError>) =>
        err.status === 400 && err.code === 'model_not_found' && /nope\/none/.test(err.message),
    )
    await assert.rejects(
      anthropic.messages.create({
        model: 'claude-none',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'x' }],
      }),
      (err: InstanceType<typeof Anthropic.APIError>) =>
        err.status === 400 &&
        err.type === 'invalid_request_error' &&
        err.errorCode === 'model_not_found',
    )
    assert.equal(env.upstream.requests.length, calls)
    const rows = (await env.waitLedger(n + 2)).slice(-2)
    assert.deepEqual(
      rows.map((r) => [r.status, r.http_status, r.credits_micro]),
      [
        ['refused', 400, 0],
        ['refused', 400, 0],
      ],
    )
    assert.ok((await env.remaining()) < FULL)
  })
})
