// One host's share of a lab network fault (main/lab/lab-faults.ts decides which host does
// what, in lab addresses) turned into the host-side fault network.ts applies: which rules,
// sparing which connection, on which interface. Kept apart from the SSH plumbing so the
// mapping is tested on its own.
import type { ManagementPeer, NetworkFaultSpec } from '../faults/network.js'
import type { KernelFaultShare } from '../lab/lab-host.js'

export interface ShareContext {
  /** the lab network, when the lab file names one: isolate drops all of it */
  network?: string
  /** the console's connection as the host sees it (clients come from that side too) */
  management: ManagementPeer
  /** the interface the host reaches `peer` through (netem works on an interface) */
  devTo: (peer: string) => string
}

export function kernelSpec(share: KernelFaultShare, ctx: ShareContext): NetworkFaultSpec {
  switch (share.kind) {
    case 'isolate':
      // the whole lab network when it is known; otherwise every peer and the clients' side
      return { kind: 'isolate', lab: ctx.network ? [ctx.network] : [...new Set([...share.peers, ctx.management.address])] }
    case 'cut':
      return { kind: 'cut', peer: share.peer, direction: share.direction }
    case 'loss':
      return { kind: 'loss', percent: share.percent, peers: [share.peer], direction: 'both' }
    case 'delay': {
      const s: NetworkFaultSpec = { kind: 'netem', dev: ctx.devTo(share.peer), peers: [share.peer], delayMs: share.ms }
      if (share.jitterMs) s.jitterMs = share.jitterMs
      return s
    }
  }
}

/** `ip route get` prints "<addr> dev <ifname> src ..." */
export function parseRouteDev(out: string): string | null {
  const m = /\bdev\s+(\S+)/.exec(out)
  return m ? m[1]! : null
}

/** How the operator reads a host-side fault: 'nft table inet ftlab_1a2b_3_0'. */
export function describeKernelPart(path: 'nft' | 'iptables' | 'netem', id: string): string {
  switch (path) {
    case 'nft':
      return `nft table inet ftlab_${id}`
    case 'iptables':
      return `iptables chains ftlab_${id}_in/out`
    case 'netem':
      return `tc netem (prio root qdisc) for fault ${id}`
  }
}
