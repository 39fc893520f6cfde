import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises'
import path from 'node:path'

/** cgroup v1 limits of one VM (here the unified v2 hierarchy has no controllers). */

export interface JailLimits {
  memoryBytes: number
  cpuPeriodUs: number
  cpuQuotaUs: number
  pidsMax: number
}

/** Guest RAM + TCG translation buffer + VMM overhead; one CPU of quota per vCPU. */
export function computeLimits(o: {
  memMb: number
  vcpus: number
  tbSizeMb: number
  overheadMb: number
  pidsMax: number
}): JailLimits {
  const period = 100_000
  return {
    memoryBytes: (o.memMb + o.tbSizeMb + o.overheadMb) * 1024 * 1024,
    cpuPeriodUs: period,
    cpuQuotaUs: o.vcpus * period,
    pidsMax: o.pidsMax,
  }
}

const CONTROLLERS = ['memory', 'cpu', 'pids'] as const
type Controller = (typeof CONTROLLERS)[number]

/** cgroup v1 directories `<root>/<controller>/<parent>/<id>` (here the v2 tree has no controllers). */
export class Cgroups {
  constructor(
    readonly root = '/sys/fs/cgroup',
    readonly parent = 'rigbox',
  ) {}

  dir(controller: Controller, id: string): string {
    return path.join(this.root, controller, this.parent, id)
  }

  /** The `cgroup.procs` files a launcher writes its own pid into before exec. */
  procsFiles(id: string): string[] {
    return CONTROLLERS.map((c) => path.join(this.dir(c, id), 'cgroup.procs'))
  }

  async create(id: string, limits: JailLimits): Promise<void> {
    for (const c of CONTROLLERS) await mkdir(this.dir(c, id), { recursive: true })
    const mem = this.dir('memory', id)
    await writeFile(path.join(mem, 'memory.limit_in_bytes'), String(limits.memoryBytes))
    const cpu = this.dir('cpu', id)
    await writeFile(path.join(cpu, 'cpu.cfs_period_us'), String(limits.cpuPeriodUs))
    await writeFile(path.join(cpu, 'cpu.cfs_quota_us'), String(limits.cpuQuotaUs))
    await writeFile(path.join(this.dir('pids', id), 'pids.max'), String(limits.pidsMax))
  }

  /** Host pids in the VM's cgroup (the pids controller: every launcher process is placed there). */
  async procs(id: string): Promise<number[]> {
    try {
      const text = await readFile(path.join(this.dir('pids', id), 'cgroup.procs'), 'utf8')
      return text.split('\n').filter(Boolean).map(Number)
    } catch {
      return []
    }
  }

  /** The `oom_kill` counter of memory.oom_control (kernel ≥ 4.13); 0 if unknown. */
  async oomKills(id: string): Promise<number> {
    try {
      const text = await readFile(path.join(this.dir('memory', id), 'memory.oom_control'), 'utf8')
      const m = /^oom_kill\s+(\d+)/m.exec(text)
      return m ? Number(m[1]) : 0
    } catch {
      return 0
    }
  }

  /** Peak memory use, for measurements. */
  async maxUsageBytes(id: string): Promise<number | null> {
    try {
      const p = path.join(this.dir('memory', id), 'memory.max_usage_in_bytes')
      return Number(await readFile(p, 'utf8'))
    } catch {
      return null
    }
  }

  /** Removes the VM's cgroups; they must be empty (rmdir fails with EBUSY otherwise). */
  async remove(id: string): Promise<void> {
    const errors: string[] = []
    for (const c of CONTROLLERS) {
      try {
        await rmdirCgroup(this.dir(c, id))
      } catch (err) {
        errors.push(`${c}: ${(err as Error).message}`)
      }
    }
    if (errors.length) throw new Error(`cannot remove cgroups of ${id}: ${errors.join('; ')}`)
  }

  /** VM ids that have a cgroup (from any controller). */
  async list(): Promise<string[]> {
    const ids = new Set<string>()
    for (const c of CONTROLLERS) {
      try {
        for (const e of await readdir(path.join(this.root, c, this.parent), {
          withFileTypes: true,
        }))
          if (e.isDirectory()) ids.add(e.name)
      } catch {
        // controller or parent not there yet
      }
    }
    return [...ids]
  }
}

async function rmdirCgroup(dir: string): Promise<void> {
  // A task that just exited may still be counted for a moment.
  for (let i = 0; ; i++) {
    try {
      await rmdir(dir)
      return
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (code !== 'EBUSY' || i >= 40) throw err
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}
