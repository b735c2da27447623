import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { connect } from 'node:net'
import { after, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import {
  rawCommand,
  startMemcached,
  startMemcachedCluster,
  startScriptedServer,
  startSilentServer,
  stopAll,
} from '../src/index.js'

after(stopAll)

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('memcached processes', () => {
  test('starts a real memcached on a free loopback port', async () => {
    const server = await startMemcached()
    assert.match(server.address, /^127\.0\.0\.1:\d+$/)
    const reply = await rawCommand(server.address, 'version\r\n')
    assert.match(reply, /^VERSION 1\.6\./)
  })

  test('passes extra arguments through (-I item size)', async () => {
    const server = await startMemcached({ itemSize: '2m' })
    const reply = await rawCommand(server.address, 'stats settings\r\n')
    assert.match(reply, /STAT item_size_max 2097152\r\n/)
  })

  test('starts several servers on distinct ports', async () => {
    const servers = await startMemcachedCluster(3)
    assert.equal(new Set(servers.map((s) => s.port)).size, 3)
  })

  test('kill, restart on the same port (empty), freeze and resume', async () => {
    const server = await startMemcached()
    await rawCommand(server.address, 'set k 0 0 1\r\nv\r\n')
    const port = server.port
    await server.kill()
    await assert.rejects(rawCommand(server.address, 'version\r\n'), /ECONNREFUSED/)
    await server.restart()
    assert.equal(server.port, port)
    assert.equal(await rawCommand(server.address, 'get k\r\n'), 'END\r\n')

    await server.freeze()
    await assert.rejects(rawCommand(server.address, 'version\r\n', undefined, 300), /no complete reply/)
    server.resume()
    assert.match(await rawCommand(server.address, 'version\r\n'), /^VERSION/)
  })

  test('a server dies with the test process even if that process is SIGKILLed', async () => {
    // A child node process starts memcached through the harness, prints its pid, then is killed.
    const script = `
      import { startMemcached } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))}
      const server = await startMemcached()
      console.log(server.pid)
      setInterval(() => {}, 1000)
    `
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const pid = await new Promise<number>((resolve) =>
      child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
    )
    assert.ok(alive(pid))
    child.kill('SIGKILL')
    for (let i = 0; i < 100 && alive(pid); i++) await sleep(20)
    // reap check: a zombie would still answer kill(0); ps tells the truth
    const state = execFileSync('sh', ['-c', `ps -o stat= -p ${pid} || true`])
      .toString()
      .trim()
    assert.ok(
      !alive(pid) || state.startsWith('Z'),
      `memcached ${pid} survived its test process (state ${state})`,
    )
  })
})

describe('fake servers', () => {
  test('the silent server accepts and never answers', async () => {
    const silent = await startSilentServer()
    await assert.rejects(rawCommand(silent.address, 'version\r\n', undefined, 200), /no complete reply/)
    assert.equal(silent.connections(), 1)
    assert.equal(silent.received(), 'version\r\n')
  })

  test('the scripted server answers with the bytes the test chooses', async () => {
    const scripted = await startScriptedServer(() => 'VA 2 zzz\r\nhello\r\n')
    const socket = connect({ host: scripted.host, port: scripted.port })
    socket.write('mg k v\r\n')
    const data = await new Promise<string>((resolve) =>
      socket.once('data', (d: Buffer) => resolve(String(d))),
    )
    socket.destroy()
    assert.equal(data, 'VA 2 zzz\r\nhello\r\n')
  })
})
