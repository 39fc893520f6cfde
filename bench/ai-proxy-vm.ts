/**
 * The AI proxy from inside a real VM: calls made in the guest through the VM bridge
 * (`172.16.0.1:9090`, the tunnel, the proxy) against the same local upstream called directly from
 * the host, in the same run. Prints p50/p99 of a non-streamed chat completion and a streamed one's
 * time to first token, with the added ms (tunnel + proxy + the guest's own CPU, TCG here).
 * `npm run bench:ai-vm [calls]`. Boots one workspace (about a minute under TCG).
 */
import http from 'node:http'
import { startAiUpstream } from '../test/helpers/ai-upstream.ts'
import { realApp } from './real-app.ts'

const calls = Number(process.argv[2] ?? 200)
const body = (stream: boolean) =>
  JSON.stringify({
    model: 'test/small',
    messages: [{ role: 'user', content: 'Benchmark: tell me about foxes, briefly.' }],
    stream,
  })

/** The same measuring loop runs on the host and, as source text, inside the guest. */
const LOOP = `
const http = require('node:http')
async function measure(base, calls, body) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const one = (stream) => new Promise((resolve, reject) => {
    const payload = body(stream)
    const t0 = performance.now()
    let first = 0
    const req = http.request(base + '/v1/chat/completions', { method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } })
    req.on('response', (res) => {
      if (res.statusCode !== 200) return reject(new Error('HTTP ' + res.statusCode))
      res.on('data', () => { if (!first) first = performance.now() - t0 })
      res.on('end', () => resolve({ first, total: performance.now() - t0 }))
    })
    req.on('error', reject)
    req.end(payload)
  })
  for (let i = 0; i < Math.min(20, calls); i++) await one(i % 2 === 0)
  const chat = [], first = []
  for (let i = 0; i < calls; i++) {
    chat.push((await one(false)).total)
    first.push((await one(true)).first)
  }
  agent.destroy()
  return { chat, first }
}
`
type Measure = (
  base: string,
  calls: number,
  body: (s: boolean) => string,
) => Promise<{ chat: number[]; first: number[] }>
const measure = new Function('require', `${LOOP}; return measure`)((m: string) =>
  m === 'node:http' ? http : null,
) as Measure

const upstream = await startAiUpstream()
const {
  app,
  call: api,
  until,
  close,
} = await realApp('rigbox-bench-ai-vm-', {
  platform: true,
  env: { RIGBOX_AI_UPSTREAM_URL: upstream.openaiUrl, RIGBOX_AI_UPSTREAM_KEY: 'sk-bench' },
})

try {
  const { vm } = await api('POST', '/api/v1/workspaces', { name: 'bench-ai', ram_mb: 1024 })
  await api('POST', `/api/v1/workspaces/${vm.id}/start`)
  await until(vm.id, 'running', 500)
  // Credits for the run: an admin grant (the bench is the admin).
  const me = await api('GET', '/api/v1/users/me')
  await api('POST', `/api/v1/admin/users/${me.user.id}/credits`, { credits: 100_000 })
  const host = await measure(upstream.url, calls, body)
  const guestScript =
    `${LOOP}\nconst body = ${body.toString()}\n` +
    `measure('http://172.16.0.1:9090', ${calls}, body).then((r) => console.log(JSON.stringify(r)))`
  const run = await api('POST', `/api/v1/workspaces/${vm.id}/exec`, {
    command: `cat > /tmp/bench.cjs <<'EOF'\n${guestScript}\nEOF\nnode /tmp/bench.cjs`,
    timeout_ms: 30 * 60_000,
  })
  if (run.exit_code !== 0) throw new Error(run.stderr)
  const guest = JSON.parse(run.stdout) as { chat: number[]; first: number[] }

  const at = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)]
  console.log(`AI proxy from inside a VM vs the upstream called directly (${calls} calls each)`)
  for (const [metric, d, g] of [
    ['chat', host.chat, guest.chat],
    ['stream first token', host.first, guest.first],
  ] as const) {
    for (const q of [0.5, 0.99]) {
      const a = at(d, q)
      const b = at(g, q)
      console.log(
        `${`${metric} p${q * 100}`.padEnd(24)} host direct ${a.toFixed(2).padStart(7)} ms  ` +
          `in VM via proxy ${b.toFixed(2).padStart(7)} ms  added ${(b - a).toFixed(2)} ms`,
      )
    }
  }
  await api('DELETE', `/api/v1/workspaces/${vm.id}`)
  await app.rigbox.reconciler.idle()
} finally {
  await close()
  await upstream.close()
}
