/**
 * The VM's inbound relay (src/vm/inbound-relay.py) against a direct TCP connection to the same
 * server, same run: keep-alive HTTP requests/s and p99, new-connection requests/s, and bulk
 * throughput, with the ratio. The relay runs as it does in a jail, minus the namespaces (they add
 * no per-byte cost). `npx tsx bench/inbound-relay.ts [requests]`.
 */
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import type net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { relayTarget, tcpTarget } from '../src/node/inbound.ts'
import type { GuestPortTarget } from '../src/node/types.ts'

const requests = Number(process.argv[2] ?? 4000)
const concurrency = 8
const bulkBytes = 256 * 1024 * 1024
const relayScript = fileURLToPath(new URL('../src/vm/inbound-relay.py', import.meta.url))

const bulk = crypto.randomBytes(1024 * 1024)
const server = http.createServer((req, res) => {
  if (req.url === '/bulk') {
    res.writeHead(200, { 'content-length': bulkBytes })
    let left = bulkBytes / bulk.length
    const more = () => {
      while (left > 0) {
        left--
        if (!res.write(bulk)) return void res.once('drain', more)
      }
      res.end()
    }
    return more()
  }
  res.end('ok')
})
server.keepAliveTimeout = 60_000
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
const port = (server.address() as net.AddressInfo).port

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-relay-bench-'))
const sock = path.join(dir, 'inbound.sock')
const relay = spawn('/usr/bin/python3', ['-I', '-S', relayScript, sock], { stdio: 'inherit' })
while (!fs.existsSync(sock)) await new Promise((r) => setTimeout(r, 20))

function agentFor(target: GuestPortTarget, keepAlive: boolean): http.Agent {
  const agent = new http.Agent({ keepAlive, maxSockets: concurrency })
  agent.createConnection = () => target.connect()
  return agent
}

function get(agent: http.Agent, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ agent, path: urlPath })
    req.on('response', (res) => {
      let n = 0
      res.on('data', (c: Buffer) => (n += c.length))
      res.on('end', () => resolve(n))
    })
    req.on('error', reject)
  })
}

async function requestRate(target: GuestPortTarget, keepAlive: boolean) {
  const agent = agentFor(target, keepAlive)
  const times: number[] = []
  const t0 = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) {
        const s = performance.now()
        await get(agent, '/')
        times.push(performance.now() - s)
      }
    }),
  )
  const seconds = (performance.now() - t0) / 1000
  agent.destroy()
  times.sort((a, b) => a - b)
  return { rps: requests / seconds, p99: times[Math.floor(times.length * 0.99)] }
}

async function throughput(target: GuestPortTarget) {
  const agent = agentFor(target, false)
  const t0 = performance.now()
  const n = await get(agent, '/bulk')
  return n / 2 ** 20 / ((performance.now() - t0) / 1000)
}

const ways = { direct: tcpTarget(port), relay: relayTarget(sock, port) }
const results: Record<string, Record<string, number>> = {}
for (const [name, target] of Object.entries(ways)) {
  await requestRate(target, true) // warm-up
  const ka = await requestRate(target, true)
  const fresh = await requestRate(target, false)
  results[name] = {
    'keep-alive req/s': ka.rps,
    'keep-alive p99 ms': ka.p99,
    'new-connection req/s': fresh.rps,
    'bulk MiB/s': await throughput(target),
  }
}
relay.kill()
server.close()
fs.rmSync(dir, { recursive: true, force: true })

console.log(`inbound relay vs direct TCP (${requests} requests, ${concurrency} at a time)`)
for (const metric of Object.keys(results.direct)) {
  const d = results.direct[metric]
  const r = results.relay[metric]
  console.log(
    `${metric.padEnd(22)} direct ${d.toFixed(1).padStart(9)}  relay ${r.toFixed(1).padStart(9)}  ratio ${(r / d).toFixed(2)}`,
  )
}
