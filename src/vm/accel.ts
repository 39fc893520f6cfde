import { access, readFile } from 'node:fs/promises'
import path from 'node:path'

export type Accel = 'kvm' | 'tcg'
export type AccelSetting = 'auto' | Accel

export interface AccelChoice {
  accel: Accel
  /** Why, for logs and `node info`. */
  reason: string
}

export interface AccelProbePaths {
  /** Defaults to /sys/module. */
  sysModuleDir?: string
  /** Defaults to /dev/kvm. */
  devKvm?: string
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p)
    return true
  } catch {
    return false
  }
}

/**
 * Chooses the accelerator. Opening /dev/kvm proves nothing: nested PVM KVM (`kvm_pvm`) accepts
 * the device but stock kernels crash or hang under it (DESIGN.md §2). So `auto` takes KVM only
 * when a hardware KVM module (`kvm_intel`/`kvm_amd`) is loaded, PVM is not, and /dev/kvm exists.
 */
export async function chooseAccel(
  setting: AccelSetting = 'auto',
  paths: AccelProbePaths = {},
): Promise<AccelChoice> {
  if (setting === 'kvm') return { accel: 'kvm', reason: 'forced by configuration' }
  if (setting === 'tcg') return { accel: 'tcg', reason: 'forced by configuration' }
  const mods = paths.sysModuleDir ?? '/sys/module'
  const devKvm = paths.devKvm ?? '/dev/kvm'
  if (await exists(path.join(mods, 'kvm_pvm'))) {
    return { accel: 'tcg', reason: 'kvm_pvm loaded: nested PVM KVM cannot run stock kernels' }
  }
  const intel = await exists(path.join(mods, 'kvm_intel'))
  const amd = await exists(path.join(mods, 'kvm_amd'))
  if (!intel && !amd) return { accel: 'tcg', reason: 'neither kvm_intel nor kvm_amd is loaded' }
  if (!(await exists(devKvm))) return { accel: 'tcg', reason: `${devKvm} is missing` }
  return { accel: 'kvm', reason: `${intel ? 'kvm_intel' : 'kvm_amd'} loaded` }
}

/** Parses a configuration value; anything unknown is an error rather than a silent `auto`. */
export function parseAccelSetting(value: string | undefined): AccelSetting {
  const v = (value ?? 'auto').trim().toLowerCase()
  if (v === 'auto' || v === 'kvm' || v === 'tcg') return v
  throw new Error(`invalid accelerator setting ${JSON.stringify(value)} (auto, kvm or tcg)`)
}

/**
 * Host TSC frequency in kHz from the first "cpu MHz" line of /proc/cpuinfo. Under TCG the guest
 * kernel otherwise calibrates the TSC against an emulated timer and hangs in most boots.
 */
export async function hostTscKhz(cpuinfoPath = '/proc/cpuinfo'): Promise<number | null> {
  let text: string
  try {
    text = await readFile(cpuinfoPath, 'utf8')
  } catch {
    return null
  }
  const m = /^cpu MHz\s*:\s*([0-9]+(?:\.[0-9]+)?)/m.exec(text)
  if (!m) return null
  const khz = Math.round(Number(m[1]) * 1000)
  return khz > 0 ? khz : null
}

/** The kernel command-line flags an accelerator needs (none for KVM). */
export function accelKernelFlags(accel: Accel, tscKhz: number | null): string[] {
  if (accel !== 'tcg' || !tscKhz) return []
  return [`tsc_early_khz=${tscKhz}`, 'tsc=reliable']
}
