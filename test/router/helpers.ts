import crypto from 'node:crypto'
import http from 'node:http'
import type net from 'node:net'
import { generateApiKey } from '../../src/auth/keys.ts'
import { tcpTarget } from '../../src/node/inbound.ts'
import {
  createRouter,
  issueLoginToken,
  type Router,
  type RouterOptions,
} from '../../src/router/index.ts'
import type { AppRoute, Caller, RouterDeps } from '../../src/router/types.ts'

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

export const users = {
  owner: { userId: 'u_owner', email: 'owner@example.com', key: generateApiKey() },
  friend: { userId: 'u_friend', email: 'friend@example.com', key: generateApiKey() },
  stranger: { userId: 'u_stranger', email: 'stranger@example.com', key: generateApiKey() },
}

/** The VM's service: echoes what it received, streams SSE, answers WebSocket frames. */
export async function startUpstream() {
  const sseSent: number[] = []
  const upgraded = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      let n = 0
      const tick = () => {
        sseSent.push(Date.now())
        res.write(`data: event ${n}\n\n`)
        if (++n === 3) res.end()
        else setTimeout(tick, 1000)
      }
      tick()
      return
    }
    if (url.pathname === '/hang') return // never answers: the router's response timeout
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'PUT',
      })
      res.end()
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = JSON.stringify({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
        remotePort: req.socket.remotePort,
      })
      res.writeHead(200, {
        'content-type': 'application/json',
        'set-cookie': ['app=1; Path=/', 'rigbox_session=evil; Path=/'],
      })
      res.end(body)
    })
  })
  server.on('upgrade', (req, socket: net.Socket) => {
    const accept = crypto
      .createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}${WS_GUID}`)
      .digest('base64')
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\nX-Saw-Auth: ${req.headers.authorization ?? '-'}\r\n\r\n`,
    )
    // Echo each (small, masked) client frame back unmasked.
    socket.on('data', (buf: Buffer) => {
      const len = buf[1] & 0x7f
      const mask = buf.subarray(2, 6)
      const payload = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4]))
      socket.write(Buffer.concat([Buffer.from([0x81, len]), payload]))
    })
    socket.on('error', () => socket.destroy())
    socket.on('end', () => socket.end())
    upgraded.add(socket)
    socket.on('close', () => upgraded.delete(socket))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    sseSent,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
        for (const s of upgraded) s.destroy()
      }),
  }
}

export const route = (sub: string, over: Partial<AppRoute> = {}): AppRoute => ({
  appId: `app_${sub}`,
  subdomain: sub,
  workspaceId: `ws_${sub}`,
  ownerId: users.owner.userId,
  visibility: 'private',
  allowedEmails: [],
  enabled: true,
  port: 8000,
  ...over,
})

/** A recorded login link or session of the in-memory deps. */
interface Grant {
  subdomain: string
  caller: Caller
  /** The API key it stands on: revoking the key ends it. */
  key: string
  expiresAt: number
}

/** Test double of the control plane's stores: routes, keys, login links and sessions in memory. */
export function memoryDeps(
  upstreamPort: number,
  routes: AppRoute[],
  domain = 'localhost',
): RouterDeps & {
  routes: Map<string, AppRoute>
  targets: Map<string, Awaited<ReturnType<RouterDeps['upstream']>>>
  keys: Map<string, Caller>
  links: Map<string, Grant>
  sessions: Map<string, Grant>
} {
  const keys = new Map<string, Caller>(
    Object.values(users).map((u) => [u.key, { userId: u.userId, email: u.email }]),
  )
  const map = new Map(routes.map((r) => [r.subdomain, r]))
  const targets = new Map<string, Awaited<ReturnType<RouterDeps['upstream']>>>()
  const links = new Map<string, Grant>()
  const sessions = new Map<string, Grant>()
  const live = (g: Grant | undefined, sub: string) =>
    g && g.subdomain === sub && g.expiresAt > Date.now() && keys.has(g.key) ? g : null
  return {
    domain,
    routes: map,
    targets,
    keys,
    links,
    sessions,
    sessionSecret: crypto.randomBytes(32),
    lookup: async (sub) => map.get(sub) ?? null,
    upstream: async (r) => targets.get(r.subdomain) ?? tcpTarget(upstreamPort),
    authenticateKey: async (key) => keys.get(key) ?? null,
    redeemLogin: async (linkId, sub, expiresAt) => {
      const link = live(links.get(linkId), sub)
      links.delete(linkId)
      if (!link) return null
      const sessionId = crypto.randomUUID()
      sessions.set(sessionId, { ...link, expiresAt })
      return { sessionId, caller: link.caller }
    },
    sessionCaller: async (id, sub) => live(sessions.get(id), sub)?.caller ?? null,
    endSession: async (id) => {
      sessions.delete(id)
    },
  }
}

/** A login link's token for `sub`, recorded in the deps as the API would (made with `user`'s key). */
export function loginToken(
  deps: ReturnType<typeof memoryDeps>,
  sub: string,
  over: { user?: (typeof users)[keyof typeof users]; ttlMs?: number; secret?: Buffer } = {},
): string {
  const user = over.user ?? users.owner
  const id = crypto.randomUUID()
  const ttlMs = over.ttlMs ?? 60_000
  const caller = { userId: user.userId, email: user.email }
  deps.links.set(id, { subdomain: sub, caller, key: user.key, expiresAt: Date.now() + ttlMs })
  return issueLoginToken(over.secret ?? deps.sessionSecret, {
    id,
    subdomain: sub,
    ...caller,
    ttlMs,
  })
}

export async function startRouter(deps: RouterDeps, opts: Partial<RouterOptions> = {}) {
  const router: Router = await createRouter(deps, { port: 0, ...opts })
  const port = (router.http.address() as net.AddressInfo).port
  return { router, port }
}

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  json: () => Record<string, unknown>
  reused: boolean
}

/** One request to the router with a chosen Host; resolves with the whole answer. */
export function get(
  port: number,
  host: string,
  path = '/',
  headers: http.OutgoingHttpHeaders = {},
  extra: http.RequestOptions & { body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, headers: { host, ...headers }, ...extra },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString()
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body) as Record<string, unknown>,
            reused: req.reusedSocket,
          })
        })
      },
    )
    req.on('error', reject)
    req.end(extra.body)
  })
}

export const bearer = (key: string) => ({ authorization: `Bearer ${key}` })
