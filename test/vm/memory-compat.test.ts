import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  checkResumable,
  differences,
  machineFor,
  machineOf,
  MemoryStateMismatch,
  parseVersionOutput,
  recordFile,
  recordMachine,
  type MachineRecord,
} from '../../src/vm/memory-compat.ts'
import { run } from '../../src/vm/proc.ts'
import { buildQemuArgs } from '../../src/vm/qemu-args.ts'
import { QemuDriver } from '../../src/vm/qemu.ts'
import { QmpClient } from '../../src/vm/qmp.ts'
import type { VmLaunchSpec } from '../../src/vm/types.ts'

const QEMU = '/usr/bin/qemu-system-x86_64'
const skip = existsSync(QEMU) ? false : `${QEMU} is missing`

const argsFor = (o: { accel?: 'kvm' | 'tcg'; memMb?: number; tbSizeMb?: number } = {}) =>
  buildQemuArgs({
    id: 'ws-abc12345',
    accel: o.accel ?? 'tcg',
    memMb: o.memMb ?? 512,
    vcpus: 2,
    tbSizeMb: o.tbSizeMb ?? 64,
    imageCmdline: 'root=/dev/vda rw',
    tscKhz: 2_100_000,
    ipAddress: '172.16.0.9',
  })

const machine = (over: Partial<MachineRecord> = {}): MachineRecord => ({
  qemu: '7.2.22',
  qemuPackage: 'Debian 1:7.2+dfsg-7+deb12u18',
  ...machineOf(argsFor(), 'Test CPU'),
  ...over,
})

describe('memory state compatibility: what a resume needs', () => {
  it('reads what the state depends on from a command line, and nothing else', () => {
    const m = machineOf(argsFor(), null)
    assert.equal(m.machine, 'microvm,x-option-roms=off,rtc=on,acpi=on')
    assert.deepEqual([m.accel, m.cpu, m.memMb, m.vcpus], ['tcg', 'max', 512, 2])
    assert.ok(m.devices.includes('virtio-blk-device,drive=disk'))
    assert.ok(m.devices.includes('virtserialport,chardev=tunnel,name=tunnel'))
    const kvm = machineOf(argsFor({ accel: 'kvm' }), null)
    assert.deepEqual([kvm.accel, kvm.cpu], ['kvm', 'host'])
    // The translation buffer, the lease and the kernel command line are not in the state.
    const other = buildQemuArgs({
      ...{ id: 'ws-other', accel: 'tcg', memMb: 512, vcpus: 2, tbSizeMb: 32 },
      ...{ imageCmdline: 'quiet', tscKhz: null, ipAddress: '172.16.0.77', incoming: true },
    })
    assert.deepEqual(machineOf(other, null), m)
    const spelled = machineOf(['-m', 'size=1G', '-smp', 'cpus=4,sockets=1'], null)
    assert.deepEqual([spelled.memMb, spelled.vcpus], [1024, 4])
    assert.deepEqual([machineOf(['-m', '1T'], null).memMb, machineOf([], null).vcpus], [null, null])
  })

  it('names each change; a stable QEMU update or a rebuild is not one', () => {
    assert.deepEqual(differences(machine(), machine()), [])
    assert.deepEqual(differences(machine(), machine({ qemu: '7.2.23', qemuPackage: 'x' })), [])
    assert.deepEqual(differences(machine(), machine({ qemu: '8.0.0' })), [
      'QEMU changed from 7.2.22 to 8.0.0',
    ])
    const kvm = machineOf(argsFor({ accel: 'kvm', memMb: 1024 }), 'Test CPU')
    assert.deepEqual(differences(machine(), machine(kvm)), [
      'the accelerator changed from tcg to kvm',
      'the CPU model changed from max to host',
      'RAM (MiB) changed from 512 to 1024',
    ])
    const hosts = differences(machine(kvm), machine({ ...kvm, hostCpu: 'Other CPU' }))
    assert.deepEqual(hosts, ['the host CPU changed from Test CPU to Other CPU'])
    const fewer = machine({ devices: machine().devices.filter((d) => d !== 'virtio-rng-device') })
    assert.deepEqual(differences(machine(), fewer), ['the devices changed (-virtio-rng-device)'])
  })

  it("reads QEMU's version as --version prints it", () => {
    assert.deepEqual(
      parseVersionOutput('QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n'),
      { qemu: '7.2.22', qemuPackage: 'Debian 1:7.2+dfsg-7+deb12u18+b3' },
    )
    assert.deepEqual(parseVersionOutput('QEMU emulator version 9.1.0\n'), {
      qemu: '9.1.0',
      qemuPackage: '',
    })
    assert.throws(() => parseVersionOutput('bash: qemu: not found'), /cannot read QEMU's version/)
  })
})

describe('memory state record with the real QEMU', { skip }, () => {
  let dir = ''
  let qemu: ChildProcess
  let holder: ChildProcess
  let qmp: QmpClient
  let spec: VmLaunchSpec

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'rigbox-memory-compat-'))
    spec = {
      id: 'ws-abc12345',
      dir: path.join(dir, 'vms', 'ws-abc12345'),
      image: { kernelPath: '/k', initrdPath: '/i', rootfsPath: '/r', cmdline: 'root=/dev/vda' },
      memMb: 512,
      vcpus: 2,
      diskMb: 1024,
      ipAddress: '172.16.0.9',
      resumeFrom: path.join(dir, 'memory.state'),
    }
    // A real QEMU answers QMP (no guest: machine `none`); a process with the VM's command line,
    // as the driver builds it for a boot, stands in for the VM's QEMU in /proc.
    const sock = path.join(dir, 'qmp.sock')
    qemu = spawn(QEMU, [
      '-M',
      'none',
      '-nodefaults',
      '-display',
      'none',
      '-S',
      '-qmp',
      `unix:${sock},server=on,wait=off`,
    ])
    qmp = await QmpClient.connectWithRetry(sock, Date.now() + 10_000)
    const args = buildQemuArgs({
      ...spec,
      accel: 'tcg',
      tbSizeMb: 64,
      imageCmdline: 'x',
      tscKhz: 1,
    })
    holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', ...args])
    await writeFile(spec.resumeFrom!, 'QEVM…')
  })

  after(async () => {
    qmp?.close()
    qemu?.kill()
    holder?.kill()
    await rm(dir, { recursive: true, force: true })
  })

  it('a state saved by this QEMU resumes; a state without a record is tried as before', async () => {
    await checkResumable(spec, 'tcg', QEMU) // no record yet: made before records existed
    await recordMachine(spec.resumeFrom!, qmp, holder.pid!)
    const record = JSON.parse(await readFile(recordFile(spec.resumeFrom!), 'utf8'))
    const installed = parseVersionOutput(await run(QEMU, ['--version']))
    assert.equal(record.qemu, installed.qemu, 'QMP and --version agree')
    assert.equal(record.qemuPackage, installed.qemuPackage)
    assert.deepEqual([record.accel, record.memMb, record.vcpus], ['tcg', 512, 2])
    assert.deepEqual(differences(record, await machineFor(spec, 'tcg', QEMU)), [])
    await checkResumable(spec, 'tcg', QEMU)
  })

  it('refuses a state whose machine changed, saying what changed and what to do', async () => {
    const mismatch = (pattern: RegExp) => (err: unknown) => {
      assert.ok(err instanceof MemoryStateMismatch, String(err))
      assert.equal(err.code, 'RESUME_INCOMPATIBLE')
      assert.match(err.message, pattern)
      assert.match(err.message, /Start it again to boot from its disk/)
      return true
    }
    await assert.rejects(checkResumable({ ...spec, memMb: 1024 }, 'tcg', QEMU), mismatch(/RAM/))
    await assert.rejects(checkResumable(spec, 'kvm', QEMU), mismatch(/accelerator.*tcg to kvm/))
    const file = recordFile(spec.resumeFrom!)
    const record = JSON.parse(await readFile(file, 'utf8'))
    await writeFile(file, JSON.stringify({ ...record, qemu: '6.0.0' }))
    await assert.rejects(
      checkResumable(spec, 'tcg', QEMU),
      mismatch(new RegExp(`QEMU changed from 6\\.0\\.0 to ${record.qemu.replace(/\./g, '\\.')}`)),
    )
    await writeFile(file, '{"format":')
    await assert.rejects(checkResumable(spec, 'tcg', QEMU), mismatch(/record is unreadable/))
  })

  it('the driver refuses it before launching anything: no QEMU, no cgroup, the state kept', async () => {
    const file = recordFile(spec.resumeFrom!)
    await writeFile(file, JSON.stringify({ ...machine(), format: 1, qemu: '6.0.0', savedAt: '' }))
    const cgroupRoot = path.join(dir, 'cgroup')
    await mkdir(cgroupRoot)
    const vmsDir = path.join(dir, 'vms')
    const driver = new QemuDriver({ vmsDir, accel: 'tcg', qemuBinary: QEMU, cgroupRoot })
    await assert.rejects(driver.start(spec), (err: unknown) => {
      assert.ok(err instanceof MemoryStateMismatch, String(err))
      assert.match(err.message, /QEMU changed from 6\.0\.0/)
      return true
    })
    assert.equal(driver.get(spec.id), undefined)
    assert.equal(existsSync(spec.dir), false, 'not even prepared')
    assert.deepEqual(await readdir(cgroupRoot), [])
    assert.equal(await readFile(spec.resumeFrom!, 'utf8'), 'QEVM…')
  })
})
