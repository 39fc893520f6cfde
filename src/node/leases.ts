import fs from 'node:fs/promises'
import path from 'node:path'

const FIRST = 2
const LAST = 254

/**
 * The node's 172.16.0.x addresses (.2–.254, one per running VM), kept in a small JSON file so an
 * adopted VM keeps the address its guest got over DHCP across a control-plane restart.
 */
export class Leases {
  private chain: Promise<unknown> = Promise.resolve()

  private constructor(
    private readonly file: string,
    private readonly byId: Map<string, string>,
  ) {}

  static async open(file: string): Promise<Leases> {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
    let saved: Record<string, string> = {}
    try {
      saved = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, string>
    } catch {
      saved = {}
    }
    return new Leases(file, new Map(Object.entries(saved)))
  }

  /** The address the VM holds, or the one it would get now (nothing is reserved). */
  peek(id: string): string {
    return this.byId.get(id) ?? this.firstFree() ?? `172.16.0.${FIRST}`
  }

  acquire(id: string): Promise<string> {
    return this.serial(async () => {
      const held = this.byId.get(id)
      if (held) return held
      const ip = this.firstFree()
      if (!ip) {
        throw Object.assign(new Error('no free address on this node (253 VMs running)'), {
          code: 'NODE_FULL',
        })
      }
      this.byId.set(id, ip)
      await this.save()
      return ip
    })
  }

  release(id: string): Promise<void> {
    return this.serial(async () => {
      if (this.byId.delete(id)) await this.save()
    })
  }

  /** Drops every lease but those of the given VMs (after a restart: the adopted ones). */
  retain(ids: Set<string>): Promise<void> {
    return this.serial(async () => {
      for (const id of [...this.byId.keys()]) if (!ids.has(id)) this.byId.delete(id)
      await this.save()
    })
  }

  private firstFree(): string | undefined {
    const used = new Set(this.byId.values())
    for (let n = FIRST; n <= LAST; n++) {
      const ip = `172.16.0.${n}`
      if (!used.has(ip)) return ip
    }
    return undefined
  }

  private async save() {
    const tmp = `${this.file}.tmp`
    await fs.writeFile(tmp, JSON.stringify(Object.fromEntries(this.byId)), { mode: 0o600 })
    await fs.rename(tmp, this.file)
  }

  /** One change at a time: acquire and release interleave across async boots. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn)
    this.chain = next.catch(() => undefined)
    return next
  }
}
