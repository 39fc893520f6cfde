import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import {
  createOverlay,
  deleteDisk,
  diskInfo,
  diskUsage,
  DiskShrinkError,
  resizeDisk,
} from '../../src/vm/disks.ts'
import { Cgroups } from '../../src/vm/cgroups.ts'
import { allocateUid, readJailRecord } from '../../src/vm/jail.ts'
import { capConsole } from '../../src/vm/qemu-run.ts'

const MiB = 1024 * 1024
const isRoot = process.getuid?.() === 0

describe('disks', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-disks-'))
  after(() => rm(dir, { recursive: true, force: true }))
  const baseImg = path.join(dir, 'base.img')
  await writeFile(baseImg, '')
  await truncate(baseImg, 64 * MiB)
  const overlay = path.join(dir, 'disk.qcow2')

  it('creates an overlay that records the base by absolute path', async () => {
    await createOverlay(baseImg, overlay, 128 * MiB)
    const info = await diskInfo(overlay)
    assert.equal(info.virtualBytes, 128 * MiB)
    assert.equal(info.backingFile, baseImg)
    assert.ok(info.allocatedBytes < MiB, `overlay starts small (${info.allocatedBytes})`)
  })

  it('never makes the overlay smaller than the base', async () => {
    const small = path.join(dir, 'small.qcow2')
    await createOverlay(baseImg, small, 1 * MiB)
    assert.equal((await diskInfo(small)).virtualBytes, 64 * MiB)
  })

  it('grows, does nothing at the same size, and refuses to shrink', async () => {
    assert.equal(await resizeDisk(overlay, 256 * MiB), true)
    assert.equal((await diskInfo(overlay)).virtualBytes, 256 * MiB)
    assert.equal(await resizeDisk(overlay, 256 * MiB), false)
    await assert.rejects(resizeDisk(overlay, 128 * MiB), (err: unknown) => {
      assert.ok(err instanceof DiskShrinkError)
      assert.match(err.message, /cannot shrink .* from 256 MiB to 128 MiB/)
      return true
    })
  })

  it('reports allocated bytes and deletes', async () => {
    assert.ok((await diskUsage(overlay)) > 0)
    await deleteDisk(overlay)
    await assert.rejects(stat(overlay))
    await deleteDisk(overlay)
  })
})

describe('jail uids and cgroups', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-jail-'))
  after(() => rm(dir, { recursive: true, force: true }))

  it('gives each VM dir its own uid, recorded in the dir', { skip: !isRoot }, async () => {
    const vms = path.join(dir, 'vms')
    await mkdir(vms)
    const [a, b] = await Promise.all([
      allocateUid(path.join(vms, 'ws-a'), 250_000, 100),
      allocateUid(path.join(vms, 'ws-b'), 250_000, 100),
    ])
    assert.notEqual(a, b)
    assert.ok(a >= 250_000 && b >= 250_000)
    assert.equal(await allocateUid(path.join(vms, 'ws-a'), 250_000, 100), a)
    assert.deepEqual(await readJailRecord(path.join(vms, 'ws-b')), { uid: b })
    await assert.rejects(allocateUid(path.join(vms, 'ws-c'), 250_000, 2), /no free jail uid/)
  })

  it('writes the limits and reads the OOM counter (fake cgroup root)', async () => {
    const cg = new Cgroups(path.join(dir, 'cgroup'), 'rigbox-unit')
    await cg.create('ws-x', {
      memoryBytes: 100,
      cpuPeriodUs: 100_000,
      cpuQuotaUs: 200_000,
      pidsMax: 64,
    })
    const read = (c: string, f: string) =>
      readFile(path.join(cg.dir(c as 'memory', 'ws-x'), f), 'utf8')
    assert.equal(await read('memory', 'memory.limit_in_bytes'), '100')
    assert.equal(await read('cpu', 'cpu.cfs_quota_us'), '200000')
    assert.equal(await read('pids', 'pids.max'), '64')
    assert.deepEqual(await cg.list(), ['ws-x'])
    const oom = path.join(cg.dir('memory', 'ws-x'), 'memory.oom_control')
    await writeFile(oom, 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n')
    assert.equal(await cg.oomKills('ws-x'), 1)
    assert.equal(await cg.oomKills('ws-missing'), 0)
    assert.deepEqual(
      cg.procsFiles('ws-x').map((f) => path.basename(path.dirname(f))),
      ['ws-x', 'ws-x', 'ws-x'],
    )
  })
})

describe('console log cap', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-console-'))
  after(() => rm(dir, { recursive: true, force: true }))

  it('moves an oversized console log aside and truncates it', async () => {
    const file = path.join(dir, 'console.log')
    await writeFile(file, 'x'.repeat(5000))
    const timer = capConsole(dir, 4096, 20)
    try {
      for (let i = 0; i < 100 && (await stat(file)).size > 0; i++) {
        await new Promise((r) => setTimeout(r, 20))
      }
    } finally {
      clearInterval(timer)
    }
    assert.equal((await stat(file)).size, 0)
    assert.equal((await stat(file + '.1')).size, 5000)
  })
})
