#!/usr/bin/env node
import { Command } from 'commander'
import aiConfig from './commands/ai/config.ts'
import aiUsage from './commands/ai/usage.ts'
import credits from './commands/credits.ts'
import exec from './commands/exec.ts'
import imageBuild from './commands/image/build.ts'
import imageGc from './commands/image/gc.ts'
import keyCreate from './commands/key/create.ts'
import keyLs from './commands/key/ls.ts'
import keyRm from './commands/key/rm.ts'
import login from './commands/login.ts'
import serveCommand from './commands/serve.ts'
import snapshotCreate from './commands/snapshot/create.ts'
import snapshotFork from './commands/snapshot/fork.ts'
import snapshotLs from './commands/snapshot/ls.ts'
import snapshotRestore from './commands/snapshot/restore.ts'
import snapshotRm from './commands/snapshot/rm.ts'
import ssh from './commands/ssh.ts'
import sshKeyAdd from './commands/ssh-key/add.ts'
import sshKeyLs from './commands/ssh-key/ls.ts'
import sshKeyRm from './commands/ssh-key/rm.ts'
import templateLs from './commands/template/ls.ts'
import whoami from './commands/whoami.ts'
import wsEnv from './commands/workspace/env.ts'
import wsGet from './commands/workspace/get.ts'
import wsLogs from './commands/workspace/logs.ts'
import wsLs from './commands/workspace/ls.ts'
import wsMetrics from './commands/workspace/metrics.ts'
import wsNew from './commands/workspace/new.ts'
import wsPause from './commands/workspace/pause.ts'
import wsResize from './commands/workspace/resize.ts'
import wsResume from './commands/workspace/resume.ts'
import wsRm from './commands/workspace/rm.ts'
import wsSpawn from './commands/workspace/spawn.ts'
import wsStart from './commands/workspace/start.ts'
import wsStop from './commands/workspace/stop.ts'

const program = new Command('rig')
  .description('Rigbox: workspaces in isolated micro-VMs')
  .option('--json', 'machine-readable JSON output')
  .showHelpAfterError()

serveCommand(program)
login(program)
whoami(program)
exec(program)

const workspace = program.command('workspace').alias('ws').description('manage workspaces')
for (const register of [
  wsLs,
  wsNew,
  wsSpawn,
  wsGet,
  wsStart,
  wsStop,
  wsPause,
  wsResume,
  wsRm,
  wsResize,
  wsEnv,
  wsLogs,
  wsMetrics,
]) {
  register(workspace)
}
const snapshot = program
  .command('snapshot')
  .alias('snap')
  .description('disk snapshots of workspaces: take, restore, fork')
for (const register of [snapshotCreate, snapshotLs, snapshotRestore, snapshotRm, snapshotFork]) {
  register(snapshot)
}
templateLs(program.command('template').description('workspace templates'))
const key = program.command('key').description('API keys')
for (const register of [keyCreate, keyLs, keyRm]) register(key)
const image = program.command('image').description('guest images')
for (const register of [imageBuild, imageGc]) register(image)
const sshKey = program.command('ssh-key').description('SSH keys for the SSH gateway')
for (const register of [sshKeyAdd, sshKeyLs, sshKeyRm]) register(sshKey)
ssh(program)
credits(program)
const ai = program.command('ai').description('AI: usage and per-workspace settings')
for (const register of [aiUsage, aiConfig]) register(ai)

await program.parseAsync()
