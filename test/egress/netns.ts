import { execFile, spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import { promisify } from 'node:util'

const run = promisify(execFile)

/**
 * A test host the test owns entirely: a network namespace joined to the host by a veth pair in
 * 10.213.<r>.0/29, with an HTTP server on its side. The host side gets `.1`, the server `.2`;
 * `.5` is on the link but answers nobody (for connect timeouts). Nothing leaves the machine.
 */
export interface NetnsHost {
  name: string
  hostAddress: string
  address: string
  port: number
  silentAddress: string
  close(): Promise<void>
}

const SERVER = `
const http = require('node:http')
const net = require('node:net')
const [addr, port] = process.argv.slice(1)
http.createServer((req, res) => {
  let body = ''
  req.on('data', (c) => (body += c))
  req.on('end', () => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ from: 'netns', method: req.method, url: req.url, headers: req.headers, body }))
  })
}).listen(Number(port), addr, () => console.log('ready'))
`

async function ip(...args: string[]): Promise<void> {
  await run('ip', args)
}

/** Null (with the reason) when this sandbox does not let us create namespaces. */
export async function createNetnsHost(): Promise<NetnsHost | { skip: string }> {
  const id = crypto.randomBytes(3).toString('hex')
  const name = `rbx-egress-${id}`
  const vethHost = `rbxe${id}a`
  const vethNs = `rbxe${id}b`
  const used = (await run('ip', ['-o', '-4', 'addr', 'show'])).stdout
  let r = crypto.randomInt(1, 255)
  while (used.includes(`10.213.${r}.`)) r = (r % 254) + 1
  const [hostAddress, address, silentAddress] = [1, 2, 5].map((n) => `10.213.${r}.${n}`)
  const port = 8080
  let child: ChildProcess | undefined
  let nsMade = false
  let linkMade = false

  const close = async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((res) => child!.once('exit', res))
      child.kill('SIGKILL')
      await exited
    }
    // Deleting one end of a veth deletes both; the namespace goes last.
    if (linkMade) await ip('link', 'del', vethHost).catch(() => {})
    if (nsMade) await ip('netns', 'del', name).catch(() => {})
  }

  try {
    try {
      await ip('netns', 'add', name)
    } catch (err) {
      return { skip: `ip netns add failed: ${(err as { stderr?: string }).stderr?.trim()}` }
    }
    nsMade = true
    await ip('link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs)
    linkMade = true
    await ip('link', 'set', vethNs, 'netns', name)
    await ip('addr', 'add', `${hostAddress}/29`, 'dev', vethHost)
    await ip('link', 'set', vethHost, 'up')
    await ip('netns', 'exec', name, 'ip', 'addr', 'add', `${address}/29`, 'dev', vethNs)
    await ip('netns', 'exec', name, 'ip', 'link', 'set', vethNs, 'up')
    await ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up')
    child = spawn(
      'ip',
      ['netns', 'exec', name, process.execPath, '-e', SERVER, address, `${port}`],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('netns server did not start')), 10_000)
      child!.stdout!.once('data', () => {
        clearTimeout(timer)
        resolve()
      })
      child!.once('exit', (code) => reject(new Error(`netns server exited (${code})`)))
    })
  } catch (err) {
    await close()
    throw err
  }
  return { name, hostAddress, address, port, silentAddress, close }
}
