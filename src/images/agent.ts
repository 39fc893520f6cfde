import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { sha256, type HashedFile } from './recipe.ts'

/** The repository's agent/ folder (the guest agent is written there). */
export const DEFAULT_AGENT_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'agent',
)

export const AGENT_BUNDLE_PATH = '/usr/lib/rigbox/rigbox-agent.js'
/** The in-VM `rig` (workspace-scoped, talks to the VM bridge), with a launcher on the PATH. */
export const GUEST_CLI_PATH = '/usr/lib/rigbox/rig.mjs'
export const GUEST_CLI_LAUNCHER = '/usr/local/bin/rig'
const GUEST_CLI_ENTRY = path.resolve(DEFAULT_AGENT_DIR, '..', 'src', 'cli', 'guest', 'main.ts')
export const AGENT_UNIT_NAME = 'rigbox-agent.service'

export interface AgentFile extends HashedFile {
  /** Absolute path on the host. */
  src: string
}

export interface AgentPayload {
  bundle: Buffer
  bundleSha256: string
  /** The in-VM `rig` CLI, one ES module file. */
  cli: Buffer
  unit: string
  /** Targets whose .wants/ the unit is linked into. */
  wantedBy: string[]
  files: AgentFile[]
}

interface FilesJsonEntry {
  src: string
  dest: string
  mode?: string | number
}

function parseMode(mode: string | number | undefined, where: string): number {
  if (mode === undefined) return 0o644
  const value = typeof mode === 'number' ? mode : parseInt(mode, 8)
  if (!Number.isInteger(value) || value < 0 || value > 0o7777) {
    throw new Error(`${where}: bad mode ${JSON.stringify(mode)}`)
  }
  return value
}

async function readFilesJson(agentDir: string): Promise<AgentFile[]> {
  const listPath = path.join(agentDir, 'files.json')
  const text = await readFile(listPath, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null
    throw e
  })
  if (text === null) return []
  const entries = JSON.parse(text) as FilesJsonEntry[]
  if (!Array.isArray(entries))
    throw new Error(`${listPath}: expected an array of {src, dest, mode}`)
  const files: AgentFile[] = []
  for (const [i, e] of entries.entries()) {
    const where = `${listPath}[${i}]`
    if (typeof e?.src !== 'string' || typeof e?.dest !== 'string' || !e.dest.startsWith('/')) {
      throw new Error(`${where}: needs "src" (relative to agent/) and an absolute "dest"`)
    }
    // dest is joined onto the staging tree on the host: it must not climb out of it.
    if (e.dest.split('/').includes('..')) throw new Error(`${where}: "dest" must not contain ..`)
    const src = path.resolve(agentDir, e.src)
    const content = await readFile(src).catch(() => {
      throw new Error(`${where}: cannot read ${src}`)
    })
    files.push({ src, path: e.dest, mode: parseMode(e.mode, where), sha256: sha256(content) })
  }
  return files
}

/** WantedBy= targets of a unit's [Install] section; multi-user.target when it has none. */
export function unitWantedBy(unit: string): string[] {
  const targets: string[] = []
  let inInstall = false
  for (const raw of unit.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('[')) inInstall = line === '[Install]'
    else if (inInstall && line.startsWith('WantedBy=')) {
      targets.push(...line.slice('WantedBy='.length).split(/\s+/).filter(Boolean))
    }
  }
  return targets.length > 0 ? targets : ['multi-user.target']
}

/**
 * Bundle the guest agent into one CommonJS file for the guest's Node 22, in memory, so its hash
 * can name the image before anything is built.
 */
export async function loadAgent(agentDir: string = DEFAULT_AGENT_DIR): Promise<AgentPayload> {
  const entry = path.join(agentDir, 'main.ts')
  const unitPath = path.join(agentDir, AGENT_UNIT_NAME)
  if (!(await stat(entry).catch(() => null))) {
    throw new Error(
      `guest agent missing: ${entry} does not exist (the image bundles agent/main.ts into ${AGENT_BUNDLE_PATH})`,
    )
  }
  const unit = await readFile(unitPath, 'utf8').catch(() => {
    throw new Error(`guest agent unit missing: ${unitPath} does not exist`)
  })
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    write: false,
    logLevel: 'silent',
    // Paths in the bundle's comments are relative to this dir: keep them independent of the cwd.
    absWorkingDir: path.dirname(agentDir),
  }).catch((e: Error) => {
    throw new Error(`bundling the guest agent (${entry}) failed: ${e.message}`)
  })
  const cliResult = await build({
    entryPoints: [GUEST_CLI_ENTRY],
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    // commander is CommonJS: its require() calls need a real require inside an ES module.
    banner: {
      js: "import { createRequire as __rigRequire } from 'node:module'; const require = __rigRequire(import.meta.url);",
    },
    write: false,
    logLevel: 'silent',
    absWorkingDir: path.dirname(agentDir),
  }).catch((e: Error) => {
    throw new Error(`bundling the in-VM rig CLI (${GUEST_CLI_ENTRY}) failed: ${e.message}`)
  })
  const bundle = Buffer.from(result.outputFiles[0].contents)
  const cli = Buffer.from(cliResult.outputFiles[0].contents)
  return {
    bundle,
    // One hash for everything bundled: a change to the agent or the in-VM CLI is a new image.
    bundleSha256: sha256(Buffer.concat([bundle, cli])),
    cli,
    unit,
    wantedBy: unitWantedBy(unit),
    files: await readFilesJson(agentDir),
  }
}
