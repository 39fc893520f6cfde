import os from 'node:os'
import type { GuestChannel } from '../guest/index.ts'
import { guestError } from './guest-errors.ts'
import { GuestLinks } from './guest-links.ts'
import type { ExecResult, ExecSpec, GuestLogLine } from './types.ts'

/**
 * The node's calls into a running VM's agent that need nothing but its channel: exec, files,
 * logs, listening ports. Agent errors become API errors (guest-errors.ts).
 */
export abstract class GuestCalls {
  protected readonly links = new GuestLinks()

  protected guest(id: string): GuestChannel {
    return this.links.get(id)
  }

  async exec(id: string, spec: ExecSpec, maxOutputBytes: number): Promise<ExecResult> {
    const res = await this.guest(id)
      .exec(
        { command: spec.command, user: spec.user, env: spec.env, timeout_ms: spec.timeoutMs },
        { stdin: spec.stdin, maxOutputBytes },
      )
      .catch(guestError)
    const signalled = res.signal
      ? 128 + (os.constants.signals[res.signal as NodeJS.Signals] ?? 0)
      : -1
    return {
      exit_code: res.exit_code ?? signalled,
      stdout: res.stdout ?? '',
      stderr: res.stderr ?? '',
      timed_out: res.timed_out,
      truncated: Boolean(res.truncated),
    }
  }

  readFile(id: string, file: string, maxBytes: number): Promise<Buffer> {
    return this.guest(id).readFile(file, { maxBytes }).catch(guestError)
  }

  async writeFile(id: string, file: string, data: Buffer): Promise<void> {
    await this.guest(id).writeFile(file, data, { mkdirs: true }).catch(guestError)
  }

  async logs(
    id: string,
    opts: { lines: number; cursor?: string; unit?: string },
  ): Promise<GuestLogLine[]> {
    const page = await this.guest(id).logs(opts).catch(guestError)
    return page.lines
  }

  followLogs(
    id: string,
    opts: { cursor?: string; unit?: string },
    onLine: (line: GuestLogLine) => void,
    signal: AbortSignal,
  ): Promise<void> {
    return this.guest(id).followLogs(opts, onLine, signal)
  }

  async listeningPorts(id: string) {
    const ports = await this.guest(id).listeningPorts().catch(guestError)
    return ports.map((p) => ({
      port: p.port,
      address: p.address,
      process: p.process ?? null,
      pid: p.pid ?? null,
    }))
  }
}
