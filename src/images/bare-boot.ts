// The plainest QEMU command that boots an image: no jail, no QMP, no driver. The boot benchmark
// measures it as the baseline for the API path, and it is the reference for what an image needs.
import { existsSync, readFileSync } from 'node:fs'
import type { ImageInfo } from './build.ts'

export interface BareBootOptions {
  /** qcow2 overlay on the image's rootfs.img (`qemu-img create -f qcow2 -b rootfs.img -F raw`). */
  overlay: string
  memMb: number
  vcpus: number
  /** Unix socket paths for the virtio-serial ports `agent`, `bulk` and `tunnel` (server mode). */
  agentSock?: string
  bulkSock?: string
  tunnelSock?: string
  /** Serial console to this file; without it the console goes to QEMU's stdout. */
  serialLog?: string
  /** Default: `RIGBOX_ACCEL`, else TCG where KVM cannot run stock kernels (see hostAccel). */
  accel?: 'kvm' | 'tcg'
  /** user-net hostfwd rules, e.g. `tcp:127.0.0.1:2222-:22`. */
  hostfwd?: string[]
}

/**
 * KVM only where it works: a nested PVM /dev/kvm opens fine but crashes stock kernels, so TCG
 * there and wherever neither kvm_intel nor kvm_amd is loaded. `RIGBOX_ACCEL` overrides.
 */
export function hostAccel(): 'kvm' | 'tcg' {
  const forced = process.env.RIGBOX_ACCEL
  if (forced === 'kvm' || forced === 'tcg') return forced
  if (existsSync('/sys/module/kvm_pvm')) return 'tcg'
  if (!existsSync('/sys/module/kvm_intel') && !existsSync('/sys/module/kvm_amd')) return 'tcg'
  return existsSync('/dev/kvm') ? 'kvm' : 'tcg'
}

/** Host TSC in kHz for `tsc_early_khz`: under TCG the guest's calibration hangs without it. */
export function hostTscKhz(): number {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1])
  if (!mhz) throw new Error('cannot read "cpu MHz" from /proc/cpuinfo')
  return Math.round(mhz * 1000)
}

/** Kernel command line: the image's own plus what the accelerator needs. */
export function bootCmdline(image: ImageInfo, accel: 'kvm' | 'tcg'): string {
  return accel === 'tcg'
    ? `${image.cmdline} tsc_early_khz=${hostTscKhz()} tsc=reliable`
    : image.cmdline
}

/** Arguments for `qemu-system-x86_64` (without the program name). */
export function bareQemuArgs(image: ImageInfo, opts: BareBootOptions): string[] {
  const accel = opts.accel ?? hostAccel()
  const net = ['user', 'id=n0', 'restrict=on', ...(opts.hostfwd ?? []).map((r) => `hostfwd=${r}`)]
  const args = [
    ...['-M', 'microvm,x-option-roms=off,rtc=on'],
    // A 64 MiB translation buffer instead of TCG's default 1 GiB reservation.
    ...(accel === 'kvm'
      ? ['-accel', 'kvm', '-cpu', 'host']
      : ['-accel', 'tcg,tb-size=64', '-cpu', 'max']),
    ...['-m', String(opts.memMb), '-smp', String(opts.vcpus)],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
    ...['-serial', opts.serialLog ? `file:${opts.serialLog}` : 'stdio'],
    ...['-kernel', image.kernelPath, '-initrd', image.initrdPath],
    ...['-append', bootCmdline(image, accel)],
    ...['-drive', `id=root,file=${opts.overlay},format=qcow2,if=none`],
    ...['-device', 'virtio-blk-device,drive=root'],
    ...['-netdev', net.join(','), '-device', 'virtio-net-device,netdev=n0'],
    ...['-device', 'virtio-rng-device'],
    ...['-device', 'virtio-serial-device'],
  ]
  const ports: [string, string | undefined][] = [
    ['agent', opts.agentSock],
    ['bulk', opts.bulkSock],
    ['tunnel', opts.tunnelSock],
  ]
  for (const [name, sock] of ports) {
    if (!sock) continue
    args.push('-chardev', `socket,id=${name},path=${sock},server=on,wait=off`)
    args.push('-device', `virtserialport,chardev=${name},name=${name}`)
  }
  return args
}
