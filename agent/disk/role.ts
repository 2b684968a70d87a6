// The disk-server role as the agent starts it: a DiskServer over the file store in the
// agent's data directory, reporting into the agent's event ring.
import { join } from 'node:path'
import type { AgentContext, DiskServerSpec, RoleHandle } from '../context.js'
import { FileBlockStore } from './file-store.js'
import { DiskServer } from './server.js'

export const MIN_BLOCK_SIZE = 16
export const MAX_BLOCK_SIZE = 1024 * 1024

export function checkDiskServerSpec(spec: DiskServerSpec): void {
  const l = spec.listen as unknown as { host?: unknown; port?: unknown } | undefined
  if (typeof l !== 'object' || l === null) throw new Error('start.spec.listen must be {host, port}')
  if (typeof l.host !== 'string' || l.host.length === 0) throw new Error('start.spec.listen.host must be an address to listen on, e.g. "0.0.0.0" or "10.0.0.3"')
  if (typeof l.port !== 'number' || !Number.isInteger(l.port) || l.port < 0 || l.port > 65535)
    throw new Error(`start.spec.listen.port must be an integer from 0 to 65535, got ${JSON.stringify(l.port)}`)
  const b = spec.blockSize as unknown
  if (typeof b !== 'number' || !Number.isInteger(b) || b < MIN_BLOCK_SIZE || b > MAX_BLOCK_SIZE)
    throw new Error(`start.spec.blockSize must be an integer from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}, got ${JSON.stringify(b)}`)
}

export async function startDiskServerRole(
  spec: DiskServerSpec,
  ctx: AgentContext
): Promise<RoleHandle & { result: { listen: { host: string; port: number } } }> {
  checkDiskServerSpec(spec)
  const store = new FileBlockStore(join(ctx.dataDir, 'disk'), { blockSize: spec.blockSize })
  let server: DiskServer
  try {
    server = await DiskServer.start({
      selfId: ctx.boot.id,
      key: ctx.labKey,
      host: spec.listen.host,
      port: spec.listen.port,
      store,
      blockSize: spec.blockSize,
      filter: ctx.filter,
      onEvent: (type, data) => ctx.emit(type, data)
    })
  } catch (err) {
    store.close()
    throw new Error(`disk server cannot listen on ${spec.listen.host}:${spec.listen.port}: ${(err as Error).message}`, { cause: err })
  }
  const listen = { host: spec.listen.host, port: server.port }
  ctx.log.info('disk server started', { listen, blockSize: spec.blockSize })
  ctx.emit('role', { role: 'disk-server', listen })
  return {
    result: { listen },
    status() {
      const s = server.status()
      return {
        role: 'disk-server',
        gen: s.gen,
        disk: { gen: s.gen, live: s.live, tasWinner: s.tasWinner, blocks: s.blocks, writes: s.writes, fenced: s.fenced }
      }
    },
    async stop() {
      await server.close()
      store.close()
      ctx.log.info('disk server stopped')
    }
  }
}
