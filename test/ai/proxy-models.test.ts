import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ApiError } from '../../src/http/errors.ts'
import { loadPriceFile, ModelCatalog, parseModelList } from '../../src/ai/proxy/models.ts'
import { DEFAULT_TIMEOUTS } from '../../src/ai/proxy/upstream.ts'
import { MODELS, startAiUpstream, type AiUpstream } from '../helpers/ai-upstream.ts'
import { tempDir } from '../helpers/app.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('AI proxy: models and prices', () => {
  let up: AiUpstream
  const dir = tempDir()
  const priceFile = (models: object) => {
    const file = path.join(dir, `prices-${Math.random()}.json`)
    fs.writeFileSync(file, JSON.stringify({ models }))
    return file
  }
  const catalog = (opts: { ttl?: number; prices?: string | null; aliases?: object } = {}) =>
    new ModelCatalog(
      {
        upstream: { url: up.openaiUrl, key: 'k' },
        aliases: { default: 'test/small', fast: null, free: 'test/big', ...opts.aliases },
        modelsTtlMs: opts.ttl ?? 60_000,
      },
      loadPriceFile(opts.prices ?? null),
      DEFAULT_TIMEOUTS,
    )
  const fetches = () => up.requests.filter((r) => r.path === '/v1/models').length
  const ids = async (c: ModelCatalog) => (await c.list()).map((m) => m.id)

  before(async () => {
    up = await startAiUpstream()
  })
  after(() => up.close())

  it('keeps the list for its TTL, then serves it stale while it refreshes', async () => {
    const c = catalog({ ttl: 100 })
    const first = await ids(c)
    assert.deepEqual(first, ['rigbox/default', 'rigbox/free', ...MODELS.map((m) => m.id)])
    const n = fetches()
    up.knobs.models = [...MODELS, { id: 'test/new', prompt: '0.000001', completion: '0' }]
    try {
      assert.deepEqual(await ids(c), first)
      assert.equal(fetches(), n, 'fresh: no fetch')
      await sleep(120)
      // Stale: answered at once from what is known, refreshed behind it.
      assert.deepEqual(await ids(c), first)
      for (let i = 0; i < 100 && !(await ids(c)).includes('test/new'); i++) await sleep(10)
      assert.ok((await ids(c)).includes('test/new'))
      assert.equal(fetches(), n + 1)
      // An upstream that fails keeps the last good list.
      up.knobs.errorStatus = 500
      await sleep(120)
      await c.list()
      await sleep(50)
      assert.ok((await ids(c)).includes('test/new'))
      assert.equal(fetches(), n + 2)
    } finally {
      up.knobs.models = MODELS
      up.knobs.errorStatus = null
    }
  })

  it('prices in micro-credits per token; rigbox/free is free whatever it maps to', async () => {
    const c = catalog()
    const small = await c.find('test/small')
    // $0.000001 a token = 100 micro-credits (1 credit = 1e6 micro ≈ $0.01).
    assert.deepEqual([small?.info.prompt, small?.info.completion], [100, 200])
    const free = await c.find('rigbox/free')
    assert.equal(free?.upstreamId, 'test/big')
    assert.deepEqual(
      [free?.info.prompt, free?.info.completion, free?.info.maxCompletionTokens],
      [0, 0, 1000],
    )
    assert.equal(await c.find('nope/none'), null)
  })

  it('lets the price file correct and add models', async () => {
    const file = priceFile({
      'test/small': {
        prompt_per_million: 5,
        completion_per_million: 15,
        max_completion_tokens: 64,
      },
      'local/llama': { prompt: '0.0000002', completion: 0.0000004, context_length: 4096 },
      'local/embed': { prompt_per_million: 0.02 },
    })
    const c = catalog({ prices: file })
    const small = (await c.find('test/small'))!.info
    assert.deepEqual(
      [small.prompt, small.completion, small.maxCompletionTokens, small.contextLength],
      [500, 1500, 64, 8192],
    )
    const llama = (await c.find('local/llama'))!.info
    assert.deepEqual([llama.prompt, llama.completion, llama.contextLength], [20, 40, 4096])
    const embed = (await c.find('local/embed'))!.info
    assert.deepEqual([embed.prompt, embed.completion], [2, 0])
  })

  it('refuses a bad price file at start, saying what is wrong', () => {
    assert.throws(
      () => loadPriceFile(priceFile({ a: { prompt: 1, prompt_per_million: 2 } })),
      /invalid AI price file .*exactly one of prompt/s,
    )
    assert.throws(
      () => loadPriceFile(priceFile({ a: { prompt: 1, cost: 2 } })),
      /invalid AI price file/,
    )
    assert.throws(() => loadPriceFile(priceFile({ a: { prompt: '-1' } })), /invalid AI price file/)
    const broken = path.join(dir, 'broken.json')
    fs.writeFileSync(broken, '{"models": ')
    assert.throws(() => loadPriceFile(broken), /invalid AI price file .*broken\.json: .*JSON/)
  })

  it('names the variable of an alias that is not configured, or points nowhere', async () => {
    const c = catalog({ aliases: { default: 'gone/model' } })
    await assert.rejects(
      c.find('rigbox/fast'),
      (e: ApiError) => e.statusCode === 400 && /RIGBOX_AI_MODEL_FAST/.test(e.message),
    )
    await assert.rejects(
      c.find('rigbox/default'),
      /points at gone\/model, which has no known price/,
    )
  })

  it('offers only models whose price it knows', () => {
    const listed = parseModelList({
      data: [
        { id: 'ok', pricing: { prompt: '0.000001', completion: '0.000002' } },
        { id: 'router/auto', pricing: { prompt: '-1', completion: '-1' } },
        { id: 'no-pricing' },
        { id: 'embed-only', pricing: { prompt: '0.0000001' } },
        { pricing: { prompt: '0' } },
      ],
    })
    assert.deepEqual([...listed.keys()], ['ok', 'embed-only'])
  })
})
