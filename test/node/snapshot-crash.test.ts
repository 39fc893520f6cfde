import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { tempDir } from '../helpers/app.ts'
import { freePort, ServerProcess, waitStatus } from '../helpers/vm-env.ts'
import { holdVmLock } from '../helpers/vm-lock.ts'

const sha256 = (file: string) =>
  crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')

/** Waits until a `.partial` file shows up in `dir` (a copy is under way), then SIGKILLs. */
async function killWhenCopying(server: ServerProcess, dir: string, request: Promise<unknown>) {
  // Settled from the start: its rejection (the server dying) must not go unhandled meanwhile.
  const outcome = request.then(
    (r) => r,
    (err: unknown) => err,
  )
  const deadline = Date.now() + 120_000
  while (Date.now() < deadline) {
    const partial = fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith('.partial'))
    if (partial) {
      await server.kill9()
      const ended = await outcome
      assert.ok(
        ended instanceof Error,
        `the request died with the server: ${JSON.stringify(ended)}`,
      )
      return
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`no copy seen in ${dir}`)
}

/** `rigbox serve` killed with SIGKILL in the middle of a snapshot and of a restore. */
describe('kill -9 during snapshot create and restore', { timeout: 20 * 60_000 }, () => {
  let releaseVms = () => {}
  let server: ServerProcess
  let id: string
  let big: { id: string }
  let bigHash: string
  const vmDir = () => path.join(server.dataDir, 'vms', id)
  const snapDir = () => path.join(server.dataDir, 'snapshots', id)
  const exec = async (command: string) => {
    const res = await server.api('POST', `/api/v1/workspaces/${id}/exec`, {
      command,
      timeout_ms: 300_000,
    })
    assert.equal(res.status, 200, JSON.stringify(res.json))
    return res.json.stdout as string
  }
  const act = async (verb: string, until: string) => {
    const res = await server.api('POST', `/api/v1/workspaces/${id}/${verb}`)
    assert.equal(res.status, 200, JSON.stringify(res.json))
    return waitStatus(server.url, server.adminKey(), id, [until])
  }

  before(async () => {
    releaseVms = await holdVmLock()
    server = new ServerProcess(tempDir(), await freePort())
    await server.start()
    id = (await server.api('POST', '/api/v1/workspaces', { name: 'crashme' })).json.vm.id
    await act('start', 'running')
    // Enough data that a copy takes a while: the kill lands in the middle of it.
    bigHash = await exec(
      'yes rigbox-data | head -c 1G > ~/big && echo kept > ~/keep.txt && sync && sha256sum < ~/big',
    )
    await act('stop', 'stopped')
    const res = await server.api('POST', `/api/v1/workspaces/${id}/snapshots`, { name: 'big' })
    assert.equal(res.status, 201, JSON.stringify(res.json))
    big = res.json.snapshot
    // Diverge from the snapshot, so a restore that landed would be visible.
    await act('start', 'running')
    await exec('rm ~/keep.txt && echo changed > ~/changed.txt && sync')
    await act('stop', 'stopped')
  })

  after(async () => {
    if (!server.running) await server.start().catch(() => undefined)
    await server.api('DELETE', `/api/v1/workspaces/${id}`).catch(() => undefined)
    const deadline = Date.now() + 60_000
    while (
      Date.now() < deadline &&
      (await server.api('GET', `/api/v1/workspaces/${id}`)).status !== 404
    ) {
      await new Promise((r) => setTimeout(r, 500))
    }
    await server.stop()
    releaseVms()
  })

  it('loses nothing when killed while a snapshot is being created', async () => {
    const disk = sha256(path.join(vmDir(), 'disk.qcow2'))
    const bigFile = path.join(snapDir(), `${big.id}.qcow2`)
    const bigSnap = sha256(bigFile)
    const request = server.api('POST', `/api/v1/workspaces/${id}/snapshots`, { name: 'doomed' })
    await killWhenCopying(server, snapDir(), request)

    await server.start()
    const list = await server.api('GET', `/api/v1/workspaces/${id}/snapshots`)
    assert.deepEqual(
      list.json.snapshots.map((s: { name: string }) => s.name),
      ['big'],
      'the unfinished snapshot never appears',
    )
    assert.deepEqual(fs.readdirSync(snapDir()), [`${big.id}.qcow2`], 'partial files are cleaned up')
    assert.equal(sha256(bigFile), bigSnap, 'the existing snapshot is intact')
    assert.equal(sha256(path.join(vmDir(), 'disk.qcow2')), disk, 'the disk is intact')
    const vm = (await server.api('GET', `/api/v1/workspaces/${id}`)).json.vm
    assert.equal(vm.status, 'stopped')
  })

  it('keeps the old disk when killed while a restore is being written', async () => {
    const disk = sha256(path.join(vmDir(), 'disk.qcow2'))
    const request = server.api('POST', `/api/v1/snapshots/${big.id}/restore`)
    await killWhenCopying(server, vmDir(), request)

    await server.start()
    assert.equal(sha256(path.join(vmDir(), 'disk.qcow2')), disk, 'the old disk is still in place')
    assert.equal(
      fs.readdirSync(vmDir()).some((f) => f.endsWith('.partial')),
      false,
      'the partial copy is gone',
    )
    // Nothing is stuck: the restore runs again to the end and the workspace boots into it.
    const again = await server.api('POST', `/api/v1/snapshots/${big.id}/restore`)
    assert.equal(again.status, 200, JSON.stringify(again.json))
    await act('start', 'running')
    assert.equal(await exec('cat ~/keep.txt; ls ~'), 'kept\nbig\nkeep.txt\n')
    assert.equal(await exec('sha256sum < ~/big'), bigHash)
  })
})
