import type { Command } from 'commander'
import { reportError } from './context.ts'

/** Wraps a command's action: any error becomes a clear message and a non-zero exit code. */
export function action<A extends unknown[]>(fn: (cmd: Command, ...args: A) => Promise<void>) {
  return async (...args: unknown[]) => {
    const cmd = args.at(-1) as Command
    try {
      await fn(cmd, ...(args.slice(0, -1) as A))
    } catch (err) {
      process.exitCode = reportError(err)
    }
  }
}
