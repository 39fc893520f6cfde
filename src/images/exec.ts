import { spawn } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import path from 'node:path'

export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Called with each output line (stdout and stderr), for progress reporting. */
  onLine?: (line: string) => void
  /** Feed this to stdin. */
  input?: string | Buffer
}

export interface RunResult {
  stdout: string
  stderr: string
}

/** Run a command without a shell; reject with its tail of output when it exits non-zero. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    const lineSplitter = () => {
      let pending = ''
      return (chunk: Buffer) => {
        if (!opts.onLine) return
        pending += chunk.toString('utf8')
        const lines = pending.split('\n')
        pending = lines.pop() ?? ''
        for (const line of lines) if (line.trim()) opts.onLine(line.trimEnd())
      }
    }
    const onOut = lineSplitter()
    const onErr = lineSplitter()
    child.stdout!.on('data', (c: Buffer) => {
      out.push(c)
      onOut(c)
    })
    child.stderr!.on('data', (c: Buffer) => {
      err.push(c)
      onErr(c)
    })
    if (opts.input !== undefined) child.stdin!.end(opts.input)
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)))
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8')
      const stderr = Buffer.concat(err).toString('utf8')
      if (code === 0) return resolve({ stdout, stderr })
      const tail = (stderr || stdout).trim().split('\n').slice(-15).join('\n')
      const how = signal ? `signal ${signal}` : `exit code ${code}`
      reject(new Error(`${cmd} ${args.join(' ')} failed (${how}):\n${tail}`))
    })
  })
}

/** Find an executable on PATH (plus the sbin dirs, which a non-login root shell may lack). */
export async function which(cmd: string): Promise<string | null> {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean)
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (!dirs.includes(extra)) dirs.push(extra)
  }
  for (const dir of dirs) {
    const candidate = path.join(dir, cmd)
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not in this dir
    }
  }
  return null
}
