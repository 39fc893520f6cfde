import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const LOCK = path.join(os.tmpdir(), 'rigbox-test-vms.lock')

function holderAlive(): boolean {
  try {
    const pid = Number(fs.readFileSync(path.join(LOCK, 'pid'), 'utf8'))
    process.kill(pid, 0)
    return true
  } catch (err) {
    // No pid file yet (the holder is between mkdir and write) counts as alive; a dead pid does not.
    return (
      (err as NodeJS.ErrnoException).code === 'ENOENT' ||
      (err as NodeJS.ErrnoException).code === 'EPERM'
    )
  }
}

/**
 * One VM-booting test file at a time, across the test runner's processes: the suite runs its files
 * two at a time so the many CPU-light ones go on beside a VM suite, but two TCG boots at once on
 * two cores would only slow each other into timeouts. Resolves with the release; a holder that
 * died (crashed test process) loses the lock.
 */
export async function holdVmLock(): Promise<() => void> {
  for (let staleChecks = 0; ;) {
    try {
      fs.mkdirSync(LOCK)
      fs.writeFileSync(path.join(LOCK, 'pid'), String(process.pid))
      let released = false
      const release = () => {
        if (released) return
        released = true
        fs.rmSync(LOCK, { recursive: true, force: true })
        process.off('exit', release)
      }
      process.on('exit', release)
      return release
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    // Give a fresh holder a moment to write its pid before judging it.
    if (holderAlive()) staleChecks = 0
    else if (++staleChecks > 2) {
      fs.rmSync(LOCK, { recursive: true, force: true })
      staleChecks = 0
      continue
    }
    await new Promise((r) => setTimeout(r, 500))
  }
}
