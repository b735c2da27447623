// setMany / deleteMany: one pipelined batch per server, and partial failures named per key.
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, test } from 'node:test'
import { rawCommand, useMemcached } from '@memkit/testing'
import {
  CHANNELS,
  type CommandEvent,
  createClient,
  InvalidValueError,
  PartialWriteError,
  ServerFailureError,
  ValueTooLargeError,
} from '../src/index.js'

const { servers } = await useMemcached({ count: 3 })

for (const protocol of ['meta', 'classic'] as const) {
  describe(`setMany and deleteMany (${protocol})`, () => {
    test('one batch per server; every value readable with its type and TTL', async () => {
      const client = createClient({ servers: servers.map((s) => s.address), protocol })
      try {
        const entries = new Map<string, unknown>()
        for (let i = 0; i < 300; i++) entries.set(`${protocol}:many:${i}`, i % 3 === 0 ? `text ${i}` : { i })
        entries.set(`${protocol}:many:ü`, Buffer.from([1, 2, 3]))
        const events: CommandEvent[] = []
        const listener = (message: unknown) => events.push(message as CommandEvent)
        subscribe(CHANNELS.command, listener)
        try {
          await client.setMany(entries, { ttl: 120 })
        } finally {
          unsubscribe(CHANNELS.command, listener)
        }
        if (protocol === 'meta') {
          const batches = events.filter((e) => e.command === 'setMany')
          assert.equal(batches.length, 3, 'one quiet batch per server')
        }
        const read = await client.getMany([...entries.keys()])
        assert.deepEqual(read, entries)
        const [first] = entries.keys()
        assert.match(await rawCommand(client.serverFor(first!), `mg ${first} t\r\n`), /^HD t1[12]\d\r\n$/)
        // a plain object and [key, value] pairs work too
        await client.setMany({ [`${protocol}:obj`]: 1 })
        await client.setMany([[`${protocol}:pair`, 2]])
        assert.deepEqual(
          await client.getMany([`${protocol}:obj`, `${protocol}:pair`]),
          new Map([
            [`${protocol}:obj`, 1],
            [`${protocol}:pair`, 2],
          ]),
        )

        const keys = [...entries.keys()]
        assert.equal(await client.deleteMany([...keys.slice(0, 100), `${protocol}:never-set`, keys[0]!]), 100)
        assert.equal((await client.getMany(keys)).size, keys.length - 100)
        assert.equal(await client.deleteMany([]), 0)
      } finally {
        await client.close()
      }
    })
  })
}

describe('setMany and deleteMany: bad input and failures', () => {
  test('a bad value or key anywhere writes nothing', async () => {
    const client = createClient({ servers: servers.map((s) => s.address), maxItemSize: 1024 * 1024 })
    try {
      await assert.rejects(client.setMany({ 'bad:a': 1, 'bad:b': () => 0 }), InvalidValueError)
      await assert.rejects(
        client.setMany({ 'bad:c': 1, 'bad:d': 'x'.repeat(2 * 1024 * 1024) }),
        ValueTooLargeError,
      )
      await assert.rejects(client.setMany({ 'bad:e': 1, 'bad key': 2 }), /whitespace/)
      assert.equal((await client.getMany(['bad:a', 'bad:c', 'bad:e'])).size, 0, 'nothing was written')
    } finally {
      await client.close()
    }
  })

  test('a SERVER_ERROR inside a quiet batch fails that batch, and the connection stays in step', async () => {
    // The client believes items may be 2 MiB; the server (-I 1m) refuses the big one.
    const client = createClient({ servers: servers[0]!.address, maxItemSize: 2 * 1024 * 1024 })
    try {
      const error = await client
        .setMany({ 'se:a': 'small', 'se:big': 'x'.repeat(1536 * 1024), 'se:c': 'small' })
        .then(
          () => assert.fail('setMany should reject'),
          (e: unknown) => e,
        )
      assert.ok(error instanceof PartialWriteError)
      // a quiet batch's error line names no key: every key of the batch is reported unknown
      assert.deepEqual([...error.failed.keys()].sort(), ['se:a', 'se:big', 'se:c'])
      assert.match(error.message, /SERVER_ERROR/)
      assert.equal(await client.get('se:big'), undefined)
      // the next request on the same connection gets its own reply
      await client.set('se:after', 'fine')
      assert.equal(await client.get('se:after'), 'fine')
    } finally {
      await client.close()
    }
  })

  test('a dead server: PartialWriteError names its keys; the others are written', async () => {
    const client = createClient({ servers: servers.map((s) => s.address), timeout: 300, connectTimeout: 300 })
    try {
      const entries = Object.fromEntries(Array.from({ length: 90 }, (_, i) => [`part:${i}`, i]))
      const dead = servers[1]!
      const onDead = Object.keys(entries).filter((key) => client.serverFor(key) === dead.address)
      assert.ok(onDead.length > 10)
      await dead.kill()
      const error = await client.setMany(entries).then(
        () => assert.fail('setMany should reject'),
        (e: unknown) => e,
      )
      assert.ok(error instanceof PartialWriteError && error instanceof ServerFailureError)
      assert.equal(error.code, 'ERR_MEMKIT_PARTIAL_WRITE')
      assert.deepEqual([...error.failed.keys()].sort(), [...onDead].sort())
      assert.equal(error.succeeded.length, 90 - onDead.length)
      const alive = Object.keys(entries).filter((key) => !onDead.includes(key))
      const read = await client.getMany(alive)
      assert.equal(read.size, alive.length, 'every key on a live server was written')

      const deleteError = await client.deleteMany(Object.keys(entries)).then(
        () => assert.fail('deleteMany should reject'),
        (e: unknown) => e,
      )
      assert.ok(deleteError instanceof PartialWriteError)
      assert.deepEqual([...deleteError.failed.keys()].sort(), [...onDead].sort())
      assert.equal((await client.getMany(alive)).size, 0, 'the live servers deleted theirs')
    } finally {
      await client.close()
      await servers[1]!.restart()
    }
  })
})
