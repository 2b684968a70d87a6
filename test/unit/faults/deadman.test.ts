// The dead-man scripts run for real in /bin/sh on this machine: armed, found by their fault id
// (and only by it), cancelled.
import { execFileSync } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { armDeadmanScript, cancelDeadmanScript, deadmanAliveScript } from '../../../main/faults/deadman.js'

const sh = (script: string) => execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8' })
const id = `t${process.pid}`

describe('dead-man scripts', () => {
  afterEach(() => void sh(cancelDeadmanScript(id)))

  it('finds an armed dead-man by its fault id only, and cancels it', async () => {
    sh(armDeadmanScript(id, 60, 'true', 'true'))
    expect(sh(deadmanAliveScript(id))).toBe('armed\n')
    // a longer or shorter id is another fault's
    expect(sh(deadmanAliveScript(`${id}0`))).toBe('')
    expect(sh(deadmanAliveScript(id.slice(0, -1)))).toBe('')
    sh(cancelDeadmanScript(`${id}0`))
    expect(sh(deadmanAliveScript(id))).toBe('armed\n')
    sh(cancelDeadmanScript(id))
    for (let i = 0; i < 50 && sh(deadmanAliveScript(id)) !== ''; i++) await new Promise((r) => setTimeout(r, 20))
    expect(sh(deadmanAliveScript(id))).toBe('')
  })

  it('cancelling a dead-man that is not there succeeds and prints nothing', () => {
    expect(sh(cancelDeadmanScript(id))).toBe('')
    expect(sh(deadmanAliveScript(id))).toBe('')
  })
})
