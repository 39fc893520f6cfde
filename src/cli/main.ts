#!/usr/bin/env node
import { Command } from 'commander'
import appLogs from './commands/app/logs.ts'
import appLs from './commands/app/ls.ts'
import appNew from './commands/app/new.ts'
import appParam from './commands/app/param.ts'
import appRestart from './commands/app/restart.ts'
import appRm from './commands/app/rm.ts'
import appStart from './commands/app/start.ts'
import appStop from './commands/app/stop.ts'
import catalogInstall from './commands/catalog/install.ts'
import catalogLs from './commands/catalog/ls.ts'
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
import serviceEdit from './commands/service/edit.ts'
import serviceGet from './commands/service/get.ts'
import serviceLogs from './commands/service/logs.ts'
import serviceLs from './commands/service/ls.ts'
import serviceNew from './commands/service/new.ts'
import serviceRm from './commands/service/rm.ts'
import serviceStatus from './commands/service/status.ts'
import setupScriptEdit from './commands/setup-script/edit.ts'
import setupScriptGet from './commands/setup-script/get.ts'
import setupScriptLs from './commands/setup-script/ls.ts'
import setupScriptNew from './commands/setup-script/new.ts'
import setupScriptRm from './commands/setup-script/rm.ts'
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
import toolInstall from './commands/tool/install.ts'
import toolLaunch from './commands/tool/launch.ts'
import toolLs from './commands/tool/ls.ts'
import toolStop from './commands/tool/stop.ts'
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
  // A usage error commander finds (missing argument, unknown option, bad value) exits 2, as the
  // README documents; help itself exits 0. Set before the subcommands, which inherit it.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))

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

const app = program.command('app').description('apps: served ports and the services behind them')
for (const register of [appLs, appNew, appStart, appStop, appRestart, appLogs, appRm, appParam]) {
  register(app)
}
const setupScript = program
  .command('setup-script')
  .description(
    'bash scripts run at first boot or every start of the workspaces they are attached to',
  )
for (const register of [
  setupScriptLs,
  setupScriptNew,
  setupScriptGet,
  setupScriptEdit,
  setupScriptRm,
]) {
  register(setupScript)
}
const service = program
  .command('service')
  .description('service specs (systemd units for workspaces), and what runs in a workspace')
for (const register of [
  serviceLs,
  serviceNew,
  serviceGet,
  serviceEdit,
  serviceRm,
  serviceStatus,
  serviceLogs,
]) {
  register(service)
}
const tool = program.command('tool').description('tools a workspace installs on demand')
for (const register of [toolLs, toolInstall, toolLaunch, toolStop]) register(tool)
const catalog = program.command('catalog').description('apps to install into a workspace')
for (const register of [catalogLs, catalogInstall]) register(catalog)

await program.parseAsync()
