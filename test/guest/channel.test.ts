// The guest channel end to end on the host: the real agent in dev mode behind the dev relay
// (stand-in for QEMU's chardevs), driven by GuestChannel. Needs root (exec as another user).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { GuestChannel, GuestError } from '../../src/guest/index.ts'
import { processAlive, connectAgent, waitFor, type AgentUnderTest } from './helpers.ts'

const isRoot = process.getuid?.() === 0

describe('guest channel (agent in dev mode)', { skip: !isRoot && 'needs root' }, () => {
  let agent: AgentUnderTest
  let ch: GuestChannel

  before(async () => {
    ;({ agent, ch } = await connectAgent())
  })
  after(async () => {
    ch?.close()
    await agent?.stop()
  })

  test('health answers with the documented shape', async () => {
    const h = await ch.health()
    assert.equal(h.ready, true)
    assert.match(h.boot_id, /^[0-9a-f-]{36}$/)
    assert.equal(typeof h.uptime_s, 'number')
    assert.equal(h.agent_version, '0.2.0')
    assert.ok(h.systemd_state.length > 0)
  })

  test('exec: exit code, stdout and stderr', async () => {
    const r = await ch.run('echo out; echo err >&2; exit 7')
    assert.equal(r.exit_code, 7)
    assert.equal(r.signal, null)
    assert.equal(r.timed_out, false)
    assert.equal(r.stdout, 'out\n')
    assert.equal(r.stderr, 'err\n')
    assert.match(r.exec_id, /^ex-/)
  })

  test('exec: stdin with half-close, env, cwd, and the developer account', async () => {
    const r = await ch.run('cat; echo "$FOO|$(pwd)|$(id -un)|$HOME"', {
      stdin: 'line1\nline2\n',
      env: { FOO: 'it\'s a "test"' },
      cwd: '/tmp',
    })
    assert.equal(r.exit_code, 0, r.stderr)
    assert.equal(r.stdout, `line1\nline2\nit's a "test"|/tmp|nobody|${agent.home}\n`)
    const home = await ch.run('pwd')
    assert.equal(home.stdout.trim(), agent.home, 'developer starts in its home')
  })

  test('exec: timeout kills the whole process group', async () => {
    const started = Date.now()
    let pid = 0
    const r = await ch.exec(
      { command: 'sleep 60 & echo $! ; wait', timeout_ms: 800 },
      { onStdout: (c) => (pid = Number(c.toString().trim())), maxOutputBytes: 1024 },
    )
    assert.equal(r.timed_out, true)
    assert.equal(r.signal, 'SIGKILL')
    assert.ok(Date.now() - started < 10_000)
    assert.ok(pid > 0)
    await waitFor(() => !processAlive(pid), 5000, 'background sleep to die')
  })

  test('exec: signal endpoint and abort', async () => {
    let id = ''
    const p = ch.exec(
      { command: 'trap "echo got-term; exit 42" TERM; sleep 30 & wait' },
      { onStarted: (s) => (id = s.exec_id), maxOutputBytes: 1024 },
    )
    await waitFor(() => id !== '', 5000, 'exec start')
    await new Promise((r) => setTimeout(r, 300)) // let bash install the trap
    assert.equal(await ch.signalExec(id, 'TERM'), true)
    const r = await p
    assert.equal(r.exit_code, 42)
    assert.match(r.stdout ?? '', /got-term/)
    await assert.rejects(
      ch.signalExec('ex-000000000000', 'TERM'),
      (e: GuestError) => e.status === 404,
    )

    const ac = new AbortController()
    let pid = 0
    const q = ch.exec(
      { command: 'sleep 30' },
      { signal: ac.signal, onStarted: (s) => (pid = s.pid) },
    )
    await waitFor(() => pid !== 0, 5000, 'exec start')
    ac.abort()
    await assert.rejects(q)
    await waitFor(() => !processAlive(pid), 5000, 'aborted exec to be killed')
  })

  test('exec: large output streams with backpressure and caps', async () => {
    let n = 0
    const r = await ch.exec(
      { command: 'head -c 50000000 /dev/zero' },
      { onStdout: (c) => (n += c.length) },
    )
    assert.equal(r.exit_code, 0)
    assert.equal(n, 50_000_000)
    const capped = await ch.run('head -c 100000 /dev/zero; echo done >&2', { maxOutputBytes: 1000 })
    assert.equal(capped.stdout.length, 1000)
    assert.equal(capped.truncated, true)
    assert.equal(capped.stderr, 'done\n')
  })

  test('exec: a command leaving a background job still reports its exit', async () => {
    const r = await ch.run('sleep 5 >/dev/null 2>&1 & echo bg; sleep 7 &')
    assert.equal(r.exit_code, 0)
    assert.equal(r.stdout, 'bg\n')
  })

  test('files: write, read, list, mkdir, remove', async () => {
    const dir = path.join(agent.home, 'proj')
    const data = randomBytes(3 << 20)
    const w = await ch.writeFile(path.join(dir, 'sub/data.bin'), data, {
      mkdirs: true,
      mode: '0640',
    })
    assert.equal(w.size, data.length)
    const back = await ch.readFile(path.join(dir, 'sub/data.bin'), { maxBytes: 10 << 20 })
    assert.ok(back.equals(data))
    const st = fs.statSync(path.join(dir, 'sub/data.bin'))
    assert.equal(st.mode & 0o777, 0o640)
    assert.equal(st.uid, fs.statSync(agent.home).uid, 'files in the home belong to developer')
    assert.equal(fs.statSync(path.join(dir, 'sub')).uid, st.uid, 'so do new directories')

    await ch.mkdir(path.join(dir, 'a/b/c'), { parents: true })
    const list = await ch.listDir(dir)
    assert.deepEqual(
      list.map((e) => [e.name, e.type]),
      [
        ['a', 'dir'],
        ['sub', 'dir'],
      ],
    )
    const sub = await ch.listDir(path.join(dir, 'sub'))
    assert.equal(sub[0].size, data.length)
    assert.equal(sub[0].mode, '0640')

    await assert.rejects(ch.remove(path.join(dir, 'a')), (e: GuestError) => e.code === 'NOT_EMPTY')
    await ch.remove(path.join(dir, 'a'), { recursive: true })
    assert.equal(fs.existsSync(path.join(dir, 'a')), false)

    const missing = ch.readFile(path.join(dir, 'nope'), { maxBytes: 10 })
    await assert.rejects(missing, (e: GuestError) => e.status === 404 && e.code === 'NOT_FOUND')
    const isDir = ch.readFile(dir, { maxBytes: 10 })
    await assert.rejects(isDir, (e: GuestError) => e.code === 'IS_A_DIRECTORY')
    const tooBig = ch.readFile(path.join(dir, 'sub/data.bin'), { maxBytes: 1000 })
    await assert.rejects(tooBig, (e: GuestError) => e.status === 413 && e.code === 'TOO_LARGE')
    // Replacing keeps the mode; nothing is left behind by the temp-file-and-rename write.
    await ch.writeFile(path.join(dir, 'sub/data.bin'), 'short')
    assert.equal(fs.statSync(path.join(dir, 'sub/data.bin')).mode & 0o777, 0o640)
    assert.deepEqual(fs.readdirSync(path.join(dir, 'sub')), ['data.bin'])
    const { stream, size } = await ch.readFileStream(path.join(dir, 'sub/data.bin'), {
      maxBytes: 100,
    })
    let text = ''
    for await (const c of stream) text += String(c)
    assert.equal(size, 5)
    assert.equal(text, 'short')
  })

  test('metrics shape', async () => {
    await new Promise((r) => setTimeout(r, 1100)) // one CPU sample interval
    const m = await ch.metrics()
    assert.ok(m.cpu_percent >= 0 && m.cpu_percent <= 100)
    assert.ok(m.ram_total_mb > 0 && m.ram_used_mb > 0 && m.ram_used_mb <= m.ram_total_mb)
    assert.ok(m.disk_total_mb > 0 && m.disk_used_mb <= m.disk_total_mb)
    assert.equal(m.load_avg.length, 3)
    assert.ok(m.uptime_s > 0)
  })

  test('listening ports include ours, with the process', async () => {
    const srv = net.createServer().listen(0, '127.0.0.1')
    await new Promise((r) => srv.once('listening', r))
    const port = (srv.address() as net.AddressInfo).port
    try {
      const ports = await ch.listeningPorts()
      const mine = ports.find((p) => p.port === port)
      assert.ok(mine, `port ${port} listed`)
      assert.equal(mine.address, '127.0.0.1')
      assert.equal(mine.pid, process.pid)
    } finally {
      srv.close()
    }
  })

  test('config writes identity, keys and env; validates input', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0123456789abcdefghijklmnopqrstuvwxyzABCD u@h'
    const r = await ch.configure({
      hostname: 'ws-abc12345',
      workspace: { id: 'ws-abc12345', name: 'demo', owner_id: 'usr-1' },
      env: { API_URL: 'http://x/y', QUOTED: 'a \'b\' "c" $d\nline2' },
      authorized_keys: [key],
    })
    assert.equal(r.applied, true)
    const etc = path.join(agent.root, 'etc')
    assert.equal(fs.readFileSync(path.join(etc, 'hostname'), 'utf8'), 'ws-abc12345\n')
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(etc, 'rigbox/workspace.json'), 'utf8')), {
      id: 'ws-abc12345',
      name: 'demo',
      owner_id: 'usr-1',
    })
    const keys = path.join(agent.home, '.ssh/authorized_keys')
    assert.equal(fs.readFileSync(keys, 'utf8'), key + '\n')
    assert.equal(fs.statSync(keys).mode & 0o777, 0o600)
    assert.equal(fs.statSync(path.dirname(keys)).mode & 0o777, 0o700)
    // The env file is valid shell that reproduces the values exactly.
    const envFile = path.join(etc, 'rigbox/env')
    const sourced = await ch.run(`set -a; . ${envFile}; printf '%s' "$QUOTED"`)
    assert.equal(sourced.stdout, 'a \'b\' "c" $d\nline2')
    const dropIn = fs.readFileSync(
      path.join(etc, 'systemd/system.conf.d/50-rigbox-env.conf'),
      'utf8',
    )
    assert.match(
      dropIn,
      /DefaultEnvironment="API_URL=http:\/\/x\/y" "QUOTED=a 'b' \\"c\\" \$d\\nline2"/,
    )
    await ch.configure({ env: {} })
    assert.equal(fs.existsSync(path.join(etc, 'systemd/system.conf.d/50-rigbox-env.conf')), false)

    await assert.rejects(
      ch.configure({ env: { 'BAD-KEY': 'x' } }),
      (e: GuestError) => e.status === 400,
    )
    await assert.rejects(ch.configure({ env: { K: 'a\0b' } }), (e: GuestError) => e.status === 400)
    await assert.rejects(
      ch.configure({ hostname: 'no spaces' }),
      (e: GuestError) => e.status === 400,
    )
    await assert.rejects(
      ch.configure({ authorized_keys: ['not a key'] }),
      (e: GuestError) => e.status === 400,
    )
    await assert.rejects(ch.configure({ clock_unix_ms: -1 }), (e: GuestError) => e.status === 400)
    // Outside a VM (not --system) the clock is left alone; the real VM test checks it is set.
    assert.equal((await ch.configure({ clock_unix_ms: Date.now() })).applied, true)
  })

  test('logs answer with the documented shape', async () => {
    const page = await ch.logs({ lines: 5 })
    assert.ok(Array.isArray(page.lines))
    assert.equal(typeof page.has_more, 'boolean')
    const ac = new AbortController()
    const follow = ch.followLogs({}, () => {}, ac.signal)
    setTimeout(() => ac.abort(), 300)
    await follow // ends when aborted (or at once where there is no journal)
  })

  test('pty: runs a shell, resizes, reports the exit status', async () => {
    const pty = await ch.openPty({ cols: 80, rows: 24 })
    let out = ''
    pty.on('data', (c: Buffer) => (out += c.toString()))
    await waitFor(() => out.length > 0 || true, 100, 'prompt')
    pty.write('stty size; echo $((6*7))\n')
    await waitFor(() => out.includes('42'), 10_000, 'pty output')
    assert.match(out, /24 80/)
    await pty.resize(120, 40)
    pty.write('stty size; exit 5\n')
    const exit = await pty.exited
    assert.match(out, /40 120/)
    assert.deepEqual(exit, { exit_code: 5, signal: null })
  })

  test('a small call is not stuck behind a bulk transfer', async () => {
    let n = 0
    const big = ch.exec(
      { command: 'head -c 300000000 /dev/zero' },
      { onStdout: (c) => (n += c.length) },
    )
    await waitFor(() => n > 1 << 20, 10_000, 'transfer start')
    const t0 = Date.now()
    await ch.health()
    const ms = Date.now() - t0
    await big
    assert.ok(ms < 2000, `health took ${ms} ms during a bulk transfer`)
  })
})
