// The one seeded generator of FT Lab (mulberry32): every random choice of a simulation run
// comes from one seed, so a failing run replays exactly; load workloads use it so a run can
// be repeated. Imports nothing, so the agent, the simulator (sim/) and the console share it.
export class Prng {
  private s: number

  constructor(seed: number) {
    this.s = seed >>> 0
  }

  /** uniform 32-bit unsigned integer */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0
    let t = this.s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** uniform in [0, 1) */
  float(): number {
    return this.u32() / 4294967296
  }

  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1))
  }

  chance(p: number): boolean {
    return this.float() < p
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.float() * xs.length)]
  }

  /** an independent stream, so adding a draw in one place does not shift every other choice */
  fork(): Prng {
    return new Prng(this.u32())
  }
}
