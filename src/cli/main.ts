#!/usr/bin/env node
import { Command } from 'commander'
import { serve } from '../server/serve.ts'

const program = new Command('rig').description('Rigbox: workspaces in isolated micro-VMs')
program
  .command('serve')
  .description('run the whole platform on this host (API, node, router) on embedded defaults')
  .action(async () => {
    await serve()
  })
await program.parseAsync()
