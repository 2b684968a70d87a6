// Agent entry point (placeholder until the agent runtime lands).
process.stdout.write(JSON.stringify({ ftlabAgent: 1 }) + '\n')
