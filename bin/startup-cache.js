// Start-up cache for Node's TypeScript type stripping. Node 22 strips every .ts module on every
// start (a WebAssembly parser: about 250 ms of a 350 ms `qtest qemu-img --version`) and its
// compile cache does not cover that step. This load hook keeps the stripped JavaScript on disk,
// keyed by the file's identity and change stamps (path, inode, size, mtime and ctime: ctime
// cannot be set back, so any edit misses the cache) and the Node version; nothing has to be
// rebuilt and nothing can go stale. A hit neither reads nor hashes the source.
//
// The stripping itself is the same call Node makes (module.stripTypeScriptTypes, mode "strip",
// which only blanks types and keeps every line and column), so stack traces point at the .ts
// source as before. Node's own compile cache (V8 code cache) is turned on next to it, and
// relative `.ts` imports between the project's modules resolve without Node's package lookups.
// QTEST_STARTUP_CACHE=0 turns all of it off; QTEST_STARTUP_CACHE=DIR moves the caches.
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

/** 64-bit FNV-1a of a string as 16 hex digits (a cache file name, not a security measure). */
function fnv1a64(text) {
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  for (let i = 0; i < text.length; i++) {
    lo = (lo ^ text.charCodeAt(i)) >>> 0;
    // Multiply the 64-bit value by the FNV prime 2^40 + 0x1b3 in 32-bit halves.
    const loMul = lo * 0x1b3;
    const carry = Math.floor(loMul / 0x100000000);
    hi = (hi * 0x1b3 + (lo << 8) + carry) >>> 0;
    lo = loMul >>> 0;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** The cache file for a module as it is on disk now, or null when it cannot be stat'ed. */
function cacheFileFor(dir, url) {
  let file;
  let st;
  try {
    file = fileURLToPath(url);
    st = fs.statSync(file, { bigint: true });
  } catch {
    return null;
  }
  const key = fnv1a64(`${process.version}\0${file}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}`);
  return path.join(dir, `${key}.js`);
}

function store(file, js) {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Write then rename, so a concurrent start never reads half a file.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, js);
    fs.renameSync(tmp, file);
  } catch {
    // A read-only checkout still runs, just without the cache.
  }
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
    resolve(specifier, context, nextResolve) {
      // The project's own imports are relative and name the file: no package lookup needed.
      const parent = context.parentURL;
      if (parent !== undefined && parent.startsWith('file:') && specifier.endsWith('.ts') && (specifier.startsWith('./') || specifier.startsWith('../'))) {
        return { url: new URL(specifier, parent).href, format: 'module-typescript', shortCircuit: true };
      }
      return nextResolve(specifier, context);
    },
    load(url, context, nextLoad) {
      if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
      const cached = cacheFileFor(dir, url);
      if (cached !== null) {
        try {
          return { format: 'module', source: fs.readFileSync(cached, 'utf8'), shortCircuit: true };
        } catch {
          // Not cached yet.
        }
      }
      const result = nextLoad(url, context);
      if (result.format !== 'module-typescript' || result.source == null) return result;
      const source = typeof result.source === 'string' ? result.source : Buffer.from(result.source).toString('utf8');
      const js = stripQuietly(source);
      if (cached !== null) store(cached, js);
      return { format: 'module', source: js, shortCircuit: true };
    },
  });
}
