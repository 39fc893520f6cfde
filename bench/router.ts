/**
 * The app router against nginx, same machine, same run, same upstream: requests/s and p99 for
 * a public route through each (and straight to the upstream, for scale), and the ratio.
 * `npx tsx bench/router.ts [seconds]`. Needs nginx (apt-get install nginx).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { freeLoopbackPort } from '../src/vm/hostfwd.ts'
import { startNginx } from './router-nginx.ts'
import { sequentialLatency } from './router-probe.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const duration = Number(process.argv[2] ?? 10)
const connections = 10

async function startTarget(args: string[]): Promise<{ port: number; child: ChildProcess }> {
  // node with tsx's loader (not tsx's CLI, whose child would outlive kill()).
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, 'router-target.ts'), ...args],
    {
      cwd: path.join(here, '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const port = await new Promise<number>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      if (l.startsWith('READY ')) resolve(Number(l.split(' ')[1]))
    })
    child.once('exit', (code) => reject(new Error(`${args[0]} exited ${code}`)))
  })
  return { port, child }
}

async function measure(name: string, port: number) {
  const run = (seconds: number) =>
    autocannon({
      url: `http://127.0.0.1:${port}/api/v1/thing`,
      connections,
      duration: seconds,
      headers: { host: `bench.localhost:${port}` },
    })
  await run(2) // warm-up: JIT and both proxies' upstream pools out of the figures
  const r = await run(duration)
  if (r.non2xx > 0 || r.errors > 0)
    throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors`)
  const seq = await sequentialLatency(port, `bench.localhost:${port}`, 5000)
  return { rps: r.requests.average, p99: r.latency.p99, ...seq }
}

type Row = Awaited<ReturnType<typeof measure>>
const results: [string, Row][] = []
const children: ChildProcess[] = []
let stopNginx = async () => {}
try {
  const upstream = await startTarget(['upstream'])
  children.push(upstream.child)
  const router = await startTarget(['router', String(upstream.port)])
  children.push(router.child)
  const nginx = await startNginx(upstream.port, await freeLoopbackPort())
  stopNginx = nginx.stop
  results.push(['upstream direct (scale)', await measure('direct', upstream.port)])
  results.push(['rigbox router', await measure('router', router.port)])
  results.push(['nginx 1 worker', await measure('nginx', nginx.port)])
} finally {
  for (const child of children) child.kill()
  await stopNginx()
}
console.log(
  `autocannon: ${connections} connections, ${duration} s, keep-alive, loopback, 2 s warm-up`,
)
console.log('sequential: 1 connection, 5000 requests one at a time, µs resolution')
console.log(
  `${''.padEnd(24)} ${'req/s'.padStart(8)}  ${'p99 (ms)'.padStart(9)}  ${'seq p50 µs'.padStart(10)}  ${'seq p99 µs'.padStart(10)}`,
)
for (const [name, r] of results)
  console.log(
    `${name.padEnd(24)} ${r.rps.toFixed(0).padStart(8)}  ${r.p99.toFixed(0).padStart(9)}  ${r.p50us.toFixed(0).padStart(10)}  ${r.p99us.toFixed(0).padStart(10)}`,
  )
const ours = results[1][1]
const ref = results[2][1]
const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`
// autocannon counts whole milliseconds: a 0 ms p99 has no meaningful ratio.
const loadP99 = ref.p99 >= 1 ? x(ours.p99, ref.p99) : `${ours.p99} ms vs <1 ms`
console.log(
  `router/nginx: throughput ${x(ours.rps, ref.rps)}, p99 under load ${loadP99}, ` +
    `sequential p50 ${x(ours.p50us, ref.p50us)}, p99 ${x(ours.p99us, ref.p99us)}`,
)
