// One of several processes racing for a lab's lock (lab-store.test.ts): waits until the agreed
// instant, takes the lock, holds it a while, and prints when it held it (epoch ms, sub-ms).
import { LabStore } from '../../../main/lab/lab-state.js'

const [home, startAt, holdMs] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])]
const now = (): number => performance.timeOrigin + performance.now()
while (now() < startAt) {
  // spin to the agreed instant, so that the racers meet the dead holder's lock together
}
const release = await new LabStore(home).lock('local', 'racing', 20_000)
const from = now()
const until = from + holdMs
while (now() < until) {
  // hold it without sleeping (a sleep would let a wrongly taken lock's holder overlap less)
}
const to = now()
release()
process.stdout.write(`${from} ${to}\n`)
