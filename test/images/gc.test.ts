import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  collectImages,
  collectOwnImages,
  registerImageUser,
  type ImageGcResult,
} from '../../src/images/gc.ts'
import { DiskSnapshots } from '../../src/node/disk-snapshots.ts'
import { createOverlay } from '../../src/vm/disks.ts'

const skip = existsSync('/usr/bin/qemu-img') ? false : 'qemu-img is missing'

/** A complete-looking image directory: manifest, kernel, initrd and a small raw rootfs. */
async function fakeImage(imageDir: string, name: 'base' | 'dev', hash: string): Promise<string> {
  const dir = path.join(imageDir, `${name}-${hash.slice(0, 12)}`)
  await mkdir(dir, { recursive: true })
  const manifest = { name, hash, kernel_version: '6.1', created_at: '', size_bytes: 1 << 20 }
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, cmdline: 'x' }))
  await writeFile(path.join(dir, 'vmlinux'), 'kernel')
  await writeFile(path.join(dir, 'initrd.img'), 'initrd')
  await writeFile(path.join(dir, 'rootfs.img'), '')
  await truncate(path.join(dir, 'rootfs.img'), 1 << 20)
  return dir
}

/** A workspace disk on `image`, as the driver makes it: a qcow2 overlay on its rootfs. */
async function diskOn(dataDir: string, id: string, image: string): Promise<string> {
  const disk = path.join(dataDir, 'vms', id, 'disk.qcow2')
  await mkdir(path.dirname(disk), { recursive: true })
  await createOverlay(path.join(image, 'rootfs.img'), disk, 4 << 20)
  return disk
}

const why = (r: ImageGcResult, dir: string) => r.kept.find((k) => k.dir === dir)?.why

describe('old image collection', { skip }, () => {
  let root = ''
  let imageDir = ''
  let dataDir = ''
  let holder: ChildProcess | undefined
  const hash = (c: string) => c.repeat(64)
  const img: Record<string, string> = {}

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'rigbox-image-gc-'))
    imageDir = path.join(root, 'images')
    dataDir = path.join(root, 'data')
    for (const [key, c] of Object.entries({
      current: 'a',
      snapshotOnly: 'b',
      disk: 'c',
      old: 'd',
      otherInstallation: 'e',
      open: 'f',
    }))
      img[key] = await fakeImage(imageDir, 'base', hash(c))
    img.dev = await fakeImage(imageDir, 'dev', hash('9'))
    // Workspace 1 runs on an old image; workspace 2's disk was since made anew, but one of its
    // snapshots still sits on the image it had: both images stay.
    await diskOn(dataDir, 'ws-1', img.disk)
    const old = await diskOn(dataDir, 'ws-2', img.snapshotOnly)
    await new DiskSnapshots(dataDir).take(old, { workspaceId: 'ws-2', snapshotId: 'snap-1' })
    await rm(old)
    await diskOn(dataDir, 'ws-2', img.current)
    // Another installation sharing the image directory has a disk on another one.
    const other = path.join(root, 'other-data')
    await diskOn(other, 'ws-9', img.otherInstallation)
    await registerImageUser(imageDir, other)
    await registerImageUser(imageDir, path.join(root, 'gone-data'))
    // A process (a QEMU started by anyone) holds one open.
    const rootfs = path.join(img.open, 'rootfs.img')
    holder = spawn(process.execPath, [
      '-e',
      `require('fs').openSync(${JSON.stringify(rootfs)}, 'r'); console.log('open'); setInterval(() => {}, 1000)`,
    ])
    await new Promise((r) => holder!.stdout!.once('data', r))
    // A build in progress.
    await mkdir(path.join(imageDir, `.tmp-${process.pid}-base-${'0'.repeat(12)}`))
  })

  after(async () => {
    holder?.kill()
    await rm(root, { recursive: true, force: true })
  })

  const currentDir = async (name: string) => (name === 'base' ? img.current : null)

  it('reports without removing on a dry run', async () => {
    const r = await collectImages({ imageDir, dataDir, currentDir, dryRun: true })
    assert.deepEqual(
      r.removed.map((x) => x.dir),
      [img.old],
    )
    assert.ok(r.removed[0].bytes > 0)
    assert.ok(existsSync(img.old))
  })

  it('removes only an old image no disk, snapshot or process depends on', async () => {
    const r = await collectImages({ imageDir, dataDir, currentDir })
    assert.deepEqual(
      r.removed.map((x) => x.dir),
      [img.old],
    )
    assert.equal(existsSync(img.old), false)
    assert.equal(why(r, img.current), 'the current recipe')
    assert.match(why(r, img.snapshotOnly)!, /snapshots\/ws-2\/snap-1\.qcow2 sits on it$/)
    assert.match(why(r, img.disk)!, /vms\/ws-1\/disk\.qcow2 sits on it$/)
    assert.match(why(r, img.otherInstallation)!, /other-data\/vms\/ws-9\/disk\.qcow2 sits on it$/)
    assert.equal(why(r, img.open), `open by process ${holder!.pid}`)
    assert.match(why(r, img.dev)!, /current dev recipe cannot be worked out/)
    const left = await readdir(imageDir)
    assert.ok(left.includes(`.tmp-${process.pid}-base-${'0'.repeat(12)}`), 'a build is left alone')
    assert.ok(!left.some((e) => e.includes('-gc-')), 'no half-removed image')
    // The registration of an installation whose data dir is gone went with it.
    assert.equal((await readdir(path.join(imageDir, '.users'))).length, 2)
  })

  it('then removes an image once its last snapshot is gone', async () => {
    await new DiskSnapshots(dataDir).remove({ workspaceId: 'ws-2', snapshotId: 'snap-1' })
    const r = await collectImages({ imageDir, dataDir, currentDir })
    assert.deepEqual(
      r.removed.map((x) => x.dir),
      [img.snapshotOnly],
    )
  })

  it('waits for a build of the image to finish first', async () => {
    const lock = path.join(imageDir, '.lock-dev')
    await writeFile(lock, `${process.pid} ${os.hostname()}\n`)
    let waiting = false
    let done = false
    const run = collectImages({ imageDir, dataDir, currentDir, onWait: () => (waiting = true) })
    void run.then(() => (done = true))
    await new Promise((r) => setTimeout(r, 700))
    assert.deepEqual([waiting, done], [true, false])
    await rm(lock)
    await run
  })

  it('keeps everything when a disk cannot be read (what it depends on is unknown)', async () => {
    const broken = path.join(dataDir, 'vms', 'ws-3', 'disk.qcow2')
    await mkdir(path.dirname(broken), { recursive: true })
    // A qcow2 header of a version qemu-img cannot read: its backing file is unknown.
    const header = Buffer.alloc(4096)
    header.write('QFI\xfb', 'latin1')
    header.writeUInt32BE(99, 4)
    await writeFile(broken, header)
    await assert.rejects(
      collectImages({ imageDir, dataDir, currentDir: async () => img.current }),
      /cannot tell which image .*ws-3\/disk\.qcow2 depends on/,
    )
    assert.ok(existsSync(img.disk) && existsSync(img.dev))
    await rm(path.dirname(broken), { recursive: true })
  })

  it('at start-up, collects only an image directory inside the data dir', async () => {
    const log = { info: () => {}, warn: () => {} }
    const outside = await fakeImage(imageDir, 'base', hash('7'))
    await collectOwnImages({ imageDir, dataDir, currentDir }, log)
    assert.ok(existsSync(outside), 'a directory elsewhere may be shared: left alone')
    const ownDir = path.join(dataDir, 'images')
    const inside = await fakeImage(ownDir, 'base', hash('8'))
    await collectOwnImages({ imageDir: ownDir, dataDir, currentDir }, log)
    assert.equal(existsSync(inside), false)
  })
})
