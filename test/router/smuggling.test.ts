import assert from 'node:assert/strict'
import { after, before, beforeEach, describe, it } from 'node:test'
import type { Router } from '../../src/router/index.ts'
import { memoryDeps, route, startRouter } from './helpers.ts'
import { eventually, rawClient, rawRequest, recordingUpstream, type RawResponse } from './raw.ts'

/** Chunked framing of `body` in one chunk. */
const chunked = (body: string) => `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`
const json = (r: RawResponse | undefined) => JSON.parse(r?.body ?? 'null') as Record<string, string>

describe('router request framing (raw sockets)', () => {
  let up: Awaited<ReturnType<typeof recordingUpstream>>
  let router: Router
  let port: number
  let host: string
  const seen = () => up.seen.map((s) => [s.method, s.url, s.body])

  before(async () => {
    up = await recordingUpstream()
    const deps = memoryDeps(up.port, [route('pub', { visibility: 'public' })])
    ;({ router, port } = await startRouter(deps, { responseTimeoutMs: 3000 }))
    host = `pub.localhost:${port}`
  })
  beforeEach(() => {
    up.seen.length = 0
  })
  after(async () => {
    await router.close()
    await up.close()
  })

  it('the reported attack: a chunked GET body never becomes a request of its own', async () => {
    const poison = `GET /poison HTTP/1.1\r\nHost: ${host}\r\n\r\n`
    const attacker = await rawClient(port)
    attacker.send(
      `GET /a HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(poison)}`,
    )
    const [mine] = await attacker.responses(1)
    const visitor = await rawClient(port)
    visitor.send(`GET /b HTTP/1.1\r\nHost: ${host}\r\nCookie: app=visitor\r\n\r\n`)
    const [theirs] = await visitor.responses(1)
    attacker.destroy()
    visitor.destroy()
    assert.equal(json(mine).url, '/a')
    assert.equal(json(mine).body, poison, 'the body reached the app as the body of /a')
    assert.equal(json(theirs).url, '/b', 'the visitor got their own answer')
    assert.deepEqual(seen(), [
      ['GET', '/a', poison],
      ['GET', '/b', ''],
    ])
    assert.equal(up.seen[1].conn, up.seen[0].conn, 'the pooled connection was reused, safely')
  })

  for (const method of ['GET', 'DELETE', 'OPTIONS', 'POST']) {
    for (const framing of ['content-length', 'chunked'] as const) {
      it(`${method} with a ${framing} body reaches the app with exactly that body`, async () => {
        const body = `GET /smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`
        const head = `${method} /x HTTP/1.1\r\nHost: ${host}\r\n`
        const client = await rawClient(port)
        client.send(
          framing === 'chunked'
            ? `${head}Transfer-Encoding: chunked\r\n\r\n${chunked(body)}`
            : `${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        )
        client.send(`GET /next HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
        const [first, second] = await client.responses(2)
        client.destroy()
        assert.equal(json(first).body, body)
        assert.equal(json(second).url, '/next')
        assert.deepEqual(seen(), [
          [method, '/x', body],
          ['GET', '/next', ''],
        ])
        const h = up.seen[0].headers
        if (framing === 'chunked') {
          assert.equal(h['transfer-encoding'], 'chunked')
          assert.equal(h['content-length'], undefined)
        } else {
          assert.equal(h['content-length'], String(Buffer.byteLength(body)))
          assert.equal(h['transfer-encoding'], undefined)
        }
      })
    }
  }

  const ambiguous: [string, string][] = [
    [
      'TE and CL',
      'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n',
    ],
    ['TE gzip', 'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding: gzip\r\n\r\nabcd'],
    [
      'TE chunked, identity',
      'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding: chunked, identity\r\n\r\n',
    ],
    ['TE gzip, chunked', 'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'],
    [
      'TE in two lines',
      'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n',
    ],
    [
      'TE chunked twice',
      'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
    ],
    ['empty TE', 'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding: \r\n\r\n'],
    ['TE on HTTP/1.0', 'POST /x HTTP/1.0\r\nH\r\nTransfer-Encoding: chunked\r\n\r\n'],
    [
      'duplicate CL, equal',
      'POST /x HTTP/1.1\r\nH\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd',
    ],
    [
      'duplicate CL, differing',
      'POST /x HTTP/1.1\r\nH\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd',
    ],
    ['CL list', 'POST /x HTTP/1.1\r\nH\r\nContent-Length: 4, 4\r\n\r\nabcd'],
    ['obs-fold', 'GET /x HTTP/1.1\r\nH\r\nX-A: a\r\n b\r\n\r\n'],
    ['obs-fold into TE', 'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding: x\r\n chunked\r\n\r\n'],
    ['space before colon', 'POST /x HTTP/1.1\r\nH\r\nTransfer-Encoding : chunked\r\n\r\n'],
    ['bare LF line ends', 'GET /x HTTP/1.1\nH\n\n'],
    ['bare LF in a header', 'GET /x HTTP/1.1\r\nH\nX-A: 1\r\n\r\n'],
    ['two Host headers', 'GET /x HTTP/1.1\r\nH\r\nHost: other.localhost\r\n\r\n'],
  ]
  for (const [why, raw] of ambiguous) {
    it(`400 in the error shape, nothing forwarded, connection closed: ${why}`, async () => {
      const client = await rawClient(port)
      client.send(
        raw.replace('\r\nH\r\n', `\r\nHost: ${host}\r\n`).replace('\nH\n', `\nHost: ${host}\n`),
      )
      const [r] = await client.responses(1)
      assert.equal(r?.status, 400, why)
      assert.match(r.headers['content-type'] ?? '', /application\/json/)
      assert.equal((json(r).error as unknown as { code: string }).code, 'BAD_REQUEST')
      assert.ok(await client.closed(), 'the connection is closed after an unframeable request')
      client.destroy()
      await new Promise((r) => setTimeout(r, 50))
      assert.deepEqual(seen(), [])
    })
  }

  for (const [why, body] of [
    ['a chunk size past 2^64', 'FFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n'],
    ['bare LF in the chunk framing', '3\nabc\n0\n\n'],
  ]) {
    it(`a body that breaks its framing midway gets 400 and poisons nothing: ${why}`, async () => {
      const client = await rawClient(port)
      client.send(`POST /x HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`)
      const [r] = await client.responses(1)
      assert.equal(r?.status, 400)
      assert.equal((json(r).error as unknown as { code: string }).code, 'BAD_REQUEST')
      assert.ok(await client.closed())
      const next = await rawRequest(port, `GET /next HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
      assert.equal(json(next).url, '/next')
      assert.ok(up.seen.every((s) => s.url !== '/x' || !s.complete))
      assert.deepEqual(
        up.seen.filter((s) => s.complete).map((s) => s.url),
        ['/next'],
      )
    })
  }

  it('a malformed request pipelined after a good one: the good one is answered, then close', async () => {
    const client = await rawClient(port)
    client.send(
      `GET /good HTTP/1.1\r\nHost: ${host}\r\n\r\n` +
        `POST /bad HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`,
    )
    const [good] = await client.responses(1)
    assert.equal(json(good).url, '/good')
    assert.ok(await client.closed())
    client.destroy()
    assert.deepEqual(seen(), [['GET', '/good', '']])
  })

  it('a Connection header cannot strip the framing headers on the way upstream', async () => {
    const body = `GET /smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`
    const client = await rawClient(port)
    client.send(
      `GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive, content-length\r\n` +
        `Content-Length: ${body.length}\r\n\r\n${body}` +
        `DELETE /y HTTP/1.1\r\nHost: ${host}\r\nConnection: transfer-encoding\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n${chunked(body)}`,
    )
    const [x, y] = await client.responses(2)
    client.destroy()
    assert.deepEqual([json(x).body, json(y).body], [body, body])
    assert.deepEqual(seen(), [
      ['GET', '/x', body],
      ['DELETE', '/y', body],
    ])
  })

  it('a client gone mid-body: its upstream connection is closed, never reused', async () => {
    const quitter = await rawClient(port)
    quitter.send(`POST /slow HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1000\r\n\r\n0123456789`)
    assert.ok(await eventually(() => up.seen.length === 1))
    quitter.destroy()
    const next = await rawRequest(port, `GET /b HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    assert.equal(json(next).url, '/b')
    assert.deepEqual(seen(), [
      ['POST', '/slow', '0123456789'],
      ['GET', '/b', ''],
    ])
    assert.equal(up.seen[0].complete, false)
    assert.notEqual(up.seen[1].conn, up.seen[0].conn)
  })

  it('an app that answers before reading the body: that connection is not reused', async () => {
    const client = await rawClient(port)
    const size = 200_000
    client.send(`POST /early HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${size}\r\n\r\n`)
    client.send('x'.repeat(1000))
    const [early] = await client.responses(1)
    assert.equal(early.status, 413)
    client.send('x'.repeat(size - 1000))
    client.send(`GET /after HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    const [after] = await client.responses(1)
    client.destroy()
    assert.equal(json(after).url, '/after', 'the client connection stayed in step')
    assert.deepEqual(
      up.seen.map((s) => s.url),
      ['/early', '/after'],
    )
    assert.notEqual(up.seen[1].conn, up.seen[0].conn)
  })

  it('an upgrade the app refuses: nothing after it reaches the app on that connection', async () => {
    const client = await rawClient(port)
    client.send(
      `GET /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n` +
        `GET /second HTTP/1.1\r\nHost: ${host}\r\nCookie: rigbox_session=secret\r\n\r\n`,
    )
    const [refused] = await client.responses(1)
    assert.equal(refused.status, 200)
    assert.equal(json(refused).url, '/ws')
    assert.ok(await client.closed(), 'the router closes after a non-101 answer')
    client.destroy()
    await new Promise((r) => setTimeout(r, 50))
    assert.deepEqual(
      up.seen.map((s) => s.url),
      ['/ws'],
    )
  })

  it('an upgrade request that declares a body is refused', async () => {
    for (const framing of [
      'Content-Length: 5\r\n\r\nhello',
      'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ]) {
      const r = await rawRequest(
        port,
        `GET /ws HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${framing}`,
      )
      assert.equal(r?.status, 400, framing)
    }
    assert.deepEqual(seen(), [])
  })
})
