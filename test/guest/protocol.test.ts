// Wire-format pieces shared by the agent and the host client.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { afterOk, FrameDecoder, frameHeader, scanForOk, scanForSync } from '../../agent/protocol.ts'
import { _test as sys } from '../../agent/system.ts'

const NONCE = 'a1b2c3d4e5f6a7b8c9d0e1f2'

test('guest finds a SYNC line after junk, even without a newline before it', () => {
  const junk = Buffer.from([0, 1, 2, 0x53, 0x59, 10, 99])
  const r = scanForSync(Buffer.concat([junk, Buffer.from(`xxSYNC ${NONCE}\nPRI`)]))
  assert.ok('nonce' in r)
  assert.equal(r.nonce, NONCE)
  assert.equal(r.rest.toString(), 'PRI')
})

test('guest keeps a partial SYNC line and drops older junk', () => {
  const r = scanForSync(Buffer.concat([Buffer.alloc(5000, 7), Buffer.from('SYNC a1b2')]))
  assert.ok('keep' in r)
  assert.equal(r.keep.toString(), 'SYNC a1b2')
  const r2 = scanForSync(Buffer.concat([r.keep, Buffer.from('c3d4e5\n')]))
  assert.ok('nonce' in r2 && r2.nonce === 'a1b2c3d4e5')
  const tail = scanForSync(Buffer.alloc(5000, 7))
  assert.ok('keep' in tail && tail.keep.length <= 5)
})

test('after OK: repeats are dropped, a new nonce resyncs, anything else is HTTP/2', () => {
  const preface = 'PRI * HTTP/2.0\r\n'
  const r = afterOk(Buffer.from(`SYNC ${NONCE}\nSYNC ${NONCE}\n${preface}`), NONCE)
  assert.equal(r.kind, 'http2')
  assert.equal(r.kind === 'http2' && r.rest.toString(), preface)
  const more = afterOk(Buffer.from(`SYNC ${NONCE}\nSYN`), NONCE)
  assert.equal(more.kind, 'more')
  assert.equal(more.kind === 'more' && more.keep.toString(), 'SYN')
  const other = afterOk(Buffer.from(`SYNC ffffffffffffffff\nrest`), NONCE)
  assert.equal(other.kind, 'resync')
  assert.equal(other.kind === 'resync' && other.nonce, 'ffffffffffffffff')
})

test('host finds its OK behind stale bytes and ignores other nonces', () => {
  const stale = Buffer.concat([Buffer.alloc(100, 0), Buffer.from('OK ffffffffffffffff\n')])
  const r = scanForOk(Buffer.concat([stale, Buffer.from(`OK ${NONCE}\n\x00\x00`)]), NONCE)
  assert.ok('rest' in r)
  assert.equal(r.rest.length, 2)
  const partial = scanForOk(Buffer.concat([Buffer.alloc(1000), Buffer.from(`OK ${NONCE}`)]), NONCE)
  assert.ok('keep' in partial)
  const done = scanForOk(Buffer.concat([partial.keep, Buffer.from('\n')]), NONCE)
  assert.ok('rest' in done)
})

test('frame decoder reassembles split frames and rejects oversized ones', () => {
  const payload = Buffer.from('hello')
  const frame = Buffer.concat([frameHeader(1, payload.length), payload, frameHeader(3, 0)])
  const d = new FrameDecoder()
  const out = []
  for (const b of frame) out.push(...d.push(Buffer.from([b])))
  assert.deepEqual(
    out.map((f) => [f.type, f.payload.toString()]),
    [
      [1, 'hello'],
      [3, ''],
    ],
  )
  assert.equal(d.pending, 0)
  assert.throws(() => new FrameDecoder(10).push(frameHeader(1, 11)))
})

test('listening sockets from /proc/net/tcp{,6}', () => {
  const text = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1',
    '   1: 0100007F:1F91 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1',
  ].join('\n')
  assert.deepEqual(sys.parseNetTcp(text), [
    { address: '127.0.0.1', port: 8080, protocol: 'tcp', inode: '12345' },
  ])
  assert.equal(sys.hexToIp('00000000000000000000000000000000'), '::')
  assert.equal(sys.hexToIp('00000000000000000000000001000000'), '::1')
  assert.equal(sys.hexToIp('0000000000000000FFFF00000100007F'), '::ffff:127.0.0.1')
  assert.equal(sys.hexToIp('B80D0120000000000000000001000000'), '2001:db8::1')
})
