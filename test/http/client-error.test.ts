import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { makeApp, type TestApp } from '../helpers/app.ts'

/** Writes raw bytes to the server and reads until it closes the connection. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let answer = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => (answer += chunk))
    socket.on('close', () => resolve(answer))
    socket.on('error', (err: NodeJS.ErrnoException) =>
      // The server closes as soon as it has answered; a reset after the answer is fine.
      err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve(answer) : reject(err),
    )
    socket.setTimeout(5000, () => socket.destroy(new Error('no answer in 5 s')))
    socket.write(request)
  })
}

function parse(answer: string) {
  const [head = '', body = ''] = answer.split('\r\n\r\n')
  const [statusLine = '', ...headerLines] = head.split('\r\n')
  const headers = Object.fromEntries(
    headerLines.map((l) => [
      l.slice(0, l.indexOf(':')).toLowerCase(),
      l.slice(l.indexOf(':') + 1).trim(),
    ]),
  )
  return { status: Number(statusLine.split(' ')[1]), headers, body }
}

/** Finding 11: the 431 (and other refusals before routing) were not in our error shape. */
describe('requests refused before any route runs', () => {
  let t: TestApp
  let port: number
  before(async () => {
    t = await makeApp()
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    port = (t.app.server.address() as net.AddressInfo).port
  })
  after(() => t.close())

  it('answers headers over the size limit with 431 in the JSON error shape', async () => {
    const answer = parse(
      await rawExchange(
        port,
        `GET /api/v1/workspaces HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`,
      ),
    )
    assert.equal(answer.status, 431)
    assert.match(answer.headers['content-type'] ?? '', /^application\/json/)
    assert.equal(Number(answer.headers['content-length']), Buffer.byteLength(answer.body))
    assert.deepEqual(JSON.parse(answer.body), {
      error: { code: 'HEADERS_TOO_LARGE', message: 'the request headers are too large' },
    })
  })

  it('answers a malformed request with 400 in the JSON error shape', async () => {
    const answer = parse(await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost x\r\n\r\n'))
    assert.equal(answer.status, 400)
    assert.equal(JSON.parse(answer.body).error.code, 'BAD_REQUEST')
  })

  it('answers URLs the router refuses (bad percent-encoding, overlong params) in the shape', async () => {
    for (const [url, status, code] of [
      ['/api/v1/api-keys/%', 400, 'BAD_REQUEST'],
      ['/api/v1/workspaces/%E0%A4%A', 400, 'BAD_REQUEST'],
      [`/api/v1/workspaces/${'a'.repeat(200)}`, 414, 'URI_TOO_LONG'],
    ] as const) {
      const res = await t.app.inject({ method: 'GET', url })
      assert.equal(res.statusCode, status, url)
      assert.equal(res.json().error.code, code, res.body)
      assert.equal(typeof res.json().error.message, 'string')
    }
  })

  it('keeps serving after refusing', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`)
    assert.equal(res.status, 200)
  })
})
