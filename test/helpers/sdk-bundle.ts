import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/** `packages` and every package they depend on that is installed here (optional peers skipped). */
function closure(packages: string[]): string[] {
  const seen = new Set<string>()
  const visit = (name: string) => {
    if (seen.has(name)) return
    const manifest = path.join(root, 'node_modules', name, 'package.json')
    if (!fs.existsSync(manifest)) return // an optional peer (openai's AWS and Google adapters)
    seen.add(name)
    const pkg = JSON.parse(fs.readFileSync(manifest, 'utf8')) as {
      dependencies?: Record<string, string>
      peerDependencies?: Record<string, string>
    }
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies })) visit(dep)
  }
  for (const p of packages) visit(p)
  return [...seen].sort()
}

/**
 * The project's own installed copies of npm packages, with their dependencies, as a gzipped tar of
 * `node_modules/…` (type declarations, source maps and TypeScript sources left out): what a test
 * unpacks inside a VM to run the real clients there without reaching a registry.
 */
export function sdkBundle(packages: string[]): Buffer {
  const dirs = closure(packages).map((name) => path.join('node_modules', name))
  return execFileSync(
    'tar',
    [
      '-czf',
      '-',
      '--exclude=*.d.ts',
      '--exclude=*.d.mts',
      '--exclude=*.d.cts',
      '--exclude=*.map',
      '--exclude=node_modules/*/src',
      '--exclude=node_modules/@*/*/src',
      ...dirs,
    ],
    { cwd: root, maxBuffer: 256 * 1024 * 1024 },
  )
}
