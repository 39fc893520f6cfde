/**
 * The AI proxy's added latency, host side: the same calls straight to the local upstream and
 * through the proxy (real app, SQLite credit and usage stores, the bridge), alternated in the same
 * run, one at a time over kept-alive connections. Prints p50/p99 of a non-streamed chat completion
 * and, for a streamed one, time to first token and to the end, with the added ms and the ratio.
 * Client, proxy and upstream are separate processes. `npm run bench:ai [calls]` (goal: ≤1 ms p50
 * added).
 */
import { spawn } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

const calls = Number(process.argv[2] ?? 1000)
const warmup = Math.min(200, calls)
const here = path.dirname(fileURLToPath(import.meta.url))

async function start(...args: string[]) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, 'ai-proxy-target.ts'), ...args],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const lines = readline.createInterface({ input: child.stdout })
  for await (const line of lines) {
    if (line.startsWith('{')) return { url: (JSON.parse(line) as { url: string }).url, child }
  }
  throw new Error(`ai-proxy-target ${args[0]} exited before it was ready`)
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const body = (stream: boolean) =>
  JSON.stringify({
    model: 'test/small',
    messages: [{ role: 'user', content: 'Benchmark: tell me about foxes, briefly.' }],
    stream,
  })
const FIRST_TOKEN = /"(content|text)":"[^"]/

/** One call: ms to the first token (streamed) and to the end. */
function chat(base: string, stream: boolean): Promise<{ firstToken: number; total: number }> {
  const payload = body(stream)
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    let firstToken = 0
    const req = http.request(`${base}/v1/chat/completions`, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    })
    req.on('response', (res) => {
      if (res.statusCode !== 200) reject(new Error(`${base}: HTTP ${res.statusCode}`))
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (!firstToken && FIRST_TOKEN.test(chunk)) firstToken = performance.now() - t0
      })
      res.on('end', () => resolve({ firstToken, total: performance.now() - t0 }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

const upstream = await start('upstream')
const proxy = await start('proxy', `${upstream.url}/v1`, upstream.url)
const ways = { direct: `${upstream.url}`, proxied: proxy.url }

type Series = Record<'direct' | 'proxied', number[]>
const results = {
  chat: { direct: [], proxied: [] } as Series,
  'stream first token': { direct: [], proxied: [] } as Series,
  'stream total': { direct: [], proxied: [] } as Series,
}
for (let i = 0; i < warmup; i++) {
  for (const base of Object.values(ways)) await chat(base, i % 2 === 0)
}
for (let i = 0; i < calls; i++) {
  for (const [name, base] of Object.entries(ways) as ['direct' | 'proxied', string][]) {
    results.chat[name].push((await chat(base, false)).total)
    const s = await chat(base, true)
    results['stream first token'][name].push(s.firstToken)
    results['stream total'][name].push(s.total)
  }
}
agent.destroy()
proxy.child.kill()
upstream.child.kill()

const at = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)]
console.log(`AI proxy vs the same upstream called directly (${calls} calls each, one at a time)`)
for (const [metric, series] of Object.entries(results)) {
  for (const q of [0.5, 0.99]) {
    const d = at(series.direct, q)
    const p = at(series.proxied, q)
    const label = `${metric} p${q * 100}`
    console.log(
      `${label.padEnd(24)} direct ${d.toFixed(3).padStart(7)} ms  proxied ${p.toFixed(3).padStart(7)} ms  ` +
        `added ${(p - d).toFixed(3).padStart(6)} ms  ratio ${(p / d).toFixed(2)}`,
    )
  }
}
