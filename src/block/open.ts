/**
 * Opening block nodes the way QEMU's bdrv_open does: json: filenames, driver selection by
 * option, protocol prefix or probing, the `file` child of format drivers opened (and probed)
 * first, global node options (node-name, read-only, cache.*, discard, ...), then the driver,
 * then the check for options nobody took. Error texts are QEMU's.
 *
 * openImage() is blk_new_open: the front ends' entry point, returning a BlockBackend.
 */
import { Errno, ErrnoError } from '../errno.ts';
import { BlockBackend } from './backend.ts';
import { BlockOpenError, OptionsError } from './errors.ts';
import { BlockGraph, type OpenEnv } from './env.ts';
import { BaseNode } from './node.ts';
import { OptionBag, isJsonFilename, parseBoolOption, parseJsonFilename, optionText } from './options.ts';
import { QDict, flatten, qdictOrder, type QValue } from './qdict.ts';
import { findDriver, findProtocolByPrefix } from './drivers/registry.ts';
import { PROBE_BUF_SIZE, probeFormat } from './drivers/probe.ts';
import type { BlockDriverDef, ChildOpenRequest } from './drivers/types.ts';
import type { ChildRole } from './types.ts';
import { MemoryNode } from './drivers/memory.ts';
import { Qcow2Node, attachBacking } from './drivers/qcow2.ts';
import { NodeStorage } from './storage-adapter.ts';
import { createQcow2 } from '../qcow2/index.ts';

/** bdrv flags that travel from parent to child. */
export interface OpenFlags {
  readOnly: boolean;
  /** BDRV_O_PROTOCOL: open a protocol driver directly, no format probing. */
  protocol: boolean;
  /** BDRV_O_NO_BACKING */
  noBacking: boolean;
  cacheDirect: boolean;
  noFlush: boolean;
  /** BDRV_O_UNMAP (discard=unmap) */
  unmap: boolean;
  forceShare: boolean;
  /** BDRV_O_NATIVE_AIO and friends: the default aio mode of file nodes. */
  aio?: 'threads' | 'native' | 'io_uring';
  /** BDRV_O_NO_IO: open metadata only (a missing data file is no error). */
  noIo?: boolean;
  /** BDRV_O_CHECK (qemu-img check): formats open damaged images so they can be checked. */
  check?: boolean;
}

export const DEFAULT_FLAGS: OpenFlags = {
  readOnly: false,
  protocol: false,
  noBacking: false,
  cacheDirect: false,
  noFlush: false,
  unmap: false,
  forceShare: false,
};

export type CacheMode = 'none' | 'off' | 'writeback' | 'writethrough' | 'directsync' | 'unsafe';

export interface CacheSettings {
  direct: boolean;
  noFlush: boolean;
  writethrough: boolean;
}

/** bdrv_parse_cache_mode; undefined for an unknown mode ("Invalid cache option: X"). */
export function parseCacheMode(mode: string): CacheSettings | undefined {
  switch (mode) {
    case 'off':
    case 'none':
      return { direct: true, noFlush: false, writethrough: false };
    case 'directsync':
      return { direct: true, noFlush: false, writethrough: true };
    case 'writeback':
      return { direct: false, noFlush: false, writethrough: false };
    case 'unsafe':
      return { direct: false, noFlush: true, writethrough: false };
    case 'writethrough':
      return { direct: false, noFlush: false, writethrough: true };
    default:
      return undefined;
  }
}

/** bdrv_parse_discard_flags: true = unmap, false = ignore, undefined = invalid. */
export function parseDiscardMode(mode: string): boolean | undefined {
  if (mode === 'off' || mode === 'ignore') return false;
  if (mode === 'on' || mode === 'unmap') return true;
  return undefined;
}

/** bdrv_parse_aio: whether the mode is one QEMU 7.2 accepts. */
export function isValidAioMode(mode: string): boolean {
  return mode === 'threads' || mode === 'native' || mode === 'io_uring';
}

function isWellFormedId(id: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_.-]*$/.test(id);
}

function stringOption(options: QDict, key: string): string | undefined {
  const v = options.get(key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new OptionsError(`Invalid parameter type for '${key}', expected: string`);
  return v;
}

/** path_has_protocol: a ':' before any '/'. */
function pathHasProtocol(filename: string): boolean {
  const m = /[:/]/.exec(filename);
  return m !== null && m[0] === ':';
}

function findProtocol(filename: string, allowPrefix: boolean): BlockDriverDef {
  const file = findDriver('file')!;
  if (!pathHasProtocol(filename) || !allowPrefix) return file;
  const prefix = filename.slice(0, filename.indexOf(':'));
  const drv = findProtocolByPrefix(prefix);
  if (!drv) throw new BlockOpenError(`Unknown protocol '${prefix}'`);
  return drv;
}

/**
 * bdrv_open_inherit: one node (and the children it needs) from a filename, a reference to an
 * existing node, and/or flat options. `options` is consumed.
 */
export function openNode(
  filename: string | undefined,
  reference: string | undefined,
  options: QDict,
  flags: OpenFlags,
  env: OpenEnv,
  parseFilename = true,
): BaseNode {
  if (reference !== undefined) {
    if (filename !== undefined || options.size > 0) {
      throw new BlockOpenError('Cannot reference an existing block device with additional options or a new filename');
    }
    const node = env.graph.get(reference);
    if (!node) throw new BlockOpenError(`Cannot find device='${reference}' nor node-name='${reference}'`);
    if (!(node instanceof BaseNode)) throw new BlockOpenError(`Cannot find device='${reference}' nor node-name='${reference}'`);
    return node;
  }

  if (filename !== undefined && parseFilename && isJsonFilename(filename)) {
    const json = parseJsonFilename(filename);
    // Options given directly win over the ones in the json: text.
    for (const [k, v] of json) if (!options.has(k)) options.set(k, v);
    filename = undefined;
  }

  let noBacking = flags.noBacking;
  const backingOpt = options.get('backing');
  if (options.has('backing') && (backingOpt === null || backingOpt === '')) {
    if (backingOpt === '') env.warn?.('Use of "backing": "" is deprecated; use "backing": null instead');
    noBacking = true;
    options.delete('backing');
  }

  // bdrv_fill_options
  let driverName = stringOption(options, 'driver');
  let drv: BlockDriverDef | undefined;
  let protocol = flags.protocol;
  if (driverName !== undefined) {
    drv = findDriver(driverName);
    if (!drv) throw new BlockOpenError(`Unknown driver '${driverName}'`, Errno.ENOENT);
    protocol = drv.protocol;
  }
  let parsingFilename = false;
  if (protocol && filename !== undefined) {
    if (options.has('filename')) throw new BlockOpenError("Can't specify 'file' and 'filename' options at the same time");
    options.set('filename', filename);
    parsingFilename = parseFilename;
  }
  const fname = protocol ? stringOption(options, 'filename') : undefined;
  if (!drv && protocol) {
    if (fname === undefined) throw new BlockOpenError('Must specify either driver or file');
    drv = findProtocol(fname, parsingFilename);
    driverName = drv.name;
    options.set('driver', driverName);
  }
  if (drv && drv.parseFilename && parsingFilename && fname !== undefined) {
    drv.parseFilename(fname, options);
    if (!drv.needsFilename) options.delete('filename');
  }

  // Set the read-only flag as bdrv_open_inherit does: only "on"/true make it read-only.
  const roOpt = options.get('read-only');
  const readOnly = roOpt === undefined ? flags.readOnly : roOpt === 'on' || roOpt === true;

  const childFlags = (role: ChildRole, parentIsFormat: boolean, parentIsProtocol: boolean): OpenFlags => ({
    readOnly: role === 'backing' ? true : readOnly,
    protocol: role === 'backing' ? false : parentIsFormat || parentIsProtocol,
    noBacking: false,
    cacheDirect: flags.cacheDirect,
    noFlush: flags.noFlush,
    unmap: flags.unmap,
    forceShare: flags.forceShare,
    aio: flags.aio,
    noIo: flags.noIo,
  });

  /** Nodes this call opened itself (closed again if the open fails). */
  const opened: BaseNode[] = [];
  const openChildFrom = (
    owner: QDict,
    req: ChildOpenRequest,
    parentIsFormat: boolean,
    parentIsProtocol: boolean,
  ): BaseNode | undefined => {
    const childOptions = new QDict();
    const prefix = `${req.role}.`;
    for (const [k, v] of [...owner]) {
      if (k.startsWith(prefix)) {
        childOptions.set(k.slice(prefix.length), v);
        owner.delete(k);
      }
    }
    const refValue = owner.get(req.role);
    owner.delete(req.role);
    const ref = typeof refValue === 'string' ? refValue : undefined;
    if (req.filename === undefined && ref === undefined && childOptions.size === 0) {
      if (!req.allowNone) throw new BlockOpenError(`A block device must be specified for "${req.role}"`);
      return undefined;
    }
    const cf = childFlags(req.role, parentIsFormat, parentIsProtocol);
    if (req.readOnly) cf.readOnly = true;
    if (req.format !== undefined && !childOptions.has('driver') && ref === undefined) childOptions.set('driver', req.format);
    const child = openNode(req.filename, ref, childOptions, cf, env, req.parseFilename ?? true);
    if (ref === undefined) opened.push(child);
    return child;
  };

  // Open the image file without format layer, then probe.
  let file: BaseNode | undefined;
  try {
    if (!protocol) {
      file = openChildFrom(options, { role: 'file', filename, allowNone: true }, true, false);
    }
    let probed = false;
    if (!drv) {
      if (!file) throw new BlockOpenError('Must specify either driver or file');
      const format = probeImage(file);
      drv = findDriver(format);
      if (!drv) {
        throw new BlockOpenError(`Image format '${format}' is not supported by the qtest built-in engine`, Errno.ENOTSUP);
      }
      driverName = drv.name;
      probed = true;
    }
    options.delete('driver');

    // bdrv_open_common: the options every node takes.
    const bag = new OptionBag(options);
    const nodeNameOpt = bag.takeString('node-name');
    if (nodeNameOpt !== undefined && !isWellFormedId(nodeNameOpt)) {
      throw new BlockOpenError(`Invalid node-name: '${nodeNameOpt}'`);
    }
    if (nodeNameOpt !== undefined && env.graph.has(nodeNameOpt)) {
      throw new BlockOpenError(`Duplicate nodes with node-name='${nodeNameOpt}'`);
    }
    const ro = bag.take('read-only');
    if (ro !== undefined) parseBoolOption('read-only', ro);
    const autoRo = bag.take('auto-read-only');
    if (autoRo !== undefined) parseBoolOption('auto-read-only', autoRo);
    const cacheDirect = bag.takeBool('cache.direct', flags.cacheDirect);
    const noFlush = bag.takeBool('cache.no-flush', flags.noFlush);
    const discardOpt = bag.takeString('discard');
    let unmap = flags.unmap;
    if (discardOpt !== undefined) {
      const d = parseDiscardMode(discardOpt);
      if (d === undefined) throw new BlockOpenError('Invalid discard option');
      unmap = d;
    }
    const detectZeroes = bag.takeString('detect-zeroes');
    if (detectZeroes !== undefined && !['off', 'on', 'unmap'].includes(detectZeroes)) {
      throw new OptionsError(`invalid parameter value: ${detectZeroes}`);
    }
    const forceShare = bag.takeBool('force-share', flags.forceShare);
    if (forceShare && !readOnly) throw new BlockOpenError('force-share=on can only be used with read-only images');

    if (protocol && drv.needsFilename && !bag.has('filename')) {
      throw new BlockOpenError(`The '${drv.name}' block driver requires a file name`);
    }

    const nodeName = nodeNameOpt ?? env.graph.generateName();
    const thisIsFormat = !drv.protocol;
    const node = drv.open({
      nodeName,
      readOnly,
      options: bag,
      file,
      probed,
      noBacking,
      cacheDirect,
      aio: flags.aio,
      noIo: flags.noIo === true,
      check: flags.check === true,
      env,
      openChild: (req) => openChildFrom(options, req, thisIsFormat, drv!.protocol),
    });
    node.unmapAllowed = unmap;
    node.noIo = flags.noIo === true;
    node.noFlush = noFlush;
    node.cacheDirect = cacheDirect;
    for (const c of opened) {
      if ([...node.children.values()].includes(c)) node.ownedChildren.add(c);
    }

    // Options nobody took.
    if (options.size > 0) {
      const first = qdictOrder(options.keys())[0]!;
      node.close();
      if (drv.protocol) throw new BlockOpenError(`Block protocol '${drv.name}' doesn't support the option '${first}'`);
      throw new BlockOpenError(`Block format '${drv.name}' does not support the option '${first}'`);
    }

    // 'driver' leads the node's identifying options.
    const own = QDict.from([['driver', drv.name] as [string, QValue], ...node.ownOptions]);
    node.ownOptions.clear();
    for (const [k, v] of own) node.ownOptions.set(k, v);
    env.graph.add(node);
    node.onClose = () => env.graph.remove(node);
    node.refreshFilename();
    return node;
  } catch (err) {
    for (const c of opened.reverse()) if (!c.isClosed) c.close();
    throw err;
  }
}

/** find_image_format: empty images are raw; otherwise the probe decides. */
function probeImage(file: BaseNode): string {
  const len = file.length();
  if (len === 0) return 'raw';
  const buf = new Uint8Array(Math.min(PROBE_BUF_SIZE, len));
  try {
    file.read(0, buf);
  } catch (err) {
    if (err instanceof ErrnoError) throw new BlockOpenError(`Could not read image for determining its format: ${err.message}`, err.errno);
    throw err;
  }
  return probeFormat(buf);
}

// ---- blk_new_open ----

export interface OpenImageRequest {
  /** The filename as given on the command line (json:, protocol prefixes allowed). */
  filename?: string;
  /** Options tree, nested or flat with dotted keys (e.g. from -o, --image-opts, QMP). */
  options?: QDict;
  /** -f: the format driver. */
  format?: string;
  readOnly?: boolean;
  /** -t: cache mode; default writethrough as qemu-io's. */
  cache?: CacheSettings;
  /** -d: discard=unmap (true) or ignore (false). */
  unmap?: boolean;
  /** -U */
  forceShare?: boolean;
  noBacking?: boolean;
  /** -k / -i: the aio mode file nodes default to. */
  aio?: 'threads' | 'native' | 'io_uring';
  /** -s: writes go to a temporary qcow2 overlay that is dropped at close. */
  snapshot?: boolean;
  /** -C: reads copy unallocated data from the backing chain into the top image. */
  copyOnRead?: boolean;
  /** BDRV_O_NO_IO: header-only open (qemu-img info). */
  noIo?: boolean;
  /** BDRV_O_CHECK: open for qemu-img check. */
  check?: boolean;
}

export interface OpenImageContext {
  cwd: string;
  pathPolicy?: OpenEnv['pathPolicy'];
  /** Node-name registry; a fresh one per tool run when omitted. */
  graph?: BlockGraph;
  /** Where QEMU's stderr text during open goes (probing WARNING). */
  stderr?: (text: string) => void;
  /** Where drivers' stdout text goes (blkdebug breakpoints). */
  stdout?: (text: string) => void;
  /** warn_report() messages (without program prefix). */
  warn?: (message: string) => void;
  /** error_report() messages (without program prefix). */
  report?: (message: string) => void;
}

/**
 * blk_new_open: open a node tree and wrap it in a BlockBackend. Throws BlockOpenError or
 * OptionsError (message = QEMU's Error text).
 */
export function openImage(req: OpenImageRequest, ctx: OpenImageContext): BlockBackend {
  const env: OpenEnv = {
    cwd: ctx.cwd,
    pathPolicy: ctx.pathPolicy,
    graph: ctx.graph ?? new BlockGraph(),
    stderr: ctx.stderr ?? (() => {}),
    stdout: ctx.stdout,
    warn: ctx.warn,
    report: ctx.report,
  };
  const options = req.options ? flatten(req.options) : new QDict();
  if (req.format !== undefined && !options.has('driver')) options.set('driver', req.format);
  const cache = req.cache ?? { direct: false, noFlush: false, writethrough: true };
  if (req.forceShare) {
    const fs = options.get('force-share');
    if (fs !== undefined && optionText(fs) !== 'on') throw new BlockOpenError('-U conflicts with image options');
    options.set('force-share', 'on');
  }
  const flags: OpenFlags = {
    readOnly: req.readOnly ?? false,
    protocol: false,
    noBacking: req.noBacking ?? false,
    cacheDirect: cache.direct,
    noFlush: cache.noFlush,
    unmap: req.unmap ?? true,
    forceShare: false,
    aio: req.aio,
    noIo: req.noIo,
    check: req.check,
  };
  const readOnly = flags.readOnly;
  const node = openNode(req.filename, undefined, options, flags, env);
  if (req.copyOnRead && node.readOnly) {
    node.close();
    throw new BlockOpenError("Can't use copy-on-read on read-only device");
  }
  let root = node;
  if (req.snapshot) {
    try {
      root = appendTempSnapshot(node, env, readOnly, { cacheDirect: cache.direct, noFlush: cache.noFlush, unmap: flags.unmap });
    } catch (err) {
      node.close();
      throw err;
    }
  }
  const blk = new BlockBackend(root, { writeCache: !cache.writethrough, env });
  blk.copyOnRead = req.copyOnRead === true;
  return blk;
}

/**
 * bdrv_append_temp_snapshot: a fresh qcow2 image of the same size (in memory, where QEMU uses
 * a file in /var/tmp) on top of `base`, its backing given at runtime.
 */
function appendTempSnapshot(base: BaseNode, env: OpenEnv, readOnly: boolean, cache: { cacheDirect: boolean; noFlush: boolean; unmap: boolean }): BaseNode {
  const size = Math.ceil(base.length() / 512) * 512;
  const mem = new MemoryNode(env.graph.generateName(), '/var/tmp/vl.qtest');
  createQcow2(new NodeStorage(mem), { size });
  env.graph.add(mem);
  mem.onClose = () => env.graph.remove(mem);
  const options = QDict.from([
    ['driver', 'qcow2'],
    ['file', mem.nodeName],
  ] as Array<[string, QValue]>);
  const overlay = openNode(undefined, undefined, options, {
    ...DEFAULT_FLAGS,
    readOnly,
    noBacking: true,
    cacheDirect: cache.cacheDirect,
    noFlush: cache.noFlush,
    unmap: cache.unmap,
  }, env);
  if (!(overlay instanceof Qcow2Node)) throw new BlockOpenError('temporary snapshot overlay is not qcow2');
  overlay.ownedChildren.add(mem);
  overlay.ownedChildren.add(base);
  attachBacking(overlay, base);
  overlay.backingOverridden = true;
  overlay.refreshFilename();
  return overlay;
}

/** Open a node without a BlockBackend (blockdev-add). */
export function openBlockdev(options: QDict, env: OpenEnv, flags: Partial<OpenFlags> = {}): BaseNode {
  return openNode(undefined, undefined, flatten(options), { ...DEFAULT_FLAGS, unmap: false, ...flags }, env);
}
