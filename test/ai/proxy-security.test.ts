import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import Anthropic from '@anthropic-ai/sdk'
import { countTokens } from 'gpt-tokenizer'
import OpenAI from 'openai'
import { estimateInput, eventData } from '../../src/ai/proxy/meter.ts'
import { PLACEHOLDER_KEY } from '../../src/ai/vm-env.ts'
import {
  ANTHROPIC_KEY,
  MANAGED_KEY,
  startAiBridge,
  type AiBridge,
  type Workspace,
} from '../helpers/ai-bridge.ts'
import { promptText, REPLY } from '../helpers/ai-upstream.ts'
import { tempDir } from '../helpers/app.ts'

type OpenAiError = InstanceType<typeof OpenAI.APIError>
const secrets = [MANAGED_KEY, ANTHROPIC_KEY]
const leaks = (text: string) => secrets.filter((s) => text.includes(s))

/** A raw POST (node:http: any header, and the freedom to hang up); resolves with status and body. */
function post(ws: Workspace, urlPath: string, body: object, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request(`${ws.url}${urlPath}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
    })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

/** Reads a stream until `pieces` text deltas came in, then hangs up; returns the text received. */
function hangUpAfter(ws: Workspace, urlPath: string, body: object, pieces: number) {
  return new Promise<string>((resolve, reject) => {
    const req = http.request(`${ws.url}${urlPath}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    })
    req.on('response', (res) => {
      let buf = ''
      let text = ''
      let n = 0
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        for (let i = buf.indexOf('\n\n'); i >= 0 && n < pieces; i = buf.indexOf('\n\n')) {
          const data = eventData(buf.slice(0, i)) as Record<string, any> | null // eslint-disable-line @typescript-eslint/no-explicit-any
          buf = buf.slice(i + 2)
          const piece = data?.choices?.[0]?.delta?.content ?? data?.delta?.text
          if (!piece) continue
          text += piece
          if (++n === pieces) {
            req.destroy()
            resolve(text)
          }
        }
      })
    })
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)))
    req.end(JSON.stringify(body))
  })
}

describe('AI proxy: identity, secrets and streams cut short', () => {
  let env: AiBridge
  let ws: Workspace
  const cost = (input: number, output: number) => Math.ceil(input * 100 + output * 200)

  before(async () => {
    env = await startAiBridge()
    ws = await env.workspace('ai-sec')
  })
  after(() => env.close())

  it("charges the channel's workspace, whatever the VM sends to claim another", async () => {
    const stranger = await env.otherUser('ai-victim@example.com')
    const theirs = await env.workspace('ai-victim', stranger)
    const strangerBefore = await env.remaining(stranger.id)
    const claims = {
      authorization: `Bearer ${stranger.key}`,
      'x-api-key': stranger.key,
      'x-rigbox-workspace': theirs.id,
      'x-workspace-id': theirs.id,
      'x-rigbox-user': stranger.id,
      'x-forwarded-for': '172.16.0.99',
    }
    const body = {
      model: 'test/small',
      messages: [{ role: 'user', content: 'who pays?' }],
      user: stranger.id,
      metadata: { workspace_id: theirs.id, user_id: stranger.id },
      workspace_id: theirs.id,
    }
    const n = (await env.ledger()).length
    assert.equal((await post(ws, '/v1/chat/completions', body, claims)).status, 200)
    const messages = { ...body, max_tokens: 20, metadata: { user_id: stranger.id } }
    assert.equal((await post(ws, '/v1/messages', messages, claims)).status, 200)
    const rows = (await env.waitLedger(n + 2)).slice(-2)
    for (const row of rows) {
      assert.deepEqual([row.user_id, row.workspace_id, row.status], [env.user.id, ws.id, 'ok'])
      assert.ok(row.credits_micro > 0)
    }
    assert.deepEqual(await env.ledger(stranger.id), [])
    assert.equal(await env.remaining(stranger.id), strangerBefore)
    // Nor does the stranger's key travel: the upstream sees the managed credential only.
    const [chat, msg] = env.upstream.requests.slice(-2)
    assert.equal(chat.headers.authorization, `Bearer ${MANAGED_KEY}`)
    assert.equal(chat.headers['x-api-key'], undefined)
    assert.equal(msg.headers['x-api-key'], ANTHROPIC_KEY)
  })

  it('refuses a connection that belongs to no workspace', async () => {
    const server = net.createServer((sock) => env.bridge.handle(sock, 'ws-gone0000'))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
      const res = await post({ id: '', name: '', url }, '/v1/chat/completions', {
        model: 'test/small',
      })
      assert.equal(res.status, 401)
      assert.equal(JSON.parse(res.text).error.type, 'authentication_error')
    } finally {
      server.close()
    }
  })

  it('passes on no hop-by-hop, cookie or client credential header; replaces the placeholder', async () => {
    const res = await post(
      ws,
      '/v1/chat/completions',
      { model: 'test/small', messages: [{ role: 'user', content: 'headers' }] },
      {
        authorization: `Bearer ${PLACEHOLDER_KEY}`,
        'x-api-key': PLACEHOLDER_KEY,
        cookie: 'session=abc',
        'proxy-authorization': 'Basic eA==',
        connection: 'keep-alive, x-hop',
        'x-hop': '1',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'x-custom': 'nope',
      },
    )
    assert.equal(res.status, 200)
    const sent = env.upstream.requests.at(-1)!.headers
    assert.equal(sent.authorization, `Bearer ${MANAGED_KEY}`)
    for (const h of [
      'x-api-key',
      'cookie',
      'proxy-authorization',
      'x-hop',
      'keep-alive',
      'te',
      'x-custom',
    ]) {
      assert.equal(sent[h], undefined, h)
    }
    assert.ok(!JSON.stringify(sent).includes(PLACEHOLDER_KEY))
  })

  it('cuts the managed key out of upstream errors, in responses and in logs', async () => {
    const openai = new OpenAI({ apiKey: PLACEHOLDER_KEY, baseURL: `${ws.url}/v1`, maxRetries: 0 })
    const anthropic = new Anthropic({ apiKey: PLACEHOLDER_KEY, baseURL: ws.url, maxRetries: 0 })
    env.logs.length = 0
    try {
      for (const status of [401, 500]) {
        env.upstream.knobs.errorStatus = status
        const chat = await post(ws, '/v1/chat/completions', { model: 'test/small', messages: [] })
        // The upstream did echo the key it got: only the proxy stands between it and the VM.
        assert.ok(env.upstream.requests.at(-1)!.headers.authorization!.includes(MANAGED_KEY))
        assert.equal(chat.status, status === 401 ? 401 : 502)
        assert.match(chat.text, /\[redacted\]/)
        assert.deepEqual(leaks(chat.text), [])
        const msg = await post(ws, '/v1/messages', {
          model: 'test/small',
          max_tokens: 5,
          messages: [],
        })
        assert.match(msg.text, /\[redacted\]/)
        assert.deepEqual(leaks(msg.text), [])
        await assert.rejects(
          openai.chat.completions.create({ model: 'test/small', messages: [] }),
          (e: OpenAiError) => leaks(e.message).length === 0,
        )
        await assert.rejects(
          anthropic.messages.create({ model: 'test/small', max_tokens: 5, messages: [] }),
          (e: Error) => leaks(e.message).length === 0,
        )
      }
      env.upstream.knobs.errorStatus = null
      // A reply that quotes the key (an upstream echoing its prompt) is cut as well.
      env.upstream.knobs.reply = `Your key is ${MANAGED_KEY}.`
      const echoed = await post(ws, '/v1/chat/completions', {
        model: 'test/small',
        messages: [{ role: 'user', content: 'echo' }],
      })
      assert.deepEqual(leaks(echoed.text), [])
    } finally {
      env.upstream.knobs.errorStatus = null
      env.upstream.knobs.reply = REPLY
    }
    assert.ok(
      env.logs.some((l) => l.includes('AI upstream answered an error')),
      'the errors were logged',
    )
    assert.deepEqual(leaks(env.logs.join('\n')), [])
  })

  for (const shape of ['openai', 'anthropic'] as const) {
    it(`charges a client that hangs up mid-stream for what it got, and aborts upstream (${shape})`, async () => {
      env.upstream.knobs.chunkDelayMs = 60
      try {
        const messages = [{ role: 'user', content: `hang up (${shape})` }]
        const body = { model: 'test/small', messages, stream: true, max_tokens: 100 }
        const urlPath = shape === 'openai' ? '/v1/chat/completions' : '/v1/messages'
        const n = (await env.ledger()).length
        const received = await hangUpAfter(ws, urlPath, body, 4)
        const hungUp = Date.now()
        const upstreamCall = env.upstream.requests.at(-1)!
        await upstreamCall.done
        assert.equal(upstreamCall.aborted, true, 'the upstream request was aborted')
        assert.ok(Date.now() - hungUp < 500, "at once, not at the stream's end")
        const row = (await env.waitLedger(n + 1)).at(-1)!
        // OpenAI's usage comes last, so the prompt is the estimate; Anthropic states it first.
        const input =
          shape === 'openai'
            ? estimateInput('chat.completions', body)
            : countTokens(promptText(messages))
        assert.deepEqual(
          [row.status, row.http_status, row.input_tokens, row.output_tokens, row.credits_micro],
          ['cancelled', 499, input, countTokens(received), cost(input, countTokens(received))],
        )
        assert.ok(countTokens(received) < countTokens(REPLY))
      } finally {
        env.upstream.knobs.chunkDelayMs = 0
      }
    })
  }

  it('ends a stream the upstream broke off with an error event, charging what was delivered', async () => {
    env.upstream.knobs.failAfterChunks = 6
    try {
      const openai = new OpenAI({ apiKey: PLACEHOLDER_KEY, baseURL: `${ws.url}/v1`, maxRetries: 0 })
      const n = (await env.ledger()).length
      let text = ''
      await assert.rejects(async () => {
        const stream = await openai.chat.completions.create({
          model: 'test/small',
          messages: [{ role: 'user', content: 'break' }],
          stream: true,
        })
        for await (const c of stream) text += c.choices[0]?.delta.content ?? ''
      }, /stream broke off/)
      // The role chunk, then five tokens.
      assert.equal(countTokens(text), 5)
      const row = (await env.waitLedger(n + 1)).at(-1)!
      assert.deepEqual([row.status, row.output_tokens], ['error', 5])
      assert.equal(row.credits_micro, cost(row.input_tokens, 5))
    } finally {
      env.upstream.knobs.failAfterChunks = null
    }
  })
})

describe('AI proxy: unreachable and slow upstreams', () => {
  let env: AiBridge
  let ws: Workspace
  before(async () => {
    // Nothing listens on the managed URL; the price file makes its model known all the same.
    const closed = net.createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const port = (closed.address() as net.AddressInfo).port
    await new Promise((r) => closed.close(r))
    const priceFile = path.join(tempDir(), 'prices.json')
    fs.writeFileSync(
      priceFile,
      JSON.stringify({
        models: { 'local/model': { prompt_per_million: 1, completion_per_million: 2 } },
      }),
    )
    env = await startAiBridge({
      env: {
        RIGBOX_AI_UPSTREAM_URL: `http://127.0.0.1:${port}/v1`,
        RIGBOX_AI_PRICE_FILE: priceFile,
      },
      timeouts: { firstByteMs: 200 },
    })
    ws = await env.workspace('ai-down')
  })
  after(() => env.close())

  it('answers 502 when the upstream cannot be reached, and lists price-file models meanwhile', async () => {
    const models = await fetch(`${ws.url}/v1/models`)
    const list = (await models.json()) as { data: { id: string; pricing: object }[] }
    assert.deepEqual(list.data.find((m) => m.id === 'local/model')?.pricing, {
      prompt: '0.000001',
      completion: '0.000002',
    })
    const res = await post(ws, '/v1/chat/completions', {
      model: 'local/model',
      messages: [{ role: 'user', content: 'x' }],
    })
    assert.equal(res.status, 502)
    const e = JSON.parse(res.text).error
    assert.deepEqual([e.code, e.type], ['AI_UPSTREAM_ERROR', 'api_error'])
    assert.match(e.message, /could not be reached \(ECONNREFUSED\)/)
    const row = (await env.waitLedger(1))[0]
    assert.deepEqual([row.status, row.http_status, row.credits_micro], ['error', 502, 0])
    assert.deepEqual(leaks(env.logs.join('\n')), [])
  })

  it('gives up on an upstream that does not answer in time', async () => {
    // The Anthropic upstream is the live one here; it waits a second before a first byte.
    env.upstream.knobs.firstByteDelayMs = 1000
    const started = Date.now()
    const res = await post(ws, '/v1/messages', {
      model: 'local/model',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'x' }],
    })
    assert.equal(res.status, 502)
    assert.ok(Date.now() - started < 900)
    const e = JSON.parse(res.text)
    assert.deepEqual([e.type, e.error.type], ['error', 'api_error'])
    assert.match(e.error.message, /did not answer within 0\.2 s/)
  })
})
