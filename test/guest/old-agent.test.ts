// A workspace keeps the image its disk was made on, so agents older than 0.2.0, which read exec
// and pty specs from headers only, stay in service after an upgrade. The host learns the agent's
// version from its health answer and sends such an agent the header form, as pure-ASCII JSON so
// it arrives byte-exact, within the size one header can have. The old agent here is the real
// one: this repository's `agent/` as of its last 0.1.0 commit, run in dev mode behind the dev
// relay like the current one (helpers.ts). Needs root (exec as another user) and git history.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { AGENT_VERSION, specPreamble } from '../../agent/protocol.ts'
import type { PortConnection } from '../../src/guest/connection.ts'
import { GuestChannel, GuestError } from '../../src/guest/index.ts'
import { openStream } from '../../src/guest/request.ts'
import {
  asciiJson,
  HEADER_SPEC_MAX_BYTES,
  specRequest,
  takesBodySpec,
} from '../../src/guest/spec-form.ts'
import { call, type TestApp } from '../helpers/app.ts'
import {
  apiOverChannel,
  hashCommand,
  repoRoot,
  connectAgent,
  type AgentUnderTest,
} from './helpers.ts'

/** The last commit whose agent is 0.1.0 (specs in `x-exec-spec` / `x-pty-spec` headers). */
const OLD_AGENT_COMMIT = '53ab962f2eee4c0b45ef2727c3143687dd196f4d'

const isRoot = process.getuid?.() === 0
const hasHistory = fs.existsSync(path.join(repoRoot, '.git'))

/** Extracts the old agent's sources into a temp dir; returns that `agent/` dir. */
function extractOldAgent(): { agentDir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rigbox-old-agent-'))
  const tar = execFileSync('git', ['archive', OLD_AGENT_COMMIT, 'agent'], {
    cwd: repoRoot,
    maxBuffer: 64 << 20,
  })
  execFileSync('tar', ['-x', '-C', dir], { input: tar })
  // ES modules, as in the repository (whose package.json says so).
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n')
  return {
    agentDir: path.join(dir, 'agent'),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  }
}

const bulkOf = (ch: GuestChannel) => (ch as unknown as { bulk: PortConnection }).bulk

/** `command` padded with a trailing comment so that its spec is exactly `bytes` of ASCII JSON. */
function padSpecTo(command: string, bytes: number): string {
  const base = asciiJson({ command: `${command} #` }).length
  assert.ok(base <= bytes, `${base} > ${bytes}`)
  return `${command} #${'a'.repeat(bytes - base)}`
}

async function ptyOutput(ch: GuestChannel, spec: Parameters<GuestChannel['openPty']>[0]) {
  const pty = await ch.openPty(spec)
  const chunks: Buffer[] = []
  pty.on('data', (c: Buffer) => chunks.push(c))
  const exit = await pty.exited
  return { exit, out: Buffer.concat(chunks).toString() }
}

test('spec form by agent version: header before 0.2.0, body from it and when unknown', () => {
  for (const v of ['0.1.0', '0.1.9', '0.0.1', '0.1.0-rc.1']) assert.equal(takesBodySpec(v), false)
  for (const v of ['0.2.0', '0.2.1', '0.10.0', '1.0.0', '', 'dev', null, undefined]) {
    assert.equal(takesBodySpec(v), true, String(v))
  }
  const spec = { command: "echo 'ħ; id; ħ' 😀\u007f", env: { V: 'é\n' } }
  const old = specRequest('exec', spec, '0.1.0')
  assert.equal(old.preamble, null)
  const header = old.headers['x-exec-spec']
  assert.match(header, /^[\x20-\x7e]+$/, 'printable ASCII only')
  assert.equal(
    header,
    String.raw`{"command":"echo '\u0127; id; \u0127' \ud83d\ude00\u007f","env":{"V":"\u00e9\n"}}`,
  )
  assert.deepEqual(JSON.parse(header), spec)
  assert.deepEqual(specRequest('exec', spec, '0.2.0'), {
    headers: {},
    preamble: specPreamble(spec),
  })
  assert.deepEqual(specRequest('pty', spec, null), { headers: {}, preamble: specPreamble(spec) })
})

describe(
  'an agent older than 0.2.0 (specs in headers)',
  { skip: (!isRoot && 'needs root') || (!hasHistory && 'needs the git history') },
  () => {
    let old: ReturnType<typeof extractOldAgent>
    let agent: AgentUnderTest
    let ch: GuestChannel
    let t: TestApp
    let key: string
    let id: string

    before(async () => {
      old = extractOldAgent()
      ;({ agent, ch } = await connectAgent({ agentDir: old.agentDir }))
      ;({ t, key, id } = await apiOverChannel(ch, 'old-agent'))
    })
    after(async () => {
      await t?.close()
      ch?.close()
      await agent?.stop()
      old?.cleanup()
    })

    test('the channel knows the version; the old agent refuses the body form', async () => {
      assert.equal(ch.agentVersion, '0.1.0')
      // What every exec to this workspace got before the host knew to send the header form.
      const body = openStream(bulkOf(ch), { method: 'POST', path: '/v1/exec' }, (s) =>
        s.end(specPreamble({ command: 'true' })),
      )
      await assert.rejects(body, (e: GuestError) => {
        return e instanceof GuestError && e.status === 400 && /x-exec-spec/.test(e.message)
      })
    })

    test('exec: characters outside Latin-1 and DEL run as written', async () => {
      // Cut to its low byte, `ħ` (U+0127) is `'`: this once ran `id`.
      const hbar = await ch.run("echo 'ħ; id; ħ'")
      assert.deepEqual([hbar.stdout, hbar.stderr, hbar.exit_code], ['ħ; id; ħ\n', '', 0])
      const emoji = await ch.run("printf '%s' '😀 🎉 – ü \u007f'")
      assert.deepEqual([emoji.stdout, emoji.exit_code], ['😀 🎉 – ü \u007f', 0])
    })

    test('exec: env outside Latin-1 arrives exactly; stdin still follows', async () => {
      const value = 'ħ😀 \'"$x` \\ é\nsecond line\u007f'
      const r = await ch.run('printf %s "$V|$W|"; cat', {
        env: { V: value, W: '€ 日本 🎉' },
        stdin: 'stdin ħ😀',
      })
      assert.equal(r.stdout, `${value}|€ 日本 🎉|stdin ħ😀`)
    })

    test('exec: a spec of exactly the header limit runs byte-exact; one byte more is refused', async () => {
      // Mixed 1- to 4-byte characters: each non-ASCII one costs 6 or 12 bytes of the limit.
      const { command, sha } = hashCommand(12 * 1024)
      const atLimit = padSpecTo(command, HEADER_SPEC_MAX_BYTES)
      assert.equal(asciiJson({ command: atLimit }).length, HEADER_SPEC_MAX_BYTES)
      const r = await ch.run(atLimit)
      assert.deepEqual([r.stdout, r.stderr], [`${sha}  -\n`, ''])

      const sessions = ch.sessionCounts
      const over = ch.run(`${atLimit}a`)
      let refusal: GuestError | undefined
      await assert.rejects(over, (e: GuestError) => {
        refusal = e
        return e instanceof GuestError && e.status === 400 && e.code === 'AGENT_TOO_OLD'
      })
      assert.match(refusal!.message, /agent \(0\.1\.0\) is older than 0\.2\.0/)
      assert.match(refusal!.message, /up to 60 KiB/)
      assert.match(refusal!.message, /current image have a newer agent/)
      // Refused before sending: the session is untouched and goes on working.
      assert.deepEqual(ch.sessionCounts, sessions)
      assert.equal((await ch.run('echo still')).stdout, 'still\n')
    })

    test('API: exec runs exactly as sent; over the header limit is a 400 that says why', async () => {
      const exec = (body: object) => call(t.app, key, 'POST', `/api/v1/workspaces/${id}/exec`, body)
      const ok = await exec({ command: 'echo \'ħ; id; ħ\'; printf %s "$V"', env: { V: '😀é' } })
      assert.equal(ok.status, 200, ok.body)
      assert.equal(ok.json.stdout, 'ħ; id; ħ\n😀é')
      // Within the API's own limits (256 KiB), beyond what this workspace's agent takes.
      const over = await exec({ command: `true #${'😀'.repeat(6000)}` })
      assert.equal(over.status, 400, over.body)
      assert.equal(over.json.error.code, 'BAD_REQUEST')
      assert.match(over.json.error.message, /agent \(0\.1\.0\) is older than 0\.2\.0.*60 KiB/)
    })

    test('pty: command and env outside Latin-1; an over-limit command is refused', async () => {
      const value = 'ħé😀 x'
      const { exit, out } = await ptyOutput(ch, {
        cols: 200,
        rows: 24,
        command: "printf '%s' 'ħ; id; ħ'; printf '|%s|' \"$V\"",
        env: { V: value },
      })
      assert.deepEqual(exit, { exit_code: 0, signal: null })
      assert.equal(out, `ħ; id; ħ|${value}|`)
      await assert.rejects(
        ch.openPty({ cols: 80, rows: 24, command: 'ħ'.repeat(HEADER_SPEC_MAX_BYTES / 6) }),
        (e: GuestError) => e instanceof GuestError && e.code === 'AGENT_TOO_OLD',
      )
    })

    test('after a lost session the version is asked again, and exec still works', async () => {
      const bulk = await bulkOf(ch).get()
      const lost = new Promise((r) => bulkOf(ch).once('lost', r))
      bulk.destroy()
      await lost
      assert.equal(ch.agentVersion, null)
      const r = await ch.run("echo 'ħ; id; ħ'")
      assert.equal(r.stdout, 'ħ; id; ħ\n')
      assert.equal(ch.agentVersion, '0.1.0')
    })
  },
)

describe('the current agent (specs in the body)', { skip: !isRoot && 'needs root' }, () => {
  let agent: AgentUnderTest
  let ch: GuestChannel

  before(async () => {
    ;({ agent, ch } = await connectAgent())
  })
  after(async () => {
    ch?.close()
    await agent?.stop()
  })

  test('gets the body form: no header limit, byte-exact', async () => {
    assert.equal(ch.agentVersion, AGENT_VERSION)
    assert.equal(takesBodySpec(AGENT_VERSION), true)
    // Over three times what a header carries: only the body form takes it.
    const { command, sha } = hashCommand(200 * 1024)
    assert.ok(asciiJson({ command }).length > 3 * HEADER_SPEC_MAX_BYTES)
    const r = await ch.run(command)
    assert.deepEqual([r.stdout, r.stderr], [`${sha}  -\n`, ''])
    assert.equal((await ch.run("echo 'ħ; id; ħ'")).stdout, 'ħ; id; ħ\n')
  })
})
