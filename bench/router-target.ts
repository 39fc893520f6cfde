/**
 * Processes for bench/router.ts, each on its own event loop. `upstream`: the app stand-in, a
 * plain Node HTTP server answering a fixed JSON body. `router <upstreamPort>`: the Rigbox app
 * router with one public route `bench` pointing at it. Both print `READY <port>`.
 */
import crypto from 'node:crypto'
import http from 'node:http'
import type net from 'node:net'
import { tcpTarget } from '../src/node/inbound.ts'
import { createRouter } from '../src/router/index.ts'

const mode = process.argv[2]
if (mode === 'upstream') {
  const body = JSON.stringify({ id: 'ws-abcdefgh', name: 'bench', status: 'running', ok: true })
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length })
    res.end(body)
  })
  // Longer than nginx's and the router's idle keep-alive, so neither sees its pool reset mid-run.
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () =>
    console.log(`READY ${(server.address() as net.AddressInfo).port}`),
  )
} else if (mode === 'router') {
  const upstreamPort = Number(process.argv[3])
  const router = await createRouter(
    {
      domain: 'localhost',
      lookup: async (subdomain) =>
        subdomain === 'bench'
          ? {
              appId: 'app_bench',
              subdomain,
              workspaceId: 'ws_bench',
              ownerId: 'u_bench',
              visibility: 'public',
              allowedEmails: [],
              enabled: true,
              port: 80,
            }
          : null,
      upstream: async () => tcpTarget(upstreamPort),
      authenticateKey: async () => null,
      // A public app only: no logins.
      redeemLogin: async () => null,
      sessionCaller: async () => null,
      endSession: async () => {},
      sessionSecret: crypto.randomBytes(32),
    },
    { port: 0 },
  )
  console.log(`READY ${(router.http.address() as net.AddressInfo).port}`)
} else {
  throw new Error('usage: router-target.ts upstream | router <upstreamPort>')
}
