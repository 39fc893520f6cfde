import http from 'node:http'
import net from 'node:net'

/** One request as the app saw it, and on which of its TCP connections. */
export interface Seen {
  method: string
  url: string
  body: string
  /** The app's own count of its accepted connections: same number, same socket. */
  conn: number
  /** The whole declared body arrived. */
  complete: boolean
  headers: http.IncomingHttpHeaders
}

/**
 * A keep-alive app that records every request it parses. `/early` answers 413 at once without
 * reading the body (an app refusing an upload); everything else reads the body, then echoes.
 */
export async function recordingUpstream() {
  const seen: Seen[] = []
  const connOf = new WeakMap<net.Socket, number>()
  let conns = 0
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const entry: Seen = {
      method: req.method ?? '',
      url: req.url ?? '',
      body: '',
      conn: connOf.get(req.socket) ?? -1,
      complete: false,
      headers: req.headers,
    }
    seen.push(entry)
    if (req.url === '/early') {
      res.writeHead(413, { 'content-type': 'text/plain', 'content-length': 8 })
      res.end('too big\n')
      return
    }
    req.on('data', (c: Buffer) => (entry.body += c.toString('latin1')))
    req.on('end', () => {
      entry.complete = true
      const body = JSON.stringify({ method: entry.method, url: entry.url, body: entry.body })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(body)
    })
  })
  server.on('connection', (s: net.Socket) => connOf.set(s, ++conns))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    connections: () => conns,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
      }),
  }
}

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** Complete responses at the start of `buf` (Content-Length or chunked framing), and the rest. */
function parseResponses(buf: Buffer, closed: boolean): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = []
  for (;;) {
    const end = buf.indexOf('\r\n\r\n')
    if (end < 0) break
    const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? 0)
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).toLowerCase()
      headers[name] = headers[name] ? `${headers[name]}, ` : ''
      headers[name] += line.slice(colon + 1).trim()
    }
    let at = end + 4
    let body: Buffer
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) body = Buffer.alloc(0)
    else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length'])
      if (buf.length < at + n) break
      body = buf.subarray(at, at + n)
      at += n
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = []
      let done = false
      for (;;) {
        const eol = buf.indexOf('\r\n', at)
        if (eol < 0) break
        const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16)
        if (buf.length < eol + 2 + size + 2) break
        parts.push(buf.subarray(eol + 2, eol + 2 + size))
        at = eol + 2 + size + 2
        if (size === 0) {
          done = true
          break
        }
      }
      if (!done) break
      body = Buffer.concat(parts)
    } else {
      // Delimited by the connection closing.
      if (!closed) break
      body = buf.subarray(at)
      at = buf.length
    }
    responses.push({ status, headers, body: body.toString('latin1') })
    buf = buf.subarray(at)
  }
  return { responses, rest: buf }
}

export interface RawClient {
  socket: net.Socket
  send(data: string | Buffer): void
  /** Waits for `n` more complete responses (or the connection's end, or the timeout). */
  responses(n: number, timeoutMs?: number): Promise<RawResponse[]>
  /** Resolves true once the router has closed the connection (false after the timeout). */
  closed(timeoutMs?: number): Promise<boolean>
  destroy(): void
}

/** A hand-driven TCP client of the router: bytes exactly as written, responses as they come. */
export async function rawClient(port: number): Promise<RawClient> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.on('error', () => {})
  let buf: Buffer = Buffer.alloc(0)
  let ended = false
  const pending: RawResponse[] = []
  let wake = () => {}
  const pump = () => {
    const { responses, rest } = parseResponses(buf, ended)
    pending.push(...responses)
    buf = rest
    wake()
  }
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c])
    pump()
  })
  socket.on('close', () => {
    ended = true
    pump()
  })
  const waitFor = (ready: () => boolean, timeoutMs: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs)
      function finish() {
        clearTimeout(timer)
        wake = () => {}
        resolve()
      }
      wake = () => {
        if (ready()) finish()
      }
      wake()
    })
  return {
    socket,
    send: (data) => socket.write(data),
    async responses(n, timeoutMs = 3000) {
      await waitFor(() => pending.length >= n || ended, timeoutMs)
      return pending.splice(0, n)
    },
    async closed(timeoutMs = 3000) {
      await waitFor(() => ended, timeoutMs)
      return ended
    },
    destroy: () => socket.destroy(),
  }
}

/** One request on a fresh connection; its first response (or none if the router closed first). */
export async function rawRequest(port: number, data: string | Buffer, timeoutMs = 3000) {
  const client = await rawClient(port)
  try {
    client.send(data)
    const [response] = await client.responses(1, timeoutMs)
    return response
  } finally {
    client.destroy()
  }
}

/** Waits until `check` holds (the app's view settles a little after the client's). */
export async function eventually(check: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const until = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > until) return false
    await new Promise((r) => setTimeout(r, 10))
  }
  return true
}
