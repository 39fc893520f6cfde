// Requests reach the guest byte for byte, within one set of limits, and what the caller got
// wrong comes back as a 4xx with the guest's reason: the real agent in dev mode behind the dev
// relay, driven by GuestChannel. Needs root (exec as another user).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { MAX_SPEC_BYTES, specPreamble } from '../../agent/protocol.ts'
import type { PortConnection } from '../../src/guest/connection.ts'
import { EXEC_LIMITS, GuestChannel, GuestError } from '../../src/guest/index.ts'
import { openStream } from '../../src/guest/request.ts'
import { hashCommand, connectAgent, type AgentUnderTest } from './helpers.ts'

const isRoot = process.getuid?.() === 0
const isGuestError = (status: number, code?: string) => (e: unknown) =>
  e instanceof GuestError && e.status === status && (code === undefined || e.code === code)

describe(
  'exact requests, caller errors (agent in dev mode)',
  { skip: !isRoot && 'needs root' },
  () => {
    let agent: AgentUnderTest
    let ch: GuestChannel

    before(async () => {
      ;({ agent, ch } = await connectAgent())
    })
    after(async () => {
      ch?.close()
      await agent?.stop()
    })

    test('exec: characters outside Latin-1 run as written', async () => {
      // In a header, `ħ` (U+0127) arrived as its low byte, `'`: this ran `id`.
      const hbar = await ch.run("echo 'ħ; id; ħ'")
      assert.deepEqual([hbar.stdout, hbar.exit_code], ['ħ; id; ħ\n', 0])
      const emoji = await ch.run("printf '%s' '😀 🎉 – ü'")
      assert.deepEqual([emoji.stdout, emoji.exit_code], ['😀 🎉 – ü', 0])
    })

    test('exec: commands of 200 KiB and of exactly the limit arrive byte-exact', async () => {
      for (const bytes of [200 * 1024, EXEC_LIMITS.commandBytes]) {
        const { command, sha } = hashCommand(bytes)
        assert.equal(Buffer.byteLength(command), bytes)
        const r = await ch.run(command)
        assert.equal(r.stderr, '')
        assert.equal(r.stdout, `${sha}  -\n`, `${bytes}-byte command`)
      }
    })

    test('exec: a command or env over the limits is refused with the reason', async () => {
      const over = hashCommand(EXEC_LIMITS.commandBytes + 1).command
      await assert.rejects(ch.run(over), (e: GuestError) => {
        return isGuestError(400)(e) && /262145 bytes.*limit is 262144/.test(e.message)
      })
      const big = 'x'.repeat(EXEC_LIMITS.envValueBytes + 1)
      await assert.rejects(ch.run('true', { env: { BIG: big } }), isGuestError(400))
      await assert.rejects(ch.run('echo \0'), isGuestError(400))
      await assert.rejects(ch.run('echo \ud800'), isGuestError(400))
    })

    test('exec: the agent itself enforces the limits (a spec the host did not check)', async () => {
      // The node's client refuses these before sending; here they go to the agent as they are.
      const bulk = (ch as unknown as { port(p: 'bulk'): PortConnection }).port('bulk')
      const send = (body: Buffer) =>
        openStream(bulk, { method: 'POST', path: '/v1/exec' }, (s) => s.end(body))
      const over = { command: 'x'.repeat(EXEC_LIMITS.commandBytes + 1) }
      await assert.rejects(send(specPreamble(over)), isGuestError(400, 'BAD_REQUEST'))
      const huge = Buffer.alloc(4)
      huge.writeUInt32BE(MAX_SPEC_BYTES + 1)
      await assert.rejects(send(huge), isGuestError(413, 'TOO_LARGE'))
      await assert.rejects(send(Buffer.from([0, 0])), isGuestError(400, 'BAD_REQUEST'))
      const notJson = Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from([0xc3, 0x28])])
      await assert.rejects(send(notJson), isGuestError(400, 'BAD_REQUEST'))
    })

    test('exec: env values outside Latin-1 arrive exactly; stdin follows the spec', async () => {
      const value = 'ħ😀 \'"$x` \\ é\nsecond line'
      const r = await ch.run('printf %s "$V"; printf "|"; cat', {
        env: { V: value },
        stdin: 'stdin ħ😀',
      })
      assert.equal(r.stdout, `${value}|stdin ħ😀`)
    })

    test('exec: an empty PATH from the caller does not stop the shell', async () => {
      const r = await ch.run('echo "[$PATH]"; ls /', { env: { PATH: '' } })
      assert.equal(r.stdout, '[]\n')
      assert.equal(r.exit_code, 127, 'ls is not found: the command fails, not the agent')
      const pty = await ch.openPty({
        cols: 80,
        rows: 24,
        command: 'echo "[$PATH]"',
        env: { PATH: '' },
      })
      let out = ''
      pty.on('data', (c: Buffer) => (out += c.toString()))
      assert.deepEqual(await pty.exited, { exit_code: 0, signal: null })
      // A terminal's env is its initial environment, which /etc/profile then builds on.
      assert.match(out, /^\[[^\]]*\]\r$/m)
    })

    test('pty: command and env outside Latin-1, and a command at the limit', async () => {
      const value = 'ħé😀 x'
      const pty = await ch.openPty({
        cols: 200,
        rows: 24,
        command: "printf '%s' 'ħ; id; ħ'; printf '|%s|' \"$V\"",
        env: { V: value },
      })
      const chunks: Buffer[] = []
      pty.on('data', (c: Buffer) => chunks.push(c))
      assert.deepEqual(await pty.exited, { exit_code: 0, signal: null })
      assert.equal(Buffer.concat(chunks).toString(), `ħ; id; ħ|${value}|`)

      const { command, sha } = hashCommand(EXEC_LIMITS.commandBytes)
      const big = await ch.openPty({ cols: 200, rows: 24, command })
      let out = ''
      big.on('data', (c: Buffer) => (out += c.toString()))
      assert.deepEqual(await big.exited, { exit_code: 0, signal: null })
      assert.equal(out.trim(), `${sha}  -`)
      await assert.rejects(
        ch.openPty({
          cols: 80,
          rows: 24,
          command: hashCommand(EXEC_LIMITS.commandBytes + 1).command,
        }),
        isGuestError(400),
      )
    })

    test('files: procfs and sysfs files read whole, though stat says 0 or 4096 bytes', async () => {
      const cpuinfo = (await ch.readFile('/proc/cpuinfo', { maxBytes: 1 << 20 })).toString()
      assert.match(cpuinfo, /^processor\s*:/m)
      const lo = await ch.readFile('/sys/class/net/lo/address', { maxBytes: 1 << 20 })
      assert.equal(lo.toString(), fs.readFileSync('/sys/class/net/lo/address', 'utf8'))
      const { stream, size } = await ch.readFileStream('/proc/self/status', { maxBytes: 1 << 20 })
      let text = ''
      for await (const c of stream) text += String(c)
      assert.equal(text.length, size)
      assert.match(text, /^Name:/)
      // Over the caller's limit: the guest says so (no partial read, no protocol failure).
      await assert.rejects(
        ch.readFile('/proc/cpuinfo', { maxBytes: 10 }),
        isGuestError(413, 'TOO_LARGE'),
      )
    })

    test('files: caller mistakes are 4xx with the reason', async () => {
      const long = path.join(agent.home, 'n'.repeat(256))
      await assert.rejects(ch.readFile(long, { maxBytes: 100 }), (e: GuestError) => {
        return isGuestError(400, 'NAME_TOO_LONG')(e) && /ENAMETOOLONG/.test(e.message)
      })
      await assert.rejects(ch.writeFile(long, 'x'), isGuestError(400, 'NAME_TOO_LONG'))
      await assert.rejects(ch.mkdir(path.join(long, 'sub')), isGuestError(400, 'NAME_TOO_LONG'))
      // A name at the limit works: the temp file of the atomic write must not push it over.
      const atLimit = path.join(agent.home, 'n'.repeat(255))
      await ch.writeFile(atLimit, 'edge')
      assert.equal((await ch.readFile(atLimit, { maxBytes: 100 })).toString(), 'edge')
      await assert.rejects(
        ch.readFile(path.join(atLimit, 'below'), { maxBytes: 100 }),
        isGuestError(400, 'NOT_A_DIRECTORY'),
      )
      // A FIFO is refused at once: opening it would wait for a writer forever.
      const fifo = path.join(agent.dir, 'fifo')
      execFileSync('mkfifo', [fifo])
      await assert.rejects(ch.readFile(fifo, { maxBytes: 100 }), isGuestError(400, 'NOT_A_FILE'))
    })
  },
)
