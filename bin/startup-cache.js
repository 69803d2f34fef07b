// Start-up cache for Node's TypeScript type stripping. Node 22 strips every .ts module on every
// start (a WebAssembly parser: about 250 ms of a 350 ms `qtest qemu-img --version`) and its
// compile cache does not cover that step. This load hook keeps the stripped JavaScript on disk,
// keyed by a hash of the source and the Node version, so an edit to a .ts file simply misses the
// cache; nothing has to be rebuilt and nothing can go stale.
//
// The stripping itself is the same call Node makes (module.stripTypeScriptTypes, mode "strip",
// which only blanks types and keeps every line and column), so stack traces point at the .ts
// source as before. Node's own compile cache (V8 code cache) is turned on next to it.
// QTEST_STARTUP_CACHE=0 turns both off; QTEST_STARTUP_CACHE=DIR moves them.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import module from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

function cacheRoot() {
  const setting = process.env.QTEST_STARTUP_CACHE;
  if (setting === '0') return null;
  if (setting) return path.resolve(setting);
  return path.join(projectRoot, 'node_modules', '.cache', 'qtest');
}

/** stripTypeScriptTypes warns that it is experimental; a drop-in tool must keep stderr clean. */
function stripQuietly(source) {
  const emitWarning = process.emitWarning;
  process.emitWarning = () => {};
  try {
    return module.stripTypeScriptTypes(source, { mode: 'strip' });
  } finally {
    process.emitWarning = emitWarning;
  }
}

function stripCached(dir, source) {
  const key = createHash('sha1').update(process.version).update('\0').update(source).digest('hex');
  const file = path.join(dir, `${key}.js`);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    // Not cached yet.
  }
  const js = stripQuietly(source);
  try {
    fs.mkdirSync(dir, { recursive: true });
    // Write then rename, so a concurrent start never reads half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, js);
    fs.renameSync(tmp, file);
  } catch {
    // A read-only checkout still runs, just without the cache.
  }
  return js;
}

/** Install the caches; a Node without synchronous hooks or the stripping API runs uncached. */
export function installStartupCaches() {
  const root = cacheRoot();
  if (!root) return;
  if (typeof module.enableCompileCache === 'function' && !process.env.NODE_COMPILE_CACHE) {
    module.enableCompileCache(path.join(root, 'v8'));
  }
  if (typeof module.registerHooks !== 'function' || typeof module.stripTypeScriptTypes !== 'function') return;
  const dir = path.join(root, 'strip');
  module.registerHooks({
    load(url, context, nextLoad) {
      if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
      const result = nextLoad(url, context);
      if (result.format !== 'module-typescript' || result.source == null) return result;
      const source = typeof result.source === 'string' ? result.source : Buffer.from(result.source).toString('utf8');
      return { format: 'module', source: stripCached(dir, source), shortCircuit: true };
    },
  });
}
