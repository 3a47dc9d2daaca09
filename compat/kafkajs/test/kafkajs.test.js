'use strict'
// kafkajs 2.2.4 (pure JS, never flexible versions) against a real gregor process.
// Codecs: gzip (built in), snappy (kafkajs-snappy), lz4 (lz4js adapter below); no zstd.
//
// Each test starts its own broker (free port, temp log dir) and checks the data that comes
// back: keys, values, headers, timestamps, offsets and order per partition.
//
// kafkajs has no manual-assignment consumer: without consumer groups, data is read back through
// kafkajs's own Fetch request/decoder (Cluster -> Broker.fetch, the path its consumer uses), and
// "consume_assign" is recorded as n/a-by-client.
//
// Run: cd compat/kafkajs && npm test     (or: node --test --test-concurrency=1 test/)
// Broker binary: $GREGOR_TEST_BINARY, else $GREGOR_BIN, else ../../target/debug/gregor.
// Results: compat/results/kafkajs.json (read by scripts/matrix.py).

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const lz4js = require('lz4js')

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
// LZ4: a small adapter over lz4js (pure JS, LZ4 frame format). The kafkajs-lz4 plugin needs the
// native `lz4` addon, whose npm tarball ships macOS binaries unless node-gyp rebuilds it.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress (encoder) { return Buffer.from(lz4js.compress(encoder.buffer)) },
  async decompress (buffer) { return Buffer.from(lz4js.decompress(buffer)) }
})

const STEP_MS = 60_000
const TEST_TIMEOUT_MS = 180_000
const REPO = path.resolve(__dirname, '..', '..', '..')
const RESULTS = path.join(REPO, 'compat', 'results', 'kafkajs.json')
const GROUP_APIS = { 8: 'OffsetCommit', 9: 'OffsetFetch', 10: 'FindCoordinator', 11: 'JoinGroup', 12: 'Heartbeat', 13: 'LeaveGroup', 14: 'SyncGroup' }

// ------------------------------------------------------------------ results

const outcomes = {}
const RANK = { fail: 4, pass: 3, 'needs-groups': 2, 'n/a': 1, skip: 0 }

function note (features, status, testName, why = '') {
  for (const f of features) {
    const prev = outcomes[f]
    if (!prev || RANK[status] > RANK[prev.status]) outcomes[f] = { status, test: testName, note: why }
  }
}

class Skip extends Error {
  constructor (status, why) { super(why); this.status = status }
}

// test(name, features, fn): fn may throw Skip('needs-groups' | 'n/a', why)
function ftest (name, features, fn) {
  test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    try {
      await fn(t)
      note(features, 'pass', name)
    } catch (e) {
      if (e instanceof Skip) {
        note(features, e.status, name, `${e.status}: ${e.message}`)
        t.skip(`${e.status}: ${e.message}`)
        return
      }
      note(features, 'fail', name, String(e && e.message).split('\n')[0].slice(0, 300))
      t.compatFailed = true // read by startBroker's after-hooks (keep the dir, print stderr)
      throw e
    }
  })
}

after(() => {
  const version = require('kafkajs/package.json').version
  fs.mkdirSync(path.dirname(RESULTS), { recursive: true })
  const doc = {
    client: 'kafkajs',
    version,
    generated: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    features: Object.fromEntries(Object.entries(outcomes).sort(([a], [b]) => a.localeCompare(b)))
  }
  fs.writeFileSync(RESULTS + '.tmp', JSON.stringify(doc, null, 2) + '\n')
  fs.renameSync(RESULTS + '.tmp', RESULTS)
})

// ------------------------------------------------------------------ broker process

// brokers still running when this process exits (a crash, a timeout) are SIGKILLed
const LIVE = new Set()
process.on('exit', () => { for (const c of LIVE) { try { c.kill('SIGKILL') } catch {} } })

function brokerBinary () {
  return process.env.GREGOR_TEST_BINARY || process.env.GREGOR_BIN ||
    path.join(REPO, 'target', 'debug', 'gregor')
}

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function canConnect (port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' })
    s.setTimeout(500)
    s.on('connect', () => { s.destroy(); resolve(true) })
    s.on('error', () => resolve(false))
    s.on('timeout', () => { s.destroy(); resolve(false) })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function startBroker (t, extra = []) {
  const bin = brokerBinary()
  assert.ok(fs.existsSync(bin), `gregor binary not found at ${bin}: run cargo build or set GREGOR_TEST_BINARY`)
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gregor-compat-kafkajs-'))
  const logPath = path.join(dir, 'broker.stderr.log')
  const log = fs.openSync(logPath, 'a')
  // the broker reads every GREGOR_* variable as a setting: give it none
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GREGOR_')))
  const child = spawn(bin, ['--listeners', `PLAINTEXT://127.0.0.1:${port}`, '--log-dirs', path.join(dir, 'data'), ...extra],
    { env, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  LIVE.add(child)
  let exited = null
  child.on('exit', (code, sig) => { exited = code ?? sig; LIVE.delete(child) })
  const tail = () => {
    try { return fs.readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n') } catch { return '' }
  }
  const broker = { port, dir, child, bootstrap: `127.0.0.1:${port}`, tail }
  t.after(() => {
    if (exited === null) child.kill('SIGKILL')
    if (!t.compatFailed) fs.rmSync(dir, { recursive: true, force: true })
  })
  const deadline = Date.now() + 20_000
  for (;;) {
    if (exited !== null) throw new Error(`gregor exited (${exited}) before listening\n${tail()}`)
    if (await canConnect(port)) break
    if (Date.now() > deadline) throw new Error(`gregor did not listen within 20s\n${tail()}`)
    await sleep(50)
  }
  // on failure, show the broker's stderr
  t.after(() => { if (t.compatFailed) console.error(`--- gregor stderr tail (${dir}) ---\n${tail()}`) })
  return broker
}

// ApiVersions v0 over a raw socket: Map(apiKey -> [min, max])
function apiVersions (port) {
  return new Promise((resolve, reject) => {
    const clientId = Buffer.from('compat-probe')
    const body = Buffer.alloc(10 + clientId.length)
    body.writeInt16BE(18, 0); body.writeInt16BE(0, 2); body.writeInt32BE(1, 4)
    body.writeInt16BE(clientId.length, 8); clientId.copy(body, 10)
    const size = Buffer.alloc(4); size.writeInt32BE(body.length)
    const s = net.connect({ port, host: '127.0.0.1' })
    s.setTimeout(10_000)
    let buf = Buffer.alloc(0)
    s.on('connect', () => s.write(Buffer.concat([size, body])))
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        s.destroy()
        const err = buf.readInt16BE(8)
        if (err !== 0) return reject(new Error(`ApiVersions error ${err}`))
        const n = buf.readInt32BE(10)
        const out = new Map()
        for (let i = 0; i < n; i++) {
          const o = 14 + 6 * i
          out.set(buf.readInt16BE(o), [buf.readInt16BE(o + 2), buf.readInt16BE(o + 4)])
        }
        resolve(out)
      }
    })
    s.on('error', reject)
    s.on('timeout', () => { s.destroy(); reject(new Error('ApiVersions timed out')) })
  })
}

async function needGroups (broker) {
  const apis = await apiVersions(broker.port)
  const missing = Object.entries(GROUP_APIS).filter(([k]) => !apis.has(Number(k))).map(([, n]) => n)
  if (missing.length) throw new Skip('needs-groups', `broker does not advertise ${missing.join(', ')}`)
}

async function bounded (what, promise, ms = STEP_MS) {
  let timer
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms: ${what}`)), ms)
  })
  try { return await Promise.race([promise, timeout]) } finally { clearTimeout(timer) }
}

function kafkaFor (broker, extra = {}) {
  return new Kafka({
    clientId: 'gregor-compat-kafkajs',
    brokers: [broker.bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2000 },
    ...extra
  })
}

async function withAdmin (kafka, fn) {
  const admin = kafka.admin()
  await bounded('admin connect', admin.connect())
  try { return await fn(admin) } finally { await admin.disconnect() }
}

async function createTopic (kafka, topic, numPartitions) {
  await withAdmin(kafka, async (admin) => {
    const created = await bounded('createTopics', admin.createTopics({
      topics: [{ topic, numPartitions, replicationFactor: 1 }], waitForLeaders: true, timeout: 30000
    }))
    assert.equal(created, true, `createTopics(${topic}) returned ${created}`)
  })
}

function makeMessages (n, partitions, tag, baseTs) {
  const out = []
  for (let i = 0; i < n; i++) {
    out.push({
      partition: i % partitions,
      key: Buffer.from(`${tag}-key-${i}`),
      value: Buffer.from(`${tag}-value-${i}-` + 'x'.repeat(i % 50)),
      headers: { 'h-index': Buffer.from(String(i)), 'h-tag': Buffer.from(tag), empty: Buffer.alloc(0) },
      timestamp: String(baseTs + i)
    })
  }
  return out
}

async function produce (kafka, topic, messages, { acks = -1, compression = CompressionTypes.None, idempotent = false } = {}) {
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent, maxInFlightRequests: idempotent ? 1 : undefined })
  await bounded('producer connect', producer.connect())
  try {
    // two sends, so each partition gets more than one batch
    const half = Math.floor(messages.length / 2)
    const r1 = await bounded('send', producer.send({ topic, messages: messages.slice(0, half), acks, compression, timeout: 30000 }))
    const r2 = await bounded('send', producer.send({ topic, messages: messages.slice(half), acks, compression, timeout: 30000 }))
    return [...r1, ...r2]
  } finally {
    await producer.disconnect()
  }
}

// Read partitions back through kafkajs's own Fetch (v11 at most) + record-batch decoder.
async function fetchAll (kafka, topic, partitions, expect) {
  const sym = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster')
  const cluster = kafka[sym]({ allowAutoTopicCreation: false })
  await bounded('cluster connect', cluster.connect())
  try {
    await cluster.addTargetTopic(topic)
    await bounded('metadata', cluster.refreshMetadata())
    const meta = cluster.findTopicPartitionMetadata(topic)
    const out = {}
    let total = 0
    for (let p = 0; p < partitions; p++) {
      const leader = meta.find((m) => m.partitionId === p).leader
      const broker = await bounded('findBroker', cluster.findBroker({ nodeId: leader }))
      out[p] = []
      let next = 0n
      const deadline = Date.now() + STEP_MS
      for (;;) {
        const resp = await bounded('fetch', broker.fetch({
          isolationLevel: 1, maxWaitTime: 200, minBytes: 1, maxBytes: 10485760,
          topics: [{ topic, partitions: [{ partition: p, fetchOffset: next.toString(), maxBytes: 1048576 }] }]
        }))
        const part = resp.responses[0].partitions[0]
        assert.equal(part.errorCode, 0, `fetch p${p} error ${part.errorCode}`)
        for (const m of part.messages) {
          if (BigInt(m.offset) >= next) { out[p].push(m); next = BigInt(m.offset) + 1n }
        }
        if (next >= BigInt(part.highWatermark)) break
        if (Date.now() > deadline) throw new Error(`fetch p${p}: stuck at ${next}, hw ${part.highWatermark}`)
      }
      total += out[p].length
    }
    assert.equal(total, expect, `fetched ${total} records, produced ${expect}`)
    return out
  } finally {
    await cluster.disconnect()
  }
}

function checkRoundtrip (messages, fetched) {
  const want = {}
  for (const m of messages) (want[m.partition] ||= []).push(m)
  for (const [p, msgs] of Object.entries(want)) {
    const got = fetched[p]
    assert.equal(got.length, msgs.length, `partition ${p}: count`)
    got.forEach((g, i) => {
      const w = msgs[i]
      assert.equal(g.offset, String(i), `partition ${p}: offset order`)
      assert.deepEqual(g.key, w.key, `p${p}@${i} key`)
      assert.deepEqual(g.value, w.value, `p${p}@${i} value`)
      assert.equal(g.timestamp, w.timestamp, `p${p}@${i} timestamp`)
      assert.deepEqual(Object.keys(g.headers).sort(), Object.keys(w.headers).sort(), `p${p}@${i} header names`)
      for (const [k, v] of Object.entries(w.headers)) assert.deepEqual(g.headers[k], v, `p${p}@${i} header ${k}`)
    })
  }
}

// Consumes `topic` from the beginning as member of `groupId` until `expect` records arrived,
// then `settleMs` more (so extra records would be counted); returns { got: by partition, n }.
async function consumeWithGroup (kafka, groupId, topic, expect, settleMs = 0) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, allowAutoTopicCreation: false })
  await bounded('consumer connect', consumer.connect())
  const got = {}
  let n = 0
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    let done
    const all = new Promise((resolve) => { done = resolve })
    await consumer.run({
      autoCommit: true,
      eachMessage: async ({ partition, message }) => {
        (got[partition] ||= []).push(message)
        if (++n >= expect) done()
      }
    })
    await bounded('consume', all)
    if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs))
  } finally {
    await consumer.disconnect()
  }
  return { got, n }
}

const now = () => Date.now()

// ------------------------------------------------------------------ tests

ftest('admin create/delete topic', ['admin_create_topic', 'admin_delete_topic', 'metadata_all_topics'], async (t) => {
  const b = await startBroker(t)
  const kafka = kafkaFor(b)
  await withAdmin(kafka, async (admin) => {
    assert.equal(await bounded('create', admin.createTopics({ topics: [{ topic: 'js-admin', numPartitions: 4, replicationFactor: 1 }], waitForLeaders: true })), true)
    // already exists: kafkajs reports false (TOPIC_ALREADY_EXISTS swallowed)
    assert.equal(await bounded('create again', admin.createTopics({ topics: [{ topic: 'js-admin', numPartitions: 4, replicationFactor: 1 }] })), false)
    assert.ok((await bounded('list', admin.listTopics())).includes('js-admin'))
    const md = await bounded('metadata', admin.fetchTopicMetadata({ topics: ['js-admin'] }))
    assert.deepEqual(md.topics[0].partitions.map((p) => p.partitionId).sort(), [0, 1, 2, 3])
    await bounded('delete', admin.deleteTopics({ topics: ['js-admin'], timeout: 30000 }))
    const deadline = Date.now() + 20_000
    while ((await bounded('list', admin.listTopics())).includes('js-admin')) {
      assert.ok(Date.now() < deadline, 'js-admin still listed after delete')
      await sleep(200)
    }
    await assert.rejects(bounded('delete unknown', admin.deleteTopics({ topics: ['js-never'], timeout: 5000 })),
      (e) => JSON.stringify(e.errors ?? e.type ?? e.message).includes('UNKNOWN_TOPIC_OR_PARTITION') || /does not host this topic-partition|UNKNOWN_TOPIC/.test(String(e.message)))
  })
})

const CODECS = [
  ['none', CompressionTypes.None, ['produce_none']],
  ['gzip', CompressionTypes.GZIP, ['produce_gzip']],
  ['snappy', CompressionTypes.Snappy, ['produce_snappy']],
  ['lz4', CompressionTypes.LZ4, ['produce_lz4']]
]

for (const [name, codec, features] of CODECS) {
  ftest(`produce/fetch ${name}`, features, async (t) => {
    const b = await startBroker(t)
    const kafka = kafkaFor(b)
    const topic = `js-codec-${name}`
    await createTopic(kafka, topic, 3)
    const msgs = makeMessages(300, 3, name, now() - 60_000)
    const res = await produce(kafka, topic, msgs, { compression: codec })
    assert.ok(res.every((r) => r.errorCode === 0), JSON.stringify(res))
    checkRoundtrip(msgs, await fetchAll(kafka, topic, 3, msgs.length))
  })
}

ftest('produce zstd (n/a: kafkajs ships no zstd codec)', ['produce_zstd'], async () => {
  // kafkajs's built-in ZSTD entry only throws KafkaJSNotImplemented
  assert.throws(() => CompressionCodecs[CompressionTypes.ZSTD](), /not implemented/i)
  throw new Skip('n/a', 'kafkajs has no built-in zstd codec (the @kafkajs/zstd plugin is a native addon)')
})

for (const acks of [0, 1, -1]) {
  const feat = acks === -1 ? 'acks_all' : `acks_${acks}`
  ftest(`acks=${acks}`, [feat], async (t) => {
    const b = await startBroker(t)
    const kafka = kafkaFor(b)
    const topic = `js-acks-${acks === -1 ? 'all' : acks}`
    await createTopic(kafka, topic, 2)
    const msgs = makeMessages(100, 2, `acks${acks}`, now() - 30_000)
    const res = await produce(kafka, topic, msgs, { acks })
    if (acks !== 0) assert.ok(res.every((r) => r.errorCode === 0), JSON.stringify(res))
    // acks=0: nothing is acknowledged; the data must still land (wait for it)
    const deadline = Date.now() + 20_000
    for (;;) {
      const offs = await withAdmin(kafka, (a) => a.fetchTopicOffsets(topic))
      const total = offs.reduce((s, o) => s + Number(o.high), 0)
      if (total >= msgs.length || Date.now() > deadline) break
      await sleep(200)
    }
    checkRoundtrip(msgs, await fetchAll(kafka, topic, 2, msgs.length))
  })
}

ftest('idempotent producer', ['idempotent_produce'], async (t) => {
  const b = await startBroker(t)
  const kafka = kafkaFor(b)
  await createTopic(kafka, 'js-idem', 2)
  const msgs = makeMessages(200, 2, 'idem', now() - 10_000)
  const res = await produce(kafka, 'js-idem', msgs, { idempotent: true })
  assert.ok(res.every((r) => r.errorCode === 0))
  checkRoundtrip(msgs, await fetchAll(kafka, 'js-idem', 2, msgs.length))
})

ftest('list offsets earliest/latest/by time', ['list_offsets_earliest', 'list_offsets_latest', 'list_offsets_by_time'], async (t) => {
  const b = await startBroker(t)
  const kafka = kafkaFor(b)
  const topic = 'js-offsets'
  await createTopic(kafka, topic, 2)
  const base = now() - 100_000
  const msgs = Array.from({ length: 10 }, (_, i) => ({ partition: 0, key: `k${i}`, value: `v${i}`, timestamp: String(base + 1000 * i) }))
  await produce(kafka, topic, msgs)
  await withAdmin(kafka, async (admin) => {
    const offs = (await bounded('fetchTopicOffsets', admin.fetchTopicOffsets(topic))).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offs.map((o) => [o.partition, o.low, o.high]), [[0, '0', '10'], [1, '0', '0']])
    const byTime = (await bounded('byTimestamp', admin.fetchTopicOffsetsByTimestamp(topic, base + 3500))).sort((a, b) => a.partition - b.partition)
    // partition 1 has no record at/after that time: kafkajs substitutes the high watermark
    assert.deepEqual(byTime.map((o) => [o.partition, o.offset]), [[0, '4'], [1, '0']])
    const first = await bounded('byTimestamp', admin.fetchTopicOffsetsByTimestamp(topic, base))
    assert.equal(first.find((o) => o.partition === 0).offset, '0')
    const late = await bounded('byTimestamp', admin.fetchTopicOffsetsByTimestamp(topic, base + 999_999))
    assert.equal(late.find((o) => o.partition === 0).offset, '10')
  })
})

ftest('unknown topic with auto-create off', ['unknown_topic_no_autocreate'], async (t) => {
  const b = await startBroker(t, ['--set', 'auto.create.topics.enable=false'])
  const kafka = kafkaFor(b, { retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 } })
  const producer = kafka.producer({ allowAutoTopicCreation: true })
  await bounded('producer connect', producer.connect())
  try {
    await assert.rejects(bounded('send to unknown', producer.send({ topic: 'js-nope', messages: [{ value: 'v' }] })),
      (e) => /UNKNOWN_TOPIC_OR_PARTITION|does not host this topic-partition|LEADER_NOT_AVAILABLE/.test(String(e.type) + String(e.message) + JSON.stringify(e.cause?.type ?? '')))
  } finally {
    await producer.disconnect()
  }
  await withAdmin(kafka, async (admin) => {
    assert.ok(!(await admin.listTopics()).includes('js-nope'), 'topic was auto-created')
  })
})

ftest('record above message.max.bytes', ['message_too_large'], async (t) => {
  const b = await startBroker(t)
  const kafka = kafkaFor(b)
  await createTopic(kafka, 'js-big', 1)
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await bounded('producer connect', producer.connect())
  try {
    await assert.rejects(
      bounded('big send', producer.send({ topic: 'js-big', messages: [{ key: 'big', value: Buffer.alloc(2 * 1024 * 1024, 120) }] })),
      (e) => e.type === 'MESSAGE_TOO_LARGE' || /MESSAGE_TOO_LARGE|larger than the maximum/i.test(String(e.message) + String(e.originalError?.type)))
    const res = await bounded('small send', producer.send({ topic: 'js-big', messages: [{ key: 'k', value: 'small', timestamp: '1700000000000', headers: { a: 'b' } }] }))
    assert.equal(res[0].baseOffset, '0')
  } finally {
    await producer.disconnect()
  }
  const got = await fetchAll(kafka, 'js-big', 1, 1)
  assert.equal(got[0][0].value.toString(), 'small')
  assert.equal(got[0][0].timestamp, '1700000000000')
  assert.equal(got[0][0].headers.a.toString(), 'b')
})

ftest('consume by assign (n/a: kafkajs consumers always join a group)', ['consume_assign'], async () => {
  throw new Skip('n/a', 'kafkajs has no manual partition assignment; data checks use its Fetch path directly')
})

ftest('consume with a consumer group', ['consume_group'], async (t) => {
  const b = await startBroker(t)
  await needGroups(b)
  const kafka = kafkaFor(b)
  const topic = 'js-group'
  await createTopic(kafka, topic, 3)
  const msgs = makeMessages(90, 3, 'grp', now() - 5000)
  await produce(kafka, topic, msgs)
  const { got } = await consumeWithGroup(kafka, 'js-g1', topic, msgs.length)
  checkRoundtrip(msgs, got)
  await withAdmin(kafka, async (admin) => {
    const offs = await bounded('fetchOffsets', admin.fetchOffsets({ groupId: 'js-g1', topics: [topic] }))
    const parts = offs[0].partitions.sort((a, c) => a.partition - c.partition)
    assert.deepEqual(parts.map((p) => p.offset), ['30', '30', '30'])
  })
})

ftest('commit/fetch offsets', ['commit_fetch_offsets'], async (t) => {
  const b = await startBroker(t)
  await needGroups(b)
  const kafka = kafkaFor(b)
  const topic = 'js-commit'
  await createTopic(kafka, topic, 2)
  await produce(kafka, topic, makeMessages(20, 2, 'cm', now()))
  await withAdmin(kafka, async (admin) => {
    await bounded('setOffsets', admin.setOffsets({ groupId: 'js-manual', topic, partitions: [{ partition: 0, offset: '7' }, { partition: 1, offset: '3' }] }))
    const offs = await bounded('fetchOffsets', admin.fetchOffsets({ groupId: 'js-manual', topics: [topic] }))
    const parts = offs[0].partitions.sort((a, c) => a.partition - c.partition)
    assert.deepEqual(parts.map((p) => [p.partition, p.offset]), [[0, '7'], [1, '3']])
  })
})

ftest('transactions: commit read, abort skipped, offsets with the output', ['transactions', 'transactions_offsets'], async (t) => {
  const b = await startBroker(t)
  const kafka = kafkaFor(b)
  const topic = 'js-txn'
  await createTopic(kafka, topic, 2)
  const committed = makeMessages(20, 2, 'commit', now())
  const producer = kafka.producer({ transactionalId: 'js-tx', idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await bounded('producer connect', producer.connect())
  try {
    let txn = await bounded('begin', producer.transaction())
    await bounded('send', txn.send({ topic, messages: committed.slice(0, 10) }))
    await bounded('send', txn.send({ topic, messages: committed.slice(10) }))
    await bounded('commit', txn.commit())
    txn = await bounded('begin', producer.transaction())
    await bounded('send', txn.send({ topic, messages: makeMessages(10, 2, 'abort', now()) }))
    await bounded('abort', txn.abort())
    // Offsets of a consumer group committed inside a transaction count only once it commits.
    txn = await bounded('begin', producer.transaction())
    await bounded('sendOffsets', txn.sendOffsets({ consumerGroupId: 'js-txn-g', topics: [{ topic, partitions: [{ partition: 0, offset: '5' }] }] }))
    await bounded('abort', txn.abort())
    txn = await bounded('begin', producer.transaction())
    await bounded('sendOffsets', txn.sendOffsets({ consumerGroupId: 'js-txn-g', topics: [{ topic, partitions: [{ partition: 1, offset: '7' }] }] }))
    await bounded('commit', txn.commit())
  } finally {
    await producer.disconnect()
  }
  // A read_committed group consumer (kafkajs's default) sees exactly the committed records.
  const { got, n } = await consumeWithGroup(kafka, 'js-txn-reader', topic, committed.length, 1000)
  assert.equal(n, committed.length, 'only committed records')
  for (const msgs of Object.values(got)) {
    for (const m of msgs) assert.match(m.value.toString(), /^commit-value-/)
  }
  await withAdmin(kafka, async (admin) => {
    const offs = await bounded('fetchOffsets', admin.fetchOffsets({ groupId: 'js-txn-g', topics: [topic] }))
    const parts = offs[0].partitions.sort((a, c) => a.partition - c.partition)
    assert.deepEqual(parts.map((p) => [p.partition, p.offset]), [[0, '-1'], [1, '7']])
  })
})
