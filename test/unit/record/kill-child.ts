// Run by kill.test.ts as a child process: records a busy synthetic session in real time and
// says how many records are in the file after each write, until its parent SIGKILLs it.
import { RecordingWriter } from '../../../main/record/writer.js'
import { syntheticSession } from '../../../main/record/synthetic.js'

const path = process.argv[2]
const w = RecordingWriter.create(
  path,
  {
    ftlabVersion: 'kill-test',
    startedAt: Date.now(),
    lab: { kind: 'simulated', name: 'simulated', guest: 'kv', mode: 'rsm', timing: null, sim: null, hosts: [] },
    console: { host: 'test', pid: process.pid }
  },
  { keyframeMs: 1000 }
)
const source = syntheticSession(Date.now(), 3600, 2000)
let written = 0
setInterval(() => {
  for (let i = 0; i < 10; i++) {
    const r = source.next().value
    if (r) w.append({ ...r, t: Date.now() })
  }
  if (w.written !== written) {
    written = w.written
    process.stdout.write(`written ${written}\n`)
  }
}, 5)
