import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { computeLimits } from '../../src/vm/cgroups.ts'
import { buildBwrapArgs, buildSetprivArgs } from '../../src/vm/jail.ts'
import { buildQemuArgs, checkLease, kernelCmdline } from '../../src/vm/qemu-args.ts'
import { decodeStatus } from '../../src/vm/qemu-run.ts'
import { describeExit } from '../../src/vm/types.ts'

const base = {
  id: 'ws-abc12345',
  accel: 'tcg' as const,
  memMb: 512,
  vcpus: 2,
  tbSizeMb: 32,
  imageCmdline: 'console=ttyS0 root=/dev/vda rw panic=-1',
  tscKhz: 2_100_000,
  ipAddress: '172.16.0.9',
}

/** The value following each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []))
}

describe('QEMU command line', () => {
  it('uses microvm, TCG with a bounded translation buffer and the sandbox', () => {
    const args = buildQemuArgs(base)
    assert.deepEqual(values(args, '-M'), ['microvm,x-option-roms=off,rtc=on,acpi=on'])
    assert.deepEqual(values(args, '-accel'), ['tcg,tb-size=32'])
    assert.deepEqual(values(args, '-cpu'), ['max'])
    assert.deepEqual(values(args, '-m'), ['512M'])
    assert.deepEqual(values(args, '-smp'), ['2'])
    assert.ok(args.includes('-nodefaults') && args.includes('-no-user-config'))
    assert.ok(args.includes('-no-reboot'))
    assert.deepEqual(values(args, '-sandbox'), [
      'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    ])
    assert.equal(values(args, '-name')[0], 'guest=ws-abc12345,debug-threads=on')
  })

  it('uses KVM with the host CPU and no TSC flags on a KVM host', () => {
    const args = buildQemuArgs({ ...base, accel: 'kvm' })
    assert.deepEqual(values(args, '-accel'), ['kvm'])
    assert.deepEqual(values(args, '-cpu'), ['host'])
    assert.doesNotMatch(values(args, '-append')[0], /tsc_early_khz/)
  })

  it('builds the kernel command line once per flag, with the TSC flags under TCG', () => {
    const cmdline = kernelCmdline(base)
    assert.equal(
      cmdline,
      'console=ttyS0 root=/dev/vda rw panic=-1 tsc_early_khz=2100000 tsc=reliable quiet',
    )
  })

  it('opens the disk with an explicit read-only backing node inside the jail', () => {
    const [b, d] = values(buildQemuArgs(base), '-blockdev').map((s) => JSON.parse(s))
    assert.equal(b['node-name'], 'base')
    assert.equal(b['read-only'], true)
    assert.equal(b.file.filename, '/image/rootfs.img')
    assert.equal(d.driver, 'qcow2')
    assert.equal(d.backing, 'base')
    assert.equal(d.file.filename, '/vm/disk.qcow2')
  })

  it('gives the guest its lease on a restricted user network outside the lease range', () => {
    const [netdev] = values(buildQemuArgs(base), '-netdev')
    for (const part of ['user', 'id=n0', 'restrict=on', 'dhcpstart=172.16.0.9']) {
      assert.ok(netdev.split(',').includes(part), `${part} in ${netdev}`)
    }
    assert.match(netdev, /host=172\.16\.1\.254/)
    assert.match(netdev, /dns=172\.16\.1\.253/)
    assert.throws(() => checkLease('172.16.0.1'), /not a lease/)
    assert.throws(() => checkLease('172.16.0.255'), /not a lease/)
    assert.throws(() => checkLease('10.0.0.2'), /not a lease/)
    assert.throws(() => buildQemuArgs({ ...base, ipAddress: '172.16.1.2' }), /not a lease/)
  })

  it('puts the serial ports, QMP and the console in the VM dir', () => {
    const args = buildQemuArgs(base)
    const chardevs = values(args, '-chardev')
    for (const name of ['agent', 'bulk', 'tunnel', 'qmp']) {
      assert.ok(
        chardevs.includes(`socket,id=${name},path=/vm/${name}.sock,server=on,wait=off`),
        name,
      )
    }
    for (const name of ['agent', 'bulk', 'tunnel']) {
      assert.ok(values(args, '-device').includes(`virtserialport,chardev=${name},name=${name}`))
    }
    assert.ok(chardevs.includes('file,id=con,path=/vm/console.log,append=on'))
    assert.deepEqual(values(args, '-mon'), ['chardev=qmp,mode=control'])
    assert.ok(values(args, '-device').includes('virtio-rng-device'))
  })
})

describe('jail command line', () => {
  const image = { kernelPath: '/img/vmlinux', initrdPath: '/img/initrd.img', rootfsPath: '/img/r' }

  it('isolates everything, the network included, and never dies with its parent', () => {
    const args = buildBwrapArgs({ vmDir: '/data/vms/ws-1', image, kvm: false })
    const unshared = ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup']
    for (const f of [...unshared, '--unshare-net']) assert.ok(args.includes(f), f)
    assert.ok(args.includes('--new-session') && args.includes('--clearenv'))
    assert.ok(!args.includes('--die-with-parent'))
    const joined = args.join(' ')
    assert.match(joined, /--ro-bind \/usr \/usr/)
    assert.match(joined, /--bind \/data\/vms\/ws-1 \/vm --tmpfs \/vm\/host/)
    assert.match(joined, /--ro-bind \/img\/vmlinux \/image\/vmlinux/)
    assert.match(joined, /--ro-bind \/img\/r \/image\/rootfs.img/)
    assert.match(joined, /--ro-bind \S+\/inbound-relay\.py \/rigbox\/inbound-relay\.py/)
    assert.doesNotMatch(joined, /\/dev\/kvm/)
    assert.match(
      buildBwrapArgs({ vmDir: '/v', image, kvm: true }).join(' '),
      /--dev-bind \/dev\/kvm/,
    )
  })

  it('drops to the uid with no capabilities and no_new_privs', () => {
    assert.deepEqual(buildSetprivArgs(200_001), [
      '--reuid=200001',
      '--regid=200001',
      '--clear-groups',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--no-new-privs',
    ])
    assert.equal(buildSetprivArgs(200_001, [108])[2], '--groups=108')
  })

  it('limits memory to guest RAM + translation buffer + overhead, CPU to the vCPUs', () => {
    const l = computeLimits({ memMb: 256, vcpus: 2, tbSizeMb: 32, overheadMb: 64, pidsMax: 64 })
    assert.equal(l.memoryBytes, 352 * 1024 * 1024)
    assert.equal(l.cpuQuotaUs, 2 * l.cpuPeriodUs)
    assert.equal(l.pidsMax, 64)
  })
})

describe('exit classification', () => {
  it('reads 128+n from bubblewrap as signal n', () => {
    assert.deepEqual(decodeStatus(137, null), { code: 137, signal: 'SIGKILL' })
    assert.deepEqual(decodeStatus(1, null), { code: 1, signal: null })
    assert.deepEqual(decodeStatus(null, 'SIGTERM'), { code: null, signal: 'SIGTERM' })
  })

  it('names poweroff, crash and OOM', () => {
    const e = {
      code: 137,
      signal: 'SIGKILL' as const,
      requested: false,
      guestPoweredOff: false,
      guestReset: false,
    }
    assert.equal(describeExit({ ...e, oomKilled: true }).reason, 'oom')
    assert.equal(describeExit({ ...e, oomKilled: false }).reason, 'crash')
    assert.equal(describeExit({ ...e, oomKilled: false, requested: true }).reason, 'poweroff')
    const off = { ...e, code: 0, signal: null, oomKilled: false, guestPoweredOff: true }
    assert.equal(describeExit(off).reason, 'poweroff')
    assert.equal(describeExit({ ...off, guestPoweredOff: false, guestReset: true }).reason, 'crash')
  })
})
