// The gateway end to end: the real OpenSSH client → startSshGateway → a real sshd as the guest.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { echoServer, run, startGatewayEnv, type GatewayEnv } from './gateway-env.ts'
import { freePort, GUEST_USER, hasSshd, isRoot } from './sshd-fixture.ts'

const skip = !hasSshd ? 'needs openssh-server and openssh-client' : !isRoot ? 'needs root' : false

describe('SSH gateway: sessions, files, PTY, forwarding', { skip }, () => {
  let env: GatewayEnv
  let echo: Awaited<ReturnType<typeof echoServer>>
  before(async () => {
    env = await startGatewayEnv()
    echo = await echoServer()
  })
  after(async () => {
    await echo?.close()
    await env?.stop()
  })

  test('exec: stdout, stderr kept apart, exit status', async () => {
    const r = await env.ssh(['echo out; echo err >&2; exit 7'])
    assert.deepEqual(r, { code: 7, stdout: 'out\n', stderr: 'err\n' })
  })

  test('exec: the exit status of instant commands is never lost', async () => {
    // Four at a time: below the per-IP limit (10) and the guest sshd's MaxStartups (10).
    for (const batch of [
      [1, 2, 3, 4],
      [5, 6, 7, 8],
      [9, 10, 11, 12],
    ]) {
      const runs = await Promise.all(batch.map((c) => env.ssh([`exit ${c}`])))
      assert.deepEqual(
        runs.map((r) => r.code),
        batch,
        runs.map((r) => r.stderr).join(''),
      )
    }
  })

  test('exec: stdin reaches the command and its EOF too', async () => {
    const r = await env.ssh(['cat; echo done'], { input: 'hello\n' })
    assert.equal(r.stdout, 'hello\ndone\n')
  })

  test('exec: 8 MiB in and 20 MB out intact (flow control)', async () => {
    const data = crypto.randomBytes(8 << 20)
    const up = await env.ssh(['sha256sum'], { input: data })
    assert.equal(up.stdout.split(' ')[0], crypto.createHash('sha256').update(data).digest('hex'))
    const down = await env.ssh(['head -c 20000000 /dev/zero | tr "\\0" a'])
    assert.equal(down.stdout.length, 20_000_000)
    assert.match(down.stdout, /^a+$/)
  })

  test('exec: a signal exit is reported as the guest reports it', async () => {
    const viaGateway = await env.ssh(['kill -TERM $$'])
    const keyFile = path.join(env.dir, 'gateway_key')
    const direct = await run('ssh', [
      ...env.clientOpts(keyFile),
      '-p',
      String(env.sshd.port),
      `${GUEST_USER}@127.0.0.1`,
      'kill -TERM $$',
    ])
    assert.equal(viaGateway.code, direct.code)
    assert.equal(viaGateway.stderr, direct.stderr)
  })

  test('shell: interactive with a PTY (-tt) and plain without one (-T)', async () => {
    const tty = await env.ssh(['-tt'], { input: 'echo "shell-$((20+22))"; tty; exit 3\n' })
    assert.match(tty.stdout, /^shell-42\r?$/m)
    assert.match(tty.stdout, /^\/dev\/pts\/\d+\r?$/m)
    assert.equal(tty.code, 3)
    const plain = await env.ssh(['-T'], { input: 'echo "plain-$((1+1))"; tty\n' })
    assert.equal(plain.stdout, 'plain-2\nnot a tty\n')
    assert.equal(plain.code, 1) // the exit status of the last command, `tty`
  })

  test('env: variables the guest accepts are passed', async () => {
    const r = await env.ssh(['-o', 'SetEnv=RIGTEST_COLOR=teal', 'echo "$RIGTEST_COLOR"'])
    assert.equal(r.stdout, 'teal\n')
  })

  test('scp (sftp protocol and legacy -O) copies in and out', async () => {
    const remoteDir = env.guestDir
    const local = path.join(env.dir, 'payload.bin')
    const content = crypto.randomBytes(300_000)
    fs.writeFileSync(local, content)
    const scp = (...args: string[]) =>
      run('scp', [...env.clientOpts(), '-P', String(env.gw.port), ...args])
    for (const [name, flags] of [
      ['sftp', []],
      ['legacy', ['-O']],
    ] as const) {
      const up = await scp(...flags, local, `alpha-k3j9x2ab@127.0.0.1:${remoteDir}/${name}`)
      assert.equal(up.code, 0, up.stderr)
      const back = await env.ssh([`sha256sum < ${remoteDir}/${name}`])
      assert.equal(
        back.stdout.split(' ')[0],
        crypto.createHash('sha256').update(content).digest('hex'),
      )
      const copy = path.join(env.dir, `back-${name}`)
      const down = await scp(...flags, `alpha-k3j9x2ab@127.0.0.1:${remoteDir}/${name}`, copy)
      assert.equal(down.code, 0, down.stderr)
      assert.deepEqual(fs.readFileSync(copy), content)
    }
  })

  test('sftp: ls, put and get in batch mode', async () => {
    const remoteDir = env.guestDir
    fs.writeFileSync(path.join(remoteDir, 'hello.txt'), 'hi\n', { mode: 0o644 })
    const batch = path.join(env.dir, 'batch')
    fs.writeFileSync(
      batch,
      `ls -1 ${remoteDir}\nput ${batch} ${remoteDir}/batch-copy\nget ${remoteDir}/hello.txt ${env.dir}/got.txt\n`,
    )
    const r = await run('sftp', [
      ...env.clientOpts(),
      '-P',
      String(env.gw.port),
      '-b',
      batch,
      'alpha-k3j9x2ab@127.0.0.1',
    ])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /hello\.txt/)
    assert.equal(fs.readFileSync(path.join(env.dir, 'got.txt'), 'utf8'), 'hi\n')
    assert.ok(fs.existsSync(path.join(remoteDir, 'batch-copy')))
  })

  /**
   * Runs a shell line under `script`, so ssh has a real terminal of the given size. `script` passes
   * on the EOF of its own stdin, which the guest's terminal may echo (`^@`): matches are unanchored.
   */
  const inTerminal = (line: string) => run('script', ['-qec', line, '/dev/null'])
  const sshLine = (remote: string) =>
    ['ssh', ...env.clientOpts(), '-tt', '-p', String(env.gw.port), 'alpha-k3j9x2ab@127.0.0.1']
      .concat(`'${remote}'`)
      .join(' ')

  test('pty: size, TERM and terminal modes reach the guest', async () => {
    const r = await inTerminal(
      `stty rows 33 cols 111 erase ^H; TERM=xterm-256color ${sshLine('stty size; echo $TERM; stty -a; tty')}`,
    )
    assert.match(r.stdout, /33 111\r?$/m)
    assert.match(r.stdout, /xterm-256color\r?$/m)
    assert.match(r.stdout, /erase = \^H;/)
    assert.match(r.stdout, /\/dev\/pts\/\d+\r?$/m)
  })

  test('pty: a resize of the client terminal reaches the guest', async () => {
    const r = await inTerminal(
      `stty rows 30 cols 100; ${sshLine('stty size; sleep 2; stty size')} </dev/tty & sleep 1; stty rows 40 cols 120; kill -WINCH $!; wait`,
    )
    assert.match(r.stdout, /30 100\r?\n[^]*40 120/)
  })

  test('ssh -W (direct-tcpip) relays both ways and carries half-close', async () => {
    const r = await env.ssh(['-W', `127.0.0.1:${echo.port}`], { input: 'through the tunnel' })
    assert.equal(r.stdout, 'through the tunnel')
    assert.equal(r.code, 0)
  })

  test('ssh -L forwards a local port to a service reachable from the guest', async () => {
    const local = await freePort()
    const child = spawn(
      'ssh',
      [
        ...env.clientOpts(),
        '-N',
        '-o',
        'ExitOnForwardFailure=yes',
        '-L',
        `127.0.0.1:${local}:127.0.0.1:${echo.port}`,
        '-p',
        String(env.gw.port),
        'alpha-k3j9x2ab@127.0.0.1',
      ],
      { stdio: 'ignore', env: { ...process.env, SSH_AUTH_SOCK: '' } },
    )
    const exited = new Promise((r) => child.once('exit', r))
    try {
      const reply = await retry(() => roundTrip(local, 'ping over -L'))
      assert.equal(reply, 'ping over -L')
    } finally {
      child.kill('SIGTERM')
      await exited
    }
  })

  test('ssh -R exposes a client-side service inside the guest', async () => {
    const remotePort = await freePort()
    const probe =
      `for i in 1 2 3 4 5; do exec 3<>/dev/tcp/127.0.0.1/${remotePort} && break; sleep 0.3; done; ` +
      'printf pong >&3; head -c 4 <&3'
    const r = await env.ssh([
      '-o',
      'ExitOnForwardFailure=yes',
      '-R',
      `127.0.0.1:${remotePort}:127.0.0.1:${echo.port}`,
      `bash -c '${probe}'`,
    ])
    assert.equal(r.stdout, 'pong', r.stderr)
  })
})

function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(text))
    let got = ''
    s.on('data', (d) => (got += d.toString()))
    s.once('end', () => resolve(got))
    s.once('error', reject)
  })
}

async function retry<T>(fn: () => Promise<T>, attempts = 50): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn()
    } catch (err) {
      if (i >= attempts) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}
