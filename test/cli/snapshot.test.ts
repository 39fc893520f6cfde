import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { makeApp, makeUser, tempDir, type TestApp } from '../helpers/app.ts'
import { rig } from '../helpers/cli.ts'
import { FakeNode } from '../helpers/fake-node.ts'

interface Snap {
  id: string
  workspace_id: string
  name: string
  size_bytes: number
  size_mb: number
  created_at: string
}

/** `rig snapshot …` and `rig workspace pause|resume` against a server with an in-memory node. */
describe('rig snapshots, forks, pause and resume', () => {
  let t: TestApp
  let node: FakeNode
  let env: Record<string, string>
  let src: string // the id of workspace `snap-src`
  let other: string // the id of workspace `snap-other`
  const snaps: Record<string, Snap> = {}
  const json = async (args: string[]) => {
    const res = await rig(['--json', ...args], env)
    assert.equal(res.code, 0, res.stderr)
    return JSON.parse(res.stdout)
  }

  before(async () => {
    node = new FakeNode()
    t = await makeApp({ node })
    await t.app.listen({ host: '127.0.0.1', port: 0 })
    const { port } = t.app.server.address() as { port: number }
    const { key } = await makeUser(t, 'snap@example.com', 'pro')
    env = {
      RIGBOX_CONFIG_DIR: tempDir(),
      RIGBOX_DATA_DIR: tempDir(),
      RIGBOX_API_URL: `http://127.0.0.1:${port}`,
      RIGBOX_API_KEY: key,
    }
    src = (await json(['workspace', 'spawn', 'snap-src'])).id
    other = (await json(['workspace', 'spawn', 'snap-other'])).id
  })
  after(() => t.close())

  it('refuses to snapshot a running workspace with the server’s reason', async () => {
    const res = await rig(['snapshot', 'create', 'snap-src', '--name', 'v1'], env)
    assert.equal(res.code, 1)
    assert.match(
      res.stderr,
      /error: workspace ws-\w+ is running; a workspace's disk is snapshotted only while it is stopped: stop it first .*\(INVALID_STATE, HTTP 409\)/,
    )
    assert.equal(res.stdout, '')
    assert.equal(node.snapshots.size, 0)
  })

  it('snapshots after --stop, with progress, as JSON and as a table', async () => {
    node.disks.set(src, 'v1')
    const res = await rig(
      ['--json', 'snapshot', 'create', 'snap-src', '--name', 'v1', '--stop'],
      env,
    )
    assert.equal(res.code, 0, res.stderr)
    assert.match(res.stderr, /^stopping snap-src: stopped \(/m)
    assert.match(res.stderr, /^snapshotting snap-src: copying disk \(/m)
    assert.match(res.stderr, /^snapshotting snap-src: done \(/m)
    const v1: Snap = JSON.parse(res.stdout)
    assert.match(v1.id, /^snap-[a-z0-9]{8}$/)
    assert.equal(v1.workspace_id, src)
    assert.equal(v1.name, 'v1')
    assert.equal(v1.size_bytes, 4096 + 'v1'.length)
    assert.equal(node.snapshots.get(`${src}/${v1.id}`), 'v1')
    snaps.v1 = v1

    // Already stopped: no --stop needed; people get a table with a human size.
    node.disks.set(src, 'v2-data')
    const table = await rig(['snap', 'create', 'snap-src', '--name', 'v2'], env)
    assert.equal(table.code, 0, table.stderr)
    assert.doesNotMatch(table.stderr, /stopping/)
    const lines = table.stdout.trimEnd().split('\n')
    assert.equal(lines.length, 2)
    assert.match(lines[0], /^ID\s+WORKSPACE\s+NAME\s+SIZE\s+CREATED$/)
    assert.match(lines[1], /^(snap-[a-z0-9]{8})\s+snap-src\s+v2\s+4\.0K\s+\d{4}-\d\d-\d\dT/)
    snaps.v2 = { ...v1, id: lines[1].split(/\s+/)[0], name: 'v2' }

    // The same name on another workspace, for the by-name tests below.
    const o = await json(['snapshot', 'create', 'snap-other', '--name', 'v1', '--stop'])
    assert.equal(o.workspace_id, other)
    snaps.otherV1 = o
  })

  it('lists all snapshots or one workspace’s', async () => {
    const all: Snap[] = await json(['snapshot', 'ls'])
    assert.deepEqual(
      all.map((s) => s.id).sort(),
      Object.values(snaps)
        .map((s) => s.id)
        .sort(),
    )
    const mine: Snap[] = await json(['snapshot', 'ls', 'snap-src'])
    assert.deepEqual(
      mine.map((s) => s.name),
      ['v2', 'v1'],
    )
    assert.ok(mine.every((s) => s.workspace_id === src && s.size_mb === 1))
    const byId: Snap[] = await json(['snapshot', 'ls', other])
    assert.deepEqual(
      byId.map((s) => s.id),
      [snaps.otherV1.id],
    )

    const human = await rig(['snapshot', 'ls'], env)
    assert.match(human.stdout, /^ID\s+WORKSPACE\s+NAME\s+SIZE\s+CREATED$/m)
    assert.match(human.stdout, new RegExp(`^${snaps.v1.id}\\s+snap-src\\s+v1\\s+4\\.0K\\s`, 'm'))
    assert.match(human.stdout, new RegExp(`^${snaps.otherV1.id}\\s+snap-other\\s+v1\\s`, 'm'))
    const missing = await rig(['snapshot', 'ls', 'no-such-ws'], env)
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /no workspace named or with id "no-such-ws"/)
  })

  it('restores by id, and by name (unique, or within --workspace)', async () => {
    node.disks.set(src, 'changed')
    const byId = await rig(['snapshot', 'restore', snaps.v1.id], env)
    assert.equal(byId.code, 0, byId.stderr)
    assert.equal(
      byId.stdout,
      `snapshot restored into workspace ${src}; start it to boot the restored disk\n`,
    )
    assert.equal(node.disks.get(src), 'v1')

    const ambiguous = await rig(['snapshot', 'restore', 'v1'], env)
    assert.equal(ambiguous.code, 2)
    assert.match(
      ambiguous.stderr,
      new RegExp(`2 snapshots are named "v1": .*${snaps.v1.id}.*; give the id or --workspace`),
    )
    assert.match(ambiguous.stderr, new RegExp(snaps.otherV1.id))

    node.disks.set(other, 'changed')
    const scoped = await json(['snapshot', 'restore', 'v1', '--workspace', 'snap-other'])
    assert.deepEqual(scoped, {
      message: `snapshot restored into workspace ${other}; start it to boot the restored disk`,
      workspace_id: other,
    })
    assert.equal(node.disks.get(other), '')
    assert.equal(node.disks.get(src), 'v1')

    const unique = await rig(['snapshot', 'restore', 'v2', '--start'], env)
    assert.equal(unique.code, 0, unique.stderr)
    assert.match(unique.stderr, /^starting snap-src: running \(/m)
    assert.match(unique.stdout, new RegExp(`^restored v2 \\(${snaps.v2.id}\\) into snap-src$`, 'm'))
    assert.match(unique.stdout, new RegExp(`^${src}\\s+snap-src\\s+running\\s`, 'm'))
    assert.equal(node.disks.get(src), 'v2-data')
    assert.ok(node.vms.has(src))

    const running = await rig(['snapshot', 'restore', snaps.v1.id], env)
    assert.equal(running.code, 1)
    assert.match(
      running.stderr,
      /is running; a workspace's disk is restored only while it is stopped/,
    )
    const nope = await rig(['snapshot', 'restore', 'nope', '--workspace', 'snap-src'], env)
    assert.equal(nope.code, 2)
    assert.match(nope.stderr, /no snapshot of workspace snap-src named or with id "nope"/)
  })

  it('pauses and resumes a workspace, waiting for each state', async () => {
    const paused = await rig(['workspace', 'pause', 'snap-src'], env)
    assert.equal(paused.code, 0, paused.stderr)
    assert.match(paused.stderr, /^pausing snap-src: paused \(/m)
    assert.match(paused.stdout, new RegExp(`^${src}\\s+snap-src\\s+paused\\s`, 'm'))
    assert.ok(node.paused.has(src))
    assert.equal(node.vms.has(src), false)

    const again = await rig(['workspace', 'pause', 'snap-src'], env)
    assert.equal(again.code, 1)
    assert.match(again.stderr, /only a running workspace can be paused \(INVALID_STATE, HTTP 409\)/)

    const resumed = await json(['ws', 'resume', src])
    assert.equal(resumed.status, 'running')
    assert.equal(node.resumes, 1)
    assert.ok(node.vms.has(src))

    const notPaused = await rig(['workspace', 'resume', 'snap-src'], env)
    assert.equal(notPaused.code, 1)
    assert.match(notPaused.stderr, /is running, not paused/)

    // --no-wait returns at once: the pause is accepted while the workspace still runs.
    const noWait = await json(['workspace', 'pause', 'snap-src', '--no-wait'])
    assert.equal(noWait.id, src)
    assert.equal(noWait.status, 'running')
    await json(['workspace', 'stop', 'snap-src'])
    assert.equal(node.paused.has(src), false)
  })

  it('forks a snapshot into a new workspace, optionally booting it', async () => {
    const forked = await rig(['--json', 'snapshot', 'fork', 'v2', '--name', 'snap-fork'], env)
    assert.equal(forked.code, 0, forked.stderr)
    const vm = JSON.parse(forked.stdout)
    assert.equal(vm.name, 'snap-fork')
    assert.equal(vm.status, 'provisioned')
    assert.notEqual(vm.id, src)
    assert.match(forked.stderr, new RegExp(`created snap-fork \\(${vm.id}\\) from v2`))
    assert.equal(node.disks.get(vm.id), 'v2-data')

    const booted = await rig(['snapshot', 'fork', snaps.v1.id, '--start'], env)
    assert.equal(booted.code, 0, booted.stderr)
    const row = booted.stdout.split('\n')[1]
    assert.match(row, /^(ws-[a-z0-9]{8})\s+snap-src-fork-[a-z0-9]{5}\s+running\s/)
    assert.match(booted.stderr, /^booting snap-src-fork-[a-z0-9]{5}: running \(/m)
    assert.equal(node.disks.get(row.split(/\s+/)[0]), 'v1')
  })

  it('deletes snapshots by id or by name', async () => {
    const byId = await rig(['snapshot', 'rm', snaps.v1.id], env)
    assert.equal(byId.code, 0, byId.stderr)
    assert.equal(byId.stdout, `snapshot ${snaps.v1.id} deleted\n`)
    assert.equal(node.snapshots.has(`${src}/${snaps.v1.id}`), false)

    // `v1` is now unique: only snap-other's is left.
    const byName = await json(['snap', 'rm', 'v1'])
    assert.deepEqual(byName, { message: `snapshot ${snaps.otherV1.id} deleted` })
    const left: Snap[] = await json(['snapshot', 'ls'])
    assert.deepEqual(
      left.map((s) => s.id),
      [snaps.v2.id],
    )
    const gone = await rig(['snapshot', 'rm', snaps.v1.id], env)
    assert.equal(gone.code, 2)
    assert.match(gone.stderr, new RegExp(`no snapshot named or with id "${snaps.v1.id}"`))
    assert.equal((await json(['snapshot', 'ls', 'snap-other'])).length, 0)
    assert.equal((await rig(['snapshot', 'ls', 'snap-other'], env)).stdout, 'no snapshots yet\n')
  })
})
