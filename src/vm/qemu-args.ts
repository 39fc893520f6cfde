import path from 'node:path'
import type { Accel } from './accel.ts'
import { accelKernelFlags } from './accel.ts'
import { JAIL_IMAGE, JAIL_VM_DIR } from './jail.ts'
import type { VmLaunchSpec } from './types.ts'

/**
 * The QEMU command line, as paths look inside the jail. Pure, so it is unit-tested as is.
 *
 * Network: one user-mode (slirp) network per VM with `restrict=on`, so VMs share no link and reach
 * nothing but what is forwarded. Leases are 172.16.0.2–.254 and 172.16.0.1 is reserved for the VM
 * bridge the guest agent serves inside the VM, so slirp's own addresses must be none of those:
 * the slirp net is 172.16.0.0/23 with its gateway at 172.16.1.254 and DNS at 172.16.1.253, and
 * `dhcpstart=<lease>` makes the lease the first (only) address the guest is offered. Host
 * forwards without a guest address also target `dhcpstart`.
 */

export const SLIRP = {
  net: '172.16.0.0/23',
  host: '172.16.1.254',
  dns: '172.16.1.253',
}

export const SERIAL_PORTS = ['agent', 'bulk', 'tunnel'] as const

export interface QemuArgsOptions {
  id: string
  accel: Accel
  memMb: number
  vcpus: number
  /** TCG translation buffer in MiB (default reservation is 1 GiB of host memory per VM). */
  tbSizeMb: number
  imageCmdline: string
  tscKhz: number | null
  ipAddress: string
  /** Wait for a migration stream (a memory snapshot) instead of booting the kernel. */
  incoming?: boolean
}

const ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/

/** VM ids name paths, cgroups and the QEMU process: lowercase letters, digits, dashes. */
export function checkId(id: string): void {
  if (!ID_RE.test(id)) throw new Error(`invalid VM id ${JSON.stringify(id)}`)
}

export function checkSpec(spec: VmLaunchSpec): void {
  checkId(spec.id)
  if (!path.isAbsolute(spec.dir)) throw new Error(`VM dir must be absolute: ${spec.dir}`)
  if (!(spec.memMb >= 64) || !(spec.vcpus >= 1) || !(spec.diskMb >= 1)) {
    throw new Error(`VM ${spec.id}: memMb ≥ 64, vcpus ≥ 1 and diskMb ≥ 1 are required`)
  }
  checkLease(spec.ipAddress)
}

/** Validates a 172.16.0.x lease (.2–.254). */
export function checkLease(ip: string): void {
  const m = /^172\.16\.0\.(\d{1,3})$/.exec(ip)
  const last = m ? Number(m[1]) : -1
  if (last < 2 || last > 254) throw new Error(`IP ${ip} is not a lease in 172.16.0.2–172.16.0.254`)
}

export function kernelCmdline(o: Pick<QemuArgsOptions, 'accel' | 'imageCmdline' | 'tscKhz'>) {
  const image = o.imageCmdline.trim().split(/\s+/).filter(Boolean)
  const extra = ['console=ttyS0', ...accelKernelFlags(o.accel, o.tscKhz), 'quiet']
  return [...extra.slice(0, 1), ...image, ...extra.slice(1)]
    .filter((arg, i, all) => all.indexOf(arg) === i)
    .join(' ')
}

export function jailSocket(name: string): string {
  return path.join(JAIL_VM_DIR, `${name}.sock`)
}

export function buildQemuArgs(o: QemuArgsOptions): string[] {
  checkLease(o.ipAddress)
  const accel =
    o.accel === 'kvm'
      ? ['-accel', 'kvm', '-cpu', 'host']
      : ['-accel', `tcg,tb-size=${o.tbSizeMb}`, '-cpu', 'max']
  // The base and the overlay are separate nodes: `backing=base` overrides the host path that
  // the qcow2 header records (see disks.ts), so the jail needs only /image/rootfs.img.
  const base = {
    'node-name': 'base',
    driver: 'raw',
    'read-only': true,
    file: { driver: 'file', filename: JAIL_IMAGE.rootfs, 'read-only': true },
  }
  const disk = {
    'node-name': 'disk',
    driver: 'qcow2',
    discard: 'unmap',
    backing: 'base',
    file: { driver: 'file', filename: path.join(JAIL_VM_DIR, 'disk.qcow2'), discard: 'unmap' },
  }
  const netdev = [
    'user',
    'id=n0',
    'restrict=on',
    `net=${SLIRP.net}`,
    `host=${SLIRP.host}`,
    `dns=${SLIRP.dns}`,
    `dhcpstart=${o.ipAddress}`,
    `hostname=${o.id}`,
  ].join(',')
  const args = [
    // guest=<id> also lets adoption recognise the process from /proc/PID/cmdline.
    '-name',
    `guest=${o.id},debug-threads=on`,
    '-M',
    'microvm,x-option-roms=off,rtc=on,acpi=on',
    ...accel,
    '-m',
    `${o.memMb}M`,
    '-smp',
    String(o.vcpus),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-msg',
    'timestamp=on',
    // A guest reboot or panic (panic=-1) ends the VM visibly instead of looping inside it.
    '-no-reboot',
    // append=on: the host may truncate the log to cap its size while QEMU writes.
    '-chardev',
    `file,id=con,path=${path.join(JAIL_VM_DIR, 'console.log')},append=on`,
    '-serial',
    'chardev:con',
    '-kernel',
    JAIL_IMAGE.kernel,
    '-initrd',
    JAIL_IMAGE.initrd,
    '-append',
    // The guest's initrd compares it with the disk's owner: a fork's first boot renews identity.
    `${kernelCmdline(o)} rigbox.workspace=${o.id}`,
    '-blockdev',
    JSON.stringify(base),
    '-blockdev',
    JSON.stringify(disk),
    '-device',
    'virtio-blk-device,drive=disk',
    '-netdev',
    netdev,
    '-device',
    'virtio-net-device,netdev=n0',
    '-device',
    'virtio-rng-device',
    '-device',
    'virtio-serial-device,max_ports=4',
  ]
  for (const name of SERIAL_PORTS) {
    args.push(
      '-chardev',
      `socket,id=${name},path=${jailSocket(name)},server=on,wait=off`,
      '-device',
      `virtserialport,chardev=${name},name=${name}`,
    )
  }
  args.push(
    '-chardev',
    `socket,id=qmp,path=${jailSocket('qmp')},server=on,wait=off`,
    '-mon',
    'chardev=qmp,mode=control',
    '-sandbox',
    'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
  )
  // -S too: the guest stays paused after the load until the host continues it.
  if (o.incoming) args.push('-incoming', 'defer', '-S')
  return args
}
