import { execFileSync } from 'node:child_process'

// Integration tests run the real agent bundle, exactly as it is deployed to hosts.
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/build-node.mjs', '--quiet'], { stdio: 'inherit' })
}
