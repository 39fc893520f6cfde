/**
 * Authenticated GET /api/v1/workspaces/{id} against a bare Fastify route, same machine, same
 * run: requests/s and p99 latency for both, and the ratio. `npm run bench:api [seconds]`.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const here = path.dirname(fileURLToPath(import.meta.url))
const duration = Number(process.argv[2] ?? 10)

async function measure(mode: 'bare' | 'rigbox') {
  // node with tsx's loader (not tsx's CLI, whose child would outlive kill()).
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, 'api-target.ts'), mode],
    {
      cwd: path.join(here, '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  try {
    const line = await new Promise<string>((resolve, reject) => {
      readline.createInterface({ input: child.stdout }).on('line', (l) => {
        if (l.startsWith('READY ')) resolve(l)
      })
      child.on('exit', (code) => reject(new Error(`${mode} server exited ${code}`)))
    })
    const [, port, urlPath, key] = line.split(' ')
    const run = (seconds: number) =>
      autocannon({
        url: `http://127.0.0.1:${port}${urlPath}`,
        connections: 10,
        duration: seconds,
        headers: key === '-' ? {} : { authorization: `Bearer ${key}` },
      })
    await run(2) // warm-up: JIT and connection set-up out of the figures
    const result = await run(duration)
    if (result.non2xx > 0) throw new Error(`${mode}: ${result.non2xx} non-2xx answers`)
    return { rps: result.requests.average, p99: result.latency.p99 }
  } finally {
    child.kill()
  }
}

const bare = await measure('bare')
const rigbox = await measure('rigbox')
const row = (name: string, r: { rps: number; p99: number }) =>
  `${name.padEnd(28)} ${r.rps.toFixed(0).padStart(8)} req/s   p99 ${r.p99.toFixed(1).padStart(6)} ms`
console.log(row('bare Fastify route', bare))
console.log(row('rigbox GET workspace (auth)', rigbox))
// autocannon reports latency in whole milliseconds: a bare route's p99 often reads 0.
const p99Ratio =
  bare.p99 >= 1 ? `${(rigbox.p99 / bare.p99).toFixed(2)}x` : `n/a (bare p99 below 1 ms resolution)`
console.log(`ratio rigbox/bare: throughput ${(rigbox.rps / bare.rps).toFixed(2)}x, p99 ${p99Ratio}`)
