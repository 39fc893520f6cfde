import type { ChildProcess } from 'node:child_process'
import path from 'node:path'
import type { QmpClient } from './qmp.ts'
import * as runs from './qemu-run.ts'
import type { VmExit, VmHandle } from './types.ts'

export interface QemuVmHandle extends VmHandle {
  qmp: QmpClient
}

/**
 * One running QEMU this process holds: its handle, what QMP said about how it ended, and the
 * watch for its end — our child's `exit`, or for an adopted QEMU (not our child, so it cannot be
 * waited for) the QMP socket closing and then the pid going away.
 */
export class LiveVm {
  readonly handle: QemuVmHandle
  /** The host asked for the end (stop, kill, destroy). */
  requested = false
  private guestShutdown = false
  private guestReset = false
  private hostShutdown = false
  private released = false
  private readonly timer: NodeJS.Timeout
  private settle!: (exit: VmExit) => void

  constructor(
    id: string,
    dir: string,
    readonly state: runs.RunState,
    qmp: QmpClient,
    consoleMaxBytes: number,
    private readonly child?: ChildProcess,
  ) {
    const exited = new Promise<VmExit>((resolve) => (this.settle = resolve))
    const sock = (n: string) => path.join(dir, `${n}.sock`)
    this.handle = {
      id,
      dir,
      pid: state.pid,
      uid: state.uid,
      accel: state.accel,
      sockets: {
        agent: sock('agent'),
        bulk: sock('bulk'),
        tunnel: sock('tunnel'),
        control: sock('qmp'),
        inbound: sock('inbound'),
      },
      hostfwds: state.hostfwds,
      exited,
      qmp,
    }
    this.timer = runs.capConsole(dir, consoleMaxBytes)
    qmp.on('SHUTDOWN', (data: { guest?: boolean; reason?: string }) => {
      if (!data.guest) this.hostShutdown = true
      else if (data.reason === 'guest-reset') this.guestReset = true
      else this.guestShutdown = true
    })
  }

  /** Calls `onGone` once with the raw exit status when the QEMU is gone (not after release). */
  watch(onGone: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    const gone = (code: number | null, signal: NodeJS.Signals | null) => {
      if (!this.released) onGone(code, signal)
    }
    const child = this.child
    if (child) {
      if (child.exitCode !== null || child.signalCode !== null) {
        gone(child.exitCode, child.signalCode)
      } else {
        child.once('exit', gone)
      }
      return
    }
    this.handle.qmp.once('close', () => {
      void (async () => {
        await runs.pollGone(this.state.pid, this.state.startTime)
        // The launcher records the status a moment after QEMU is gone.
        gone(await runs.readExitStatus(this.handle.dir), null)
      })()
    })
  }

  /** Stops watching and closes QMP; the QEMU keeps running and `exited` never settles here. */
  release(): void {
    this.released = true
    this.stopWatching()
    this.child?.removeAllListeners('exit')
    this.child?.unref()
  }

  stopWatching(): void {
    clearInterval(this.timer)
    this.handle.qmp.close()
  }

  /** Settles `exited`, classifying the end from the status and what QMP reported. */
  settleExit(rawCode: number | null, rawSignal: NodeJS.Signals | null, oomKilled: boolean): void {
    const { code, signal } = runs.decodeStatus(rawCode, rawSignal)
    const cleanExit =
      code === 0 && !signal && !this.requested && !this.hostShutdown && !this.guestReset
    this.settle({
      code,
      signal,
      oomKilled,
      guestPoweredOff: !oomKilled && (this.guestShutdown || cleanExit),
      guestReset: !oomKilled && this.guestReset,
      requested: this.requested,
    })
  }
}
