/**
 * qcow2's runtime options (qcow2_runtime_opts) and their checks in qcow2_update_options_prepare
 * order: cache sizes (read_cache_sizes), cache-clean-interval, lazy-refcounts against the
 * image version, and the overlap-check template with its per-structure switches. The engine
 * keeps its own cache sizes, so those values only need to be valid; the overlap checks are
 * handed to it (overlapCheckMask). The messages are QEMU's.
 */
import { OptionsError, BlockOpenError } from '../errors.ts';
import type { OptionBag } from '../options.ts';
import { optionText, parseBoolOption, parseSizeOption } from '../options.ts';
import { qemuStrtou64 } from '../../tools/common/numbers.ts';
import { OVERLAP_CHECK_NAMES, OVERLAP_CHECK_TEMPLATES } from '../../qcow2/index.ts';

const OVERLAP_BOOLS = OVERLAP_CHECK_NAMES.map((n) => `overlap-check.${n}`);

const SIZE_OPTIONS = ['cache-size', 'l2-cache-size', 'l2-cache-entry-size', 'refcount-cache-size'];
const PASSTHROUGH = ['lazy-refcounts', 'pass-discard-request', 'pass-discard-snapshot', 'pass-discard-other'];

const MIN_CLUSTER_BITS = 9;
const MIN_REFCOUNT_CACHE_SIZE = 4;
const DEFAULT_L2_CACHE_MAX_SIZE = 32 * 1024 * 1024;
const INT_MAX = 2 ** 31 - 1;
const UINT_MAX = 2n ** 32n - 1n;

/** The qcow2 runtime options taken from a node's options, typed as QemuOpts reads them. */
export interface Qcow2RuntimeOptions {
  bools: Map<string, boolean>;
  sizes: Map<string, number>;
  cacheCleanInterval?: bigint;
  overlapCheck?: string;
  overlapTemplate?: string;
}

/** qemu_opts_absorb_qdict for qcow2_runtime_opts: type errors are reported here. */
export function takeQcow2RuntimeOptions(opts: OptionBag): Qcow2RuntimeOptions {
  const r: Qcow2RuntimeOptions = { bools: new Map(), sizes: new Map() };
  for (const key of [...PASSTHROUGH, ...OVERLAP_BOOLS]) {
    const v = opts.take(key);
    if (v !== undefined) r.bools.set(key, parseBoolOption(key, v));
  }
  for (const key of SIZE_OPTIONS) {
    const v = opts.take(key);
    if (v !== undefined) r.sizes.set(key, parseSizeOption(key, v));
  }
  const interval = opts.take('cache-clean-interval');
  if (interval !== undefined) {
    const t = typeof interval === 'number' ? String(interval) : optionText(interval);
    const n = t === null ? null : qemuStrtou64(t, 0);
    if (!n || !n.ok) throw new OptionsError("Parameter 'cache-clean-interval' expects a number");
    r.cacheCleanInterval = n.value;
  }
  const overlap = opts.takeString('overlap-check');
  if (overlap !== undefined) r.overlapCheck = overlap;
  const template = opts.takeString('overlap-check.template');
  if (template !== undefined) r.overlapTemplate = template;
  return r;
}

/** What the checks need to know about the opened image. */
export interface Qcow2Geometry {
  clusterSize: number;
  virtualSize: number;
  /** Bytes per L2 entry (8, or 16 with extended L2 entries). */
  l2EntrySize: number;
  version: number;
}

/** The checks of qcow2_update_options_prepare, in its order; throws BlockOpenError. */
export function checkQcow2RuntimeOptions(r: Qcow2RuntimeOptions, g: Qcow2Geometry): void {
  const { l2CacheSize, l2EntrySizeCache, refcountCacheSize } = readCacheSizes(r, g);
  if (Math.max(Math.floor(l2CacheSize / l2EntrySizeCache), 0) > INT_MAX) throw new BlockOpenError('L2 cache size too big');
  if (Math.floor(refcountCacheSize / g.clusterSize) > INT_MAX) throw new BlockOpenError('Refcount cache size too big');
  if (r.cacheCleanInterval !== undefined && r.cacheCleanInterval > UINT_MAX) throw new BlockOpenError('Cache clean interval too big');
  if (r.bools.get('lazy-refcounts') === true && g.version < 3) {
    throw new BlockOpenError('Lazy refcounts require a qcow2 image with at least qemu 1.1 compatibility level');
  }
  if (r.overlapTemplate !== undefined && r.overlapCheck !== undefined && r.overlapTemplate !== r.overlapCheck) {
    throw new BlockOpenError(
      `Conflicting values for qcow2 options 'overlap-check' ('${r.overlapCheck}') and 'overlap-check.template' ('${r.overlapTemplate}')`,
    );
  }
  const mode = r.overlapCheck ?? r.overlapTemplate ?? 'cached';
  if (!['none', 'constant', 'cached', 'all'].includes(mode)) {
    throw new BlockOpenError(`Unsupported value '${mode}' for qcow2 option 'overlap-check'. Allowed are any of the following: none, constant, cached, all`);
  }
}

/**
 * The metadata kinds to protect, for openQcow2's overlapCheck: the template's, then every
 * switch that was given turns its kind on or off. An unknown template (refused by
 * checkQcow2RuntimeOptions) counts as the default.
 */
export function overlapCheckMask(r: Qcow2RuntimeOptions): number {
  const mode = r.overlapCheck ?? r.overlapTemplate ?? 'cached';
  const templates: Readonly<Record<string, number>> = OVERLAP_CHECK_TEMPLATES;
  let mask = templates[mode] ?? OVERLAP_CHECK_TEMPLATES.cached;
  OVERLAP_CHECK_NAMES.forEach((name, bitnr) => {
    const on = r.bools.get(`overlap-check.${name}`);
    if (on === true) mask |= 1 << bitnr;
    else if (on === false) mask &= ~(1 << bitnr);
  });
  return mask;
}

/** read_cache_sizes(): the three cache sizes in bytes, or its errors. */
function readCacheSizes(r: Qcow2RuntimeOptions, g: Qcow2Geometry): { l2CacheSize: number; l2EntrySizeCache: number; refcountCacheSize: number } {
  const minRefcountCache = MIN_REFCOUNT_CACHE_SIZE * g.clusterSize;
  const maxL2Entries = Math.ceil(g.virtualSize / g.clusterSize);
  const maxL2Cache = Math.ceil((maxL2Entries * g.l2EntrySize) / g.clusterSize) * g.clusterSize;
  const combinedSet = r.sizes.has('cache-size');
  const l2Set = r.sizes.has('l2-cache-size');
  const refcountSet = r.sizes.has('refcount-cache-size');
  const combined = r.sizes.get('cache-size') ?? 0;
  const l2Max = r.sizes.get('l2-cache-size') ?? DEFAULT_L2_CACHE_MAX_SIZE;
  let refcountCacheSize = r.sizes.get('refcount-cache-size') ?? 0;
  let l2EntrySizeCache = r.sizes.get('l2-cache-entry-size') ?? g.clusterSize;
  let l2CacheSize = Math.min(maxL2Cache, l2Max);
  if (combinedSet) {
    if (l2Set && refcountSet) {
      throw new BlockOpenError('cache-size, l2-cache-size and refcount-cache-size may not be set at the same time');
    } else if (l2Set && l2Max > combined) {
      throw new BlockOpenError('l2-cache-size may not exceed cache-size');
    } else if (refcountCacheSize > combined) {
      throw new BlockOpenError('refcount-cache-size may not exceed cache-size');
    }
    if (l2Set) {
      refcountCacheSize = combined - l2CacheSize;
    } else if (refcountSet) {
      l2CacheSize = combined - refcountCacheSize;
    } else if (combined >= maxL2Cache + minRefcountCache) {
      l2CacheSize = maxL2Cache;
      refcountCacheSize = combined - l2CacheSize;
    } else {
      refcountCacheSize = Math.min(combined, minRefcountCache);
      l2CacheSize = combined - refcountCacheSize;
    }
  }
  if (l2CacheSize < maxL2Cache && !r.sizes.has('l2-cache-entry-size')) l2EntrySizeCache = Math.min(g.clusterSize, 4096);
  const e = l2EntrySizeCache;
  if (e < 1 << MIN_CLUSTER_BITS || e > g.clusterSize || (e & (e - 1)) !== 0) {
    throw new BlockOpenError(`L2 cache entry size must be a power of two between ${1 << MIN_CLUSTER_BITS} and the cluster size (${g.clusterSize})`);
  }
  return { l2CacheSize, l2EntrySizeCache, refcountCacheSize };
}
