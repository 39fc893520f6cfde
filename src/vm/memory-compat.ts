import { readFile, writeFile } from 'node:fs/promises'
import { commitPartial, PARTIAL } from '../lib/durable.ts'
import type { Accel } from './accel.ts'
import { procCmdline, run } from './proc.ts'
import { buildQemuArgs } from './qemu-args.ts'
import type { QmpClient } from './qmp.ts'
import type { VmLaunchSpec } from './types.ts'

/**
 * A memory state (QEMU's migration stream) holds RAM and device state, not the machine it came
 * from: the QEMU that loads it must be built the same way, or the load fails halfway with a raw
 * QEMU error. microvm is not a versioned machine type, so nothing in QEMU keeps its device layout
 * loadable across releases. So the machine is recorded beside the state when it is saved, and
 * compared before a resume launches anything.
 */
export interface MachineRecord {
  /** QEMU's release, `major.minor.micro`. */
  qemu: string
  /** The distribution's build of it; shown, not compared. */
  qemuPackage: string
  /** `-M`, as given. */
  machine: string
  /** `kvm` or `tcg` (options such as tb-size do not change the state). */
  accel: string
  /** `-cpu`: `host` under KVM, `max` under TCG. */
  cpu: string
  /** The host's CPU model: the guest's CPU under `-cpu host`. */
  hostCpu: string | null
  /** From `-m`; null if it does not read as a size (then only an equal null matches). */
  memMb: number | null
  vcpus: number | null
  /** Every `-device`, in order: the state has a section per device. */
  devices: string[]
}

export interface MemoryStateRecord extends MachineRecord {
  format: 1
  savedAt: string
}

const DEFAULT_QEMU = '/usr/bin/qemu-system-x86_64'

/** Thrown by a resume whose memory state this host's QEMU cannot load (nothing was launched). */
export class MemoryStateMismatch extends Error {
  readonly code = 'RESUME_INCOMPATIBLE'
  constructor(
    readonly vmId: string,
    readonly changes: string[],
  ) {
    super(
      `workspace ${vmId} cannot resume from its memory state: since it was paused, ` +
        `${changes.join('; ')}, and QEMU cannot load a state saved by a different machine. ` +
        'Start it again to boot from its disk, as it was when paused (the memory state is ' +
        'discarded: programs that were running start over).',
    )
  }
}

/** The record that goes with memory state `file`. */
export function recordFile(file: string): string {
  return `${file}.json`
}

/**
 * Records the running QEMU (its version over QMP, its command line from /proc) for the memory
 * state about to be saved to `file`. Written before the state, so a state never lacks its record.
 */
export async function recordMachine(file: string, qmp: QmpClient, pid: number): Promise<void> {
  const args = await procCmdline(pid)
  if (!args) throw new Error(`QEMU (pid ${pid}) is gone`)
  const version = await qmp.execute<QmpVersion>('query-version')
  const record: MemoryStateRecord = {
    format: 1,
    savedAt: new Date().toISOString(),
    ...machineOf(args, await hostCpuModel()),
    qemu: `${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro}`,
    qemuPackage: version.package.trim(),
  }
  const target = recordFile(file)
  await writeFile(target + PARTIAL, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 })
  await commitPartial(target)
}

/**
 * Refuses, before anything is launched, a resume the installed QEMU could not load: what the
 * state was saved with is compared with what `spec` would run now. A state saved before records
 * existed has none and is tried as before.
 */
export async function checkResumable(
  spec: VmLaunchSpec,
  accel: Accel,
  qemuBinary = DEFAULT_QEMU,
): Promise<void> {
  if (!spec.resumeFrom) return
  let text: string
  try {
    text = await readFile(recordFile(spec.resumeFrom), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  const saved = parseRecord(text)
  if (!saved) throw new MemoryStateMismatch(spec.id, ['its record is unreadable'])
  const changes = differences(saved, await machineFor(spec, accel, qemuBinary))
  if (changes.length) throw new MemoryStateMismatch(spec.id, changes)
}

/** What would run `spec` now: the installed QEMU and the command line the driver would build. */
export async function machineFor(
  spec: VmLaunchSpec,
  accel: Accel,
  qemuBinary = DEFAULT_QEMU,
): Promise<MachineRecord> {
  const args = buildQemuArgs({
    id: spec.id,
    accel,
    memMb: spec.memMb,
    vcpus: spec.vcpus,
    tbSizeMb: 64,
    imageCmdline: spec.image.cmdline,
    tscKhz: null,
    ipAddress: spec.ipAddress,
    incoming: true,
  })
  return { ...machineOf(args, await hostCpuModel()), ...(await installedQemu(qemuBinary)) }
}

/** What changed between the machine a state was saved on and the one that would load it. */
export function differences(saved: MachineRecord, now: MachineRecord): string[] {
  const out: string[] = []
  const changed = (what: string, a: unknown, b: unknown) => {
    if (a !== b) out.push(`${what} changed from ${String(a)} to ${String(b)}`)
  }
  // Stable releases (x.y.z → x.y.z+1, and distribution rebuilds) keep the migration format;
  // demanding the exact build would throw away every paused workspace at each security update.
  if (release(saved.qemu) !== release(now.qemu)) changed('QEMU', saved.qemu, now.qemu)
  changed('the machine type', saved.machine, now.machine)
  changed('the accelerator', saved.accel, now.accel)
  changed('the CPU model', saved.cpu, now.cpu)
  if (saved.cpu === 'host' && now.cpu === 'host')
    changed('the host CPU', saved.hostCpu, now.hostCpu)
  changed('RAM (MiB)', saved.memMb, now.memMb)
  changed('the vCPU count', saved.vcpus, now.vcpus)
  if (saved.devices.join('\n') !== now.devices.join('\n')) {
    const gone = saved.devices.filter((d) => !now.devices.includes(d))
    const added = now.devices.filter((d) => !saved.devices.includes(d))
    const list = [...gone.map((d) => `-${d}`), ...added.map((d) => `+${d}`)]
    out.push(`the devices changed (${list.length ? list.join(', ') : 'order'})`)
  }
  return out
}

/** The parts of a QEMU command line a memory state depends on. */
export function machineOf(
  args: string[],
  hostCpu: string | null,
): Omit<MachineRecord, 'qemu' | 'qemuPackage'> {
  const values = (flag: string) =>
    args.flatMap((a, i) => (a === flag && i + 1 < args.length ? [args[i + 1]] : []))
  const one = (flag: string) => values(flag).at(-1) ?? ''
  const mem = /^(?:size=)?(\d+)([MG]?)(?:,|$)/i.exec(one('-m'))
  const vcpus = Number(/^(?:cpus=)?(\d+)(?:,|$)/.exec(one('-smp'))?.[1] ?? NaN)
  return {
    machine: one('-M') || one('-machine'),
    accel: one('-accel').split(',')[0],
    cpu: one('-cpu'),
    hostCpu,
    memMb: mem ? Number(mem[1]) * (mem[2].toUpperCase() === 'G' ? 1024 : 1) : null,
    vcpus: Number.isFinite(vcpus) ? vcpus : null,
    devices: values('-device'),
  }
}

/** `QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)` → version and package. */
export function parseVersionOutput(text: string): { qemu: string; qemuPackage: string } {
  const m = /version (\d+\.\d+\.\d+)(?: \((.*)\))?/.exec(text)
  if (!m) throw new Error(`cannot read QEMU's version from ${JSON.stringify(text.slice(0, 200))}`)
  return { qemu: m[1], qemuPackage: m[2] ?? '' }
}

interface QmpVersion {
  qemu: { major: number; minor: number; micro: number }
  package: string
}

async function installedQemu(binary: string) {
  return parseVersionOutput(await run(binary, ['--version'], 10_000))
}

function release(version: string): string {
  return version.split('.').slice(0, 2).join('.')
}

async function hostCpuModel(): Promise<string | null> {
  const text = await readFile('/proc/cpuinfo', 'utf8').catch(() => '')
  return /^model name\s*:\s*(.+)$/m.exec(text)?.[1].trim() ?? null
}

function parseRecord(text: string): MemoryStateRecord | null {
  try {
    const r = JSON.parse(text) as MemoryStateRecord
    const ok =
      r.format === 1 &&
      typeof r.qemu === 'string' &&
      typeof r.machine === 'string' &&
      typeof r.accel === 'string' &&
      typeof r.cpu === 'string' &&
      (typeof r.memMb === 'number' || r.memMb === null) &&
      (typeof r.vcpus === 'number' || r.vcpus === null) &&
      Array.isArray(r.devices)
    return ok ? r : null
  } catch {
    return null
  }
}
