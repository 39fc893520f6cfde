/** What every in-VM `rig` command shares: the VM bridge, output, error handling. */
import type { Command } from 'commander'
import { BRIDGE_URL } from '../../ai/vm-env.ts'

export const BRIDGE = process.env.RIGBOX_BRIDGE_URL ?? BRIDGE_URL

export async function bridge<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response
  try {
    res = await fetch(`${BRIDGE}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch {
    throw new Error(`cannot reach the Rigbox bridge at ${BRIDGE} (is this a Rigbox workspace?)`)
  }
  const json = (await res.json().catch(() => ({}))) as T & { error?: { message: string } }
  if (!res.ok) throw new Error(json.error?.message ?? `the bridge answered HTTP ${res.status}`)
  return json
}

export const out = (cmd: Command, data: unknown, human: () => string) =>
  process.stdout.write(
    cmd.optsWithGlobals().json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`,
  )

export function run<A extends unknown[]>(fn: (cmd: Command, ...args: A) => Promise<void>) {
  return async (...args: unknown[]) => {
    try {
      await fn(args.at(-1) as Command, ...(args.slice(0, -1) as A))
    } catch (err) {
      process.stderr.write(`error: ${(err as Error).message}\n`)
      process.exitCode = 1
    }
  }
}
