import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import { accelKernelFlags, chooseAccel, hostTscKhz, parseAccelSetting } from '../../src/vm/accel.ts'

describe('accelerator choice', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'rigbox-accel-'))
  after(() => rm(root, { recursive: true, force: true }))

  /** A fake /sys/module with the given modules and an optional /dev/kvm. */
  async function host(name: string, modules: string[], kvm = true) {
    const dir = path.join(root, name)
    for (const m of modules) await mkdir(path.join(dir, 'module', m), { recursive: true })
    await mkdir(path.join(dir, 'module'), { recursive: true })
    if (kvm) await writeFile(path.join(dir, 'kvm'), '')
    return { sysModuleDir: path.join(dir, 'module'), devKvm: path.join(dir, 'kvm') }
  }

  it('takes KVM with kvm_intel or kvm_amd and /dev/kvm', async () => {
    assert.equal(
      (await chooseAccel('auto', await host('intel', ['kvm', 'kvm_intel']))).accel,
      'kvm',
    )
    assert.equal((await chooseAccel('auto', await host('amd', ['kvm', 'kvm_amd']))).accel, 'kvm')
  })

  it('takes TCG under nested PVM KVM even though /dev/kvm opens', async () => {
    const c = await chooseAccel('auto', await host('pvm', ['kvm', 'kvm_pvm', 'kvm_intel']))
    assert.equal(c.accel, 'tcg')
    assert.match(c.reason, /kvm_pvm/)
  })

  it('takes TCG without a hardware KVM module or without /dev/kvm', async () => {
    assert.equal((await chooseAccel('auto', await host('none', ['kvm']))).accel, 'tcg')
    assert.equal((await chooseAccel('auto', await host('nodev', ['kvm_amd'], false))).accel, 'tcg')
  })

  it('honours an explicit setting', async () => {
    const pvm = await host('pvm2', ['kvm_pvm'])
    assert.equal((await chooseAccel('kvm', pvm)).accel, 'kvm')
    assert.equal((await chooseAccel('tcg', await host('i2', ['kvm_intel']))).accel, 'tcg')
    assert.equal(parseAccelSetting(undefined), 'auto')
    assert.equal(parseAccelSetting(' TCG '), 'tcg')
    assert.throws(() => parseAccelSetting('hvf'), /invalid accelerator/)
  })

  it('reads the host TSC kHz from cpuinfo and builds the TCG flags', async () => {
    const cpuinfo = path.join(root, 'cpuinfo')
    await writeFile(
      cpuinfo,
      'processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2100.000\n\ncpu MHz : 1.0\n',
    )
    assert.equal(await hostTscKhz(cpuinfo), 2_100_000)
    assert.equal(await hostTscKhz(path.join(root, 'missing')), null)
    assert.deepEqual(accelKernelFlags('tcg', 2_100_000), ['tsc_early_khz=2100000', 'tsc=reliable'])
    assert.deepEqual(accelKernelFlags('kvm', 2_100_000), [])
    assert.deepEqual(accelKernelFlags('tcg', null), [])
  })
})
