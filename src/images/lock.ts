import { open, readFile, rm } from 'node:fs/promises'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Whether a lock or temp file left by `pid` on this host belongs to a process that is gone. */
export function isStale(pid: number, host: string = hostname()): boolean {
  return host === hostname() && !alive(pid)
}

/**
 * Run `fn` holding an exclusive lock file (O_EXCL create). A second caller waits until the first
 * is done; a lock whose owner died (crash, kill -9) is taken over.
 */
export async function withLock<T>(
  lockPath: string,
  onWait: (holder: string) => void,
  fn: () => Promise<T>,
): Promise<T> {
  let waited = false
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx')
      await fh.writeFile(`${process.pid} ${hostname()}\n`)
      await fh.close()
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    const holder = (await readFile(lockPath, 'utf8').catch(() => '')).trim()
    const [pidText, host] = holder.split(' ')
    const pid = Number(pidText)
    if (holder && Number.isInteger(pid) && pid > 0 && isStale(pid, host)) {
      // Re-read right before removing, so a lock another waiter has just taken over stays.
      const now = (await readFile(lockPath, 'utf8').catch(() => '')).trim()
      if (now === holder) await rm(lockPath, { force: true })
      continue
    }
    if (!waited) onWait(holder || 'unknown')
    waited = true
    await sleep(500)
  }
  try {
    return await fn()
  } finally {
    await rm(lockPath, { force: true })
  }
}
