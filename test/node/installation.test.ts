import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { resolveInstallation, UID_RANGES_START } from '../../src/node/installation.ts'
import { tempDir } from '../helpers/app.ts'

const overlap = (a: { uidBase: number; uidCount: number }, b: typeof a) =>
  a.uidBase < b.uidBase + b.uidCount && b.uidBase < a.uidBase + a.uidCount

describe('installation identity (what one data dir owns on the host)', () => {
  const registryDir = tempDir('rigbox-registry-')
  const opts = (dataDir: string) => ({ dataDir, registryDir, uidCount: 65_536 })

  it('two data dirs get their own cgroup parent and disjoint uid ranges, kept across starts', async () => {
    const a = await resolveInstallation(opts(tempDir()))
    const bDir = tempDir()
    const b = await resolveInstallation(opts(bDir))
    assert.notEqual(a.cgroupParent, b.cgroupParent)
    assert.match(a.cgroupParent, /^rigbox-[0-9a-f]{12}$/)
    assert.ok(!overlap(a, b), `${a.uidBase} and ${b.uidBase} overlap`)
    assert.ok(a.uidBase >= UID_RANGES_START && b.uidBase >= UID_RANGES_START)
    assert.deepEqual(await resolveInstallation(opts(bDir)), b, 'the same again on the next start')
    const rec = JSON.parse(fs.readFileSync(path.join(bDir, 'node', 'installation.json'), 'utf8'))
    assert.deepEqual(rec, b)
  })

  it('never hands out a range another installation holds, even when asked for it', async () => {
    const a = await resolveInstallation(opts(tempDir()))
    await assert.rejects(
      resolveInstallation({ ...opts(tempDir()), uidBase: a.uidBase }),
      /belongs to another installation/,
    )
  })

  it('a data dir whose derived range is taken gets the next free one', async () => {
    const dir = tempDir()
    const first = await resolveInstallation({ ...opts(dir), registryDir: tempDir() })
    // Same data dir path, fresh registry where its derived slot already belongs to a live other.
    const registry = tempDir()
    const squatter = tempDir()
    fs.mkdirSync(path.join(registry, 'uid-ranges'), { recursive: true })
    fs.writeFileSync(
      path.join(registry, 'uid-ranges', String(first.uidBase)),
      JSON.stringify({ dataDir: fs.realpathSync(squatter) }),
    )
    fs.rmSync(path.join(dir, 'node'), { recursive: true })
    const moved = await resolveInstallation({ ...opts(dir), registryDir: registry })
    assert.notEqual(moved.uidBase, first.uidBase)
    assert.ok(!overlap(moved, first))
  })

  it('takes over a claim whose data dir is gone', async () => {
    const registry = tempDir()
    const gone = tempDir()
    const old = await resolveInstallation({ ...opts(gone), registryDir: registry })
    fs.rmSync(gone, { recursive: true })
    const claim = path.join(registry, 'uid-ranges', String(old.uidBase))
    assert.ok(fs.existsSync(claim))
    const next = await resolveInstallation({
      ...opts(tempDir()),
      registryDir: registry,
      uidBase: old.uidBase,
    })
    assert.equal(next.uidBase, old.uidBase)
  })

  it('configured values win', async () => {
    const dataDir = tempDir()
    const got = await resolveInstallation({
      ...opts(dataDir),
      cgroupParent: 'rigbox-custom',
      uidBase: 3_000_000,
      uidCount: 1000,
    })
    assert.deepEqual(got, { cgroupParent: 'rigbox-custom', uidBase: 3_000_000, uidCount: 1000 })
  })
})
