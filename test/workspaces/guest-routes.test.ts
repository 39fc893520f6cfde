// The exec and files routes end to end without a VM: the API and the node's real guest calls
// (src/node/guest-calls.ts, guest-errors.ts) over GuestChannel to the real agent in dev mode.
// The same cases run in a real VM in test/node/vm-lifecycle.test.ts. Needs root (exec as
// another user).
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { EXEC_LIMITS, GuestChannel } from '../../src/guest/index.ts'
import { call, type TestApp } from '../helpers/app.ts'
import { apiOverChannel, hashCommand, connectAgent, type AgentUnderTest } from '../guest/helpers.ts'

const isRoot = process.getuid?.() === 0

describe('exec and files routes over a real agent', { skip: !isRoot && 'needs root' }, () => {
  let agent: AgentUnderTest
  let ch: GuestChannel
  let t: TestApp
  let key: string
  let id: string
  let execs = 0

  const exec = (body: object) => call(t.app, key, 'POST', `/api/v1/workspaces/${id}/exec`, body)
  const read = (file: string) =>
    call(t.app, key, 'GET', `/api/v1/workspaces/${id}/files?path=${encodeURIComponent(file)}`)

  before(async () => {
    ;({ agent, ch } = await connectAgent())
    ;({ t, key, id } = await apiOverChannel(ch, 'exact', { onExec: () => execs++ }))
  })
  after(async () => {
    await t?.close()
    ch?.close()
    await agent?.stop()
  })

  it('runs commands and env outside Latin-1 exactly as sent', async () => {
    const hbar = await exec({ command: "echo 'ħ; id; ħ'" })
    assert.equal(hbar.status, 200, hbar.body)
    assert.equal(hbar.json.stdout, 'ħ; id; ħ\n')
    const emoji = await exec({
      command: "printf %s '😀🎉'; printf '|%s' \"$V\"",
      env: { V: 'ħ😀é' },
    })
    assert.equal(emoji.status, 200, emoji.body)
    assert.equal(emoji.json.stdout, '😀🎉|ħ😀é')
  })

  it('runs a command of exactly the limit byte-exact; one byte more is 400', async () => {
    const { command, sha } = hashCommand(EXEC_LIMITS.commandBytes)
    const res = await exec({ command })
    assert.equal(res.status, 200, res.body)
    assert.equal(res.json.stdout, `${sha}  -\n`)
    const before = execs
    for (const body of [
      { command: hashCommand(EXEC_LIMITS.commandBytes + 1).command },
      // Fewer UTF-16 units than the limit, more bytes of UTF-8.
      { command: '😀'.repeat(EXEC_LIMITS.commandBytes / 4 + 1) },
      { command: 'echo \0' },
      { command: 'true', env: { BIG: 'ħ'.repeat(EXEC_LIMITS.envValueBytes / 2 + 1) } },
      {
        command: 'true',
        env: {
          A: 'x'.repeat(60_000),
          B: 'x'.repeat(60_000),
          C: 'x'.repeat(60_000),
          D: 'x'.repeat(60_000),
          E: 'x'.repeat(60_000),
        },
      },
    ]) {
      const over = await exec(body)
      assert.equal(over.status, 400, over.body)
      assert.equal(over.json.error.code, 'VALIDATION_ERROR')
      assert.match(over.json.error.message, /bytes|NUL/)
    }
    assert.equal(execs, before, 'refused at the API, before the node')
  })

  it('runs with an empty PATH from the caller (a missing command is its own exit status)', async () => {
    const res = await exec({ command: 'echo "[$PATH]"; ls', env: { PATH: '' } })
    assert.equal(res.status, 200, res.body)
    assert.deepEqual([res.json.stdout, res.json.exit_code], ['[]\n', 127])
  })

  it('reads /proc files; caller mistakes are 4xx with the reason', async () => {
    const cpuinfo = await read('/proc/cpuinfo')
    assert.equal(cpuinfo.status, 200)
    assert.match(cpuinfo.body, /^processor\s*:/m)
    const long = path.join(agent.home, 'n'.repeat(256))
    const name = await read(long)
    assert.equal(name.status, 400, name.body)
    assert.equal(name.json.error.code, 'BAD_REQUEST')
    assert.match(name.json.error.message, /ENAMETOOLONG/)
    const put = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/workspaces/${id}/files?path=${encodeURIComponent(long)}`,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/octet-stream' },
      payload: Buffer.from('x'),
    })
    assert.equal(put.statusCode, 400, put.body)
    assert.equal((await read(agent.home)).json.error.code, 'BAD_REQUEST', 'a directory')
    assert.equal((await read('/dev/null')).status, 400, 'not a regular file')
    assert.equal((await read(path.join(agent.home, 'missing'))).json.error.code, 'FILE_NOT_FOUND')
  })

  it('serves the largest page of logs the API allows', async () => {
    // The route asks the agent for one line more than the page, to tell whether more follow.
    const res = await call(t.app, key, 'GET', `/api/v1/workspaces/${id}/logs?lines=5000`)
    assert.equal(res.status, 200, res.body)
  })
})
