import { GuestChannel } from '../guest/index.ts'
import { ApiError } from '../http/errors.ts'
import { describeExit, type VmHandle } from '../vm/types.ts'

interface Link {
  guest: GuestChannel
  ready: Promise<GuestChannel>
  connected: boolean
}

/**
 * The node's links to its VMs' agents: one per VM, and one connection attempt at a time — a
 * boot and a post-restart reattach waiting on the same VM share it rather than closing each
 * other's. A link reconnects by itself once up (GuestChannel does).
 */
export class GuestLinks {
  private readonly links = new Map<string, Link>()

  /** The VM's link, connecting it if there is none yet. */
  link(handle: VmHandle, timeoutMs: number): Promise<GuestChannel> {
    const existing = this.links.get(handle.id)
    if (existing) return existing.ready
    const guest = new GuestChannel()
    const entry: Link = { guest, connected: false, ready: Promise.resolve(guest) }
    entry.ready = guest
      .connect({ agentSock: handle.sockets.agent, bulkSock: handle.sockets.bulk, timeoutMs })
      .then(
        () => {
          entry.connected = true
          return guest
        },
        (err: unknown) => {
          if (this.links.get(handle.id) === entry) this.links.delete(handle.id)
          guest.close()
          throw err
        },
      )
    this.links.set(handle.id, entry)
    return entry.ready
  }

  /** Waits for the link, giving up when `signal` aborts or the VM dies first. */
  async await(handle: VmHandle, timeoutMs: number, signal?: AbortSignal): Promise<GuestChannel> {
    const aborted = new Promise<never>((_, reject) => {
      signal?.addEventListener('abort', () => reject(new Error('start cancelled')), { once: true })
    })
    const exited = handle.exited.then((exit) => {
      throw Object.assign(new Error(`the VM exited while booting: ${describeExit(exit).detail}`), {
        code: exit.oomKilled ? 'OOM_KILLED' : 'VM_CRASHED',
      })
    })
    return Promise.race([this.link(handle, timeoutMs), aborted, exited])
  }

  /** The connected link of a running VM, for guest operations. */
  get(id: string): GuestChannel {
    const link = this.links.get(id)
    if (!link?.connected) {
      throw new ApiError('WORKSPACE_UNAVAILABLE', `workspace ${id}: its agent is not connected`)
    }
    return link.guest
  }

  drop(id: string): void {
    this.links.get(id)?.guest.close()
    this.links.delete(id)
  }

  dropAll(): void {
    for (const id of [...this.links.keys()]) this.drop(id)
  }
}
