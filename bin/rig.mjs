#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `npm link` / `npm install -g` give `rig` and `rigbox`.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const tsx = path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs')
const res = spawnSync(
  process.execPath,
  [tsx, path.join(root, 'src', 'cli', 'main.ts'), ...process.argv.slice(2)],
  {
    stdio: 'inherit',
  },
)
process.exit(res.status ?? 1)
