// Wire-format pieces shared by the agent and the host client.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  afterOk,
  commandProblem,
  envProblem,
  EXEC_LIMITS,
  FrameDecoder,
  frameHeader,
  MAX_SPEC_BYTES,
  scanForOk,
  scanForSync,
  specPreamble,
} from '../../agent/protocol.ts'
import { toHttpError } from '../../agent/router.ts'
import { findTool, loginShellArgv, shQuote, splitArg } from '../../agent/users.ts'
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

test('exec limits: UTF-8 bytes, not characters; NUL and lone surrogates refused', () => {
  const max = EXEC_LIMITS.commandBytes
  assert.equal(commandProblem('x'.repeat(max)), null)
  assert.match(commandProblem('x'.repeat(max + 1)) ?? '', /262145 bytes/)
  assert.equal(commandProblem('😀'.repeat(max / 4)), null)
  assert.match(commandProblem('😀'.repeat(max / 4) + 'x') ?? '', /bytes/)
  assert.match(commandProblem('a\0b') ?? '', /NUL/)
  assert.match(commandProblem('a\ud800b') ?? '', /surrogate/)
  assert.match(commandProblem('') ?? '', /empty/)
  assert.equal(envProblem({ PATH: '', V: 'ħ😀' }), null)
  assert.match(envProblem({ 'A-B': 'x' }) ?? '', /not a variable name/)
  assert.match(envProblem({ V: 'ħ'.repeat(EXEC_LIMITS.envValueBytes / 2 + 1) }) ?? '', /bytes/)
  const many = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`K${i}`, '']))
  assert.match(envProblem(many) ?? '', /1001 entries/)
  const wide = Object.fromEntries(
    Array.from({ length: 5 }, (_, i) => [`K${i}`, 'x'.repeat(60_000)]),
  )
  assert.match(envProblem(wide) ?? '', /env is 300010 bytes/)
})

test('the largest valid spec fits the preamble limit, however JSON escapes it', () => {
  // Control characters are the costliest to escape (6 bytes each).
  const worst = '\u0001'
  const env: Record<string, string> = {}
  let left = EXEC_LIMITS.envTotalBytes
  for (let i = 0; left > 0; i++) {
    const key = `K${i}`
    const n = Math.min(EXEC_LIMITS.envValueBytes, left - key.length)
    env[key] = worst.repeat(Math.max(0, n))
    left -= key.length + Math.max(0, n)
  }
  assert.equal(envProblem(env), null)
  const spec = { command: worst.repeat(EXEC_LIMITS.commandBytes), env, cwd: '/'.repeat(4096) }
  assert.equal(commandProblem(spec.command), null)
  assert.ok(specPreamble(spec).length - 4 <= MAX_SPEC_BYTES)
})

test('a script split over arguments is joined back exactly', () => {
  const pair = '😀'
  const pieces = splitArg('a'.repeat(32 * 1024 - 1) + pair + 'b')
  assert.equal(pieces.length, 2, 'the pair moves to the next piece whole')
  assert.equal(pieces[0].length, 32 * 1024 - 1)
  assert.equal(pieces.join(''), 'a'.repeat(32 * 1024 - 1) + pair + 'b')
  for (const p of splitArg('ħ😀'.repeat(200_000))) assert.ok(Buffer.byteLength(p) < 128 * 1024)

  // Three pieces, shell specials, trailing newlines, and `$#`/`$0` as in `bash -c script`.
  const text = `ħ'"\\$x\`😀\n`.repeat(30_000)
  const script = `V=${shQuote(text)}
printf %s "$V" | sha256sum; echo "[$#|$0|\${__rigbox_script-unset}]"\n\n`
  const argv = loginShellArgv(findTool('bash'), script)
  assert.ok(argv.length > 6)
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-join-'))
  const out = execFileSync(argv[0], argv.slice(1), {
    env: { HOME: home, PATH: '/usr/bin:/bin' },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
  })
  fs.rmSync(home, { recursive: true })
  const sha = createHash('sha256').update(text).digest('hex')
  assert.equal(out, `${sha}  -\n[0|bash|unset]\n`)
})

test('system errors the caller caused are 4xx; the rest are the guest failing', () => {
  const err = (code: string) => Object.assign(new Error(`${code}: x`), { code })
  assert.deepEqual(
    [
      'ENOENT',
      'ENAMETOOLONG',
      'EISDIR',
      'ENOTDIR',
      'EINVAL',
      'ELOOP',
      'EACCES',
      'EEXIST',
      'ENOSPC',
      'EFBIG',
      'EIO',
      'EMFILE',
    ].map((c) => [c, toHttpError(err(c)).status]),
    [
      ['ENOENT', 404],
      ['ENAMETOOLONG', 400],
      ['EISDIR', 400],
      ['ENOTDIR', 400],
      ['EINVAL', 400],
      ['ELOOP', 400],
      ['EACCES', 403],
      ['EEXIST', 409],
      ['ENOSPC', 409],
      ['EFBIG', 413],
      ['EIO', 500],
      ['EMFILE', 500],
    ],
  )
  assert.match(toHttpError(err('ENAMETOOLONG')).message, /^ENAMETOOLONG/)
})
