import { open, rename } from 'node:fs/promises'
import path from 'node:path'

/** The temporary name a file is written under until it is complete. */
export const PARTIAL = '.partial'

/**
 * Makes a complete `<target>.partial` the target: fsync, rename, fsync the directory. A crash at
 * any point leaves the old target or the new one, never half of one.
 */
export async function commitPartial(target: string): Promise<void> {
  await fsyncPath(target + PARTIAL, 'r+')
  await rename(target + PARTIAL, target)
  await fsyncPath(path.dirname(target), 'r')
}

async function fsyncPath(p: string, flags: 'r' | 'r+'): Promise<void> {
  const fh = await open(p, flags)
  await fh.sync().finally(() => fh.close())
}
