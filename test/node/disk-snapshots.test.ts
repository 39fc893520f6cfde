import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { copyDurably, DiskSnapshots, sweepPartials } from '../../src/node/disk-snapshots.ts'
import { tempDir } from '../helpers/app.ts'

const MiB = 1024 * 1024

/** A 64 MiB sparse file with 1 MiB of data at 10 MiB. */
function sparseDisk(file: string, fill = 0x61) {
  const fd = fs.openSync(file, 'w')
  fs.ftruncateSync(fd, 64 * MiB)
  fs.writeSync(fd, Buffer.alloc(MiB, fill), 0, MiB, 10 * MiB)
  fs.closeSync(fd)
}

describe('disk snapshot files', () => {
  it('copies sparsely and durably, independent of later writes to the disk', async () => {
    const dir = tempDir()
    const disk = path.join(dir, 'disk.qcow2')
    sparseDisk(disk)
    const snaps = new DiskSnapshots(dir)
    const ref = { workspaceId: 'ws-aaaaaaaa', snapshotId: 'snap-11111111' }
    const { sizeBytes } = await snaps.take(disk, ref)
    const file = snaps.fileOf(ref)
    assert.equal(file, path.join(dir, 'snapshots', 'ws-aaaaaaaa', 'snap-11111111.qcow2'))
    assert.equal(fs.statSync(file).size, 64 * MiB)
    assert.equal(sizeBytes, fs.statSync(file).blocks * 512)
    assert.ok(sizeBytes >= MiB && sizeBytes < 2 * MiB, `only the written blocks: ${sizeBytes}`)
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['snap-11111111.qcow2'])

    sparseDisk(disk, 0x62)
    assert.equal(fs.readFileSync(file).subarray(10 * MiB, 10 * MiB + 1)[0], 0x61)
    await snaps.restore(ref, disk)
    assert.equal(fs.readFileSync(disk).subarray(10 * MiB, 10 * MiB + 1)[0], 0x61)
    assert.deepEqual(fs.readdirSync(dir).sort(), ['disk.qcow2', 'snapshots'])
  })

  it('leaves the target as it was when the copy fails', async () => {
    const dir = tempDir()
    const disk = path.join(dir, 'disk.qcow2')
    fs.writeFileSync(disk, 'current')
    const snaps = new DiskSnapshots(dir)
    await assert.rejects(snaps.restore({ workspaceId: 'ws-x', snapshotId: 'snap-gone' }, disk), {
      code: 'SNAPSHOT_MISSING',
    })
    await assert.rejects(copyDurably(path.join(dir, 'missing'), disk))
    assert.equal(fs.readFileSync(disk, 'utf8'), 'current')
    assert.deepEqual(fs.readdirSync(dir), ['disk.qcow2'])
  })

  it('sweeps partial copies and files no snapshot row knows', async () => {
    const dir = tempDir()
    const snaps = new DiskSnapshots(dir)
    const keep = { workspaceId: 'ws-keep', snapshotId: 'snap-keep' }
    for (const [ws, f] of [
      ['ws-keep', 'snap-keep.qcow2'],
      ['ws-keep', 'snap-half.qcow2.partial'],
      ['ws-keep', 'snap-orphan.qcow2'],
      ['ws-gone', 'snap-old.qcow2'],
    ]) {
      fs.mkdirSync(path.join(snaps.root, ws), { recursive: true })
      fs.writeFileSync(path.join(snaps.root, ws, f), 'x')
    }
    const removed = await snaps.sweep([keep])
    assert.equal(removed.length, 3)
    assert.deepEqual(fs.readdirSync(snaps.root), ['ws-keep'])
    assert.deepEqual(fs.readdirSync(path.join(snaps.root, 'ws-keep')), ['snap-keep.qcow2'])

    fs.writeFileSync(path.join(dir, 'disk.qcow2.partial'), 'x')
    await sweepPartials(dir)
    assert.equal(fs.existsSync(path.join(dir, 'disk.qcow2.partial')), false)
    await snaps.removeAll('ws-keep')
    assert.deepEqual(fs.readdirSync(snaps.root), [])
  })
})
