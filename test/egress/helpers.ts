import http from 'node:http'
import net from 'node:net'
import { createEgressProxy, type EgressProxyOptions } from '../../src/egress/proxy.ts'
import type { EgressPolicy } from '../../src/egress/policy.ts'

export const WS = 'ws-test'

/** Policies by workspace, changed by the tests between requests. */
export const policies = new Map<string, EgressPolicy>()

export function setPolicy(allow: string[] = [], deny: string[] = [], ws = WS): void {
  policies.set(ws, { allow, deny })
}

/**
 * A proxy behind an in-process loopback listener: each accepted socket goes to `handle` as if
 * it had come over a VM's tunnel. `names` is the test's DNS.
 */
export async function startProxy(
  names: Record<string, string[]>,
  extra: Partial<EgressProxyOptions> = {},
) {
  const proxy = createEgressProxy({
    policyFor: async (ws) => policies.get(ws) ?? { allow: [], deny: [] },
    resolve: async (host) => {
      const found = names[host]
      if (!found) throw Object.assign(new Error(`no such host ${host}`), { code: 'ENOTFOUND' })
      return found
    },
    connectTimeoutMs: 2000,
    ...extra,
  })
  const listener = net.createServer({ allowHalfOpen: true }, (sock) => proxy.handle(sock, WS))
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r))
  const port = (listener.address() as net.AddressInfo).port
  return {
    proxy,
    port,
    async close() {
      proxy.close()
      await new Promise((r) => listener.close(r))
    },
  }
}

export interface Echoed {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: string
}

/** An HTTP server on 127.0.0.1 that answers with what it received, and a WebSocket-ish echo. */
export async function startTarget() {
  // Upgraded sockets leave the server's books: closeAllConnections() does not see them.
  const upgraded = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c))
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.setHeader('x-hop', 'must-go')
      res.setHeader('connection', 'x-hop')
      const echoed: Echoed = { method: req.method!, url: req.url!, headers: req.headers, body }
      res.end(JSON.stringify(echoed))
    })
  })
  server.on('upgrade', (req, sock: net.Socket, head: Buffer) => {
    sock.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n')
    if (head.length) sock.write(head.toString().toUpperCase())
    sock.on('data', (d: Buffer) => sock.write(d.toString().toUpperCase()))
    sock.on('end', () => sock.end())
    upgraded.add(sock)
    sock.on('close', () => upgraded.delete(sock))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      server.closeAllConnections()
      for (const s of upgraded) s.destroy()
      return new Promise((r) => server.close(r))
    },
  }
}

/** A TCP server on 127.0.0.1: upper-cases what it reads, then says `bye` when the client ends. */
export async function startEcho() {
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock)
    sock.on('data', (d) => sock.write(d.toString().toUpperCase()))
    sock.on('end', () => sock.end('bye'))
    sock.on('close', () => sockets.delete(sock))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((r) => server.close(r))
    },
  }
}

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** An absolute-form request through the proxy. */
export function viaProxy(
  proxyPort: number,
  url: string,
  opts: {
    method?: string
    headers?: Record<string, string>
    body?: string
    agent?: http.Agent
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: proxyPort,
      method: opts.method ?? 'GET',
      path: url,
      headers: { host: new URL(url).host, ...opts.headers },
      agent: opts.agent ?? false,
    })
    req.on('response', (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** `CONNECT authority` through the proxy: the status, and the tunnel socket when it is 200. */
export function connectVia(
  proxyPort: number,
  authority: string,
): Promise<{ status: number; socket: net.Socket; head: Buffer; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: proxyPort,
      method: 'CONNECT',
      path: authority,
      agent: false,
    })
    // Node reports every answer to CONNECT here; a refusal's body follows its head as "tunnel"
    // bytes until the proxy closes.
    req.on('connect', (res, socket, head) => {
      if (res.statusCode === 200) return resolve({ status: 200, socket, head, body: '' })
      readAll(socket).then(
        (rest) => resolve({ status: res.statusCode!, socket, head, body: head.toString() + rest }),
        reject,
      )
    })
    req.on('error', reject)
    req.end()
  })
}

/** Everything a socket sends until it ends. */
export function readAll(sock: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    sock.on('data', (d: Buffer) => (out += d))
    sock.on('end', () => resolve(out))
    sock.on('error', reject)
  })
}

export async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}
