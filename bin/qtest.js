#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript run through Node's type stripping (Node >= 22.18).
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`qtest: Node ${process.versions.node} is too old; Node >= 22.18 is required (npm install puts one in node_modules/.bin)\n`);
  process.exit(2);
}
const { installStartupCaches } = await import('./startup-cache.js');
installStartupCaches();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
