/**
 * The block commands of the QMP server: blockdev-add, blockdev-del, blockdev-create (as a
 * job, drivers file and qcow2), query-named-block-nodes. Nodes live in one BlockGraph per
 * server; options are checked against the QAPI schema members QEMU 7.2 has for the drivers
 * the block layer implements, with QEMU's messages.
 */
import { createFile, formatQcow2, validateQcow2, QemuError, type Qcow2CreateOptions } from '../block/create.ts';
import { BlockGraph, type OpenEnv } from '../block/env.ts';
import type { BaseNode } from '../block/node.ts';
import { openBlockdev } from '../block/open.ts';
import { QDict, type QValue } from '../block/qdict.ts';
import type { BlockNode, Prealloc } from '../block/types.ts';
import { Errno, ErrnoError } from '../errno.ts';
import type { Storage } from '../storage/types.ts';
import type { PathPolicy } from '../tools/context.ts';
import type { JsonObject, JsonValue } from './json.ts';
import { QmpError, bool, checkUnexpected, enumOf, isObject, str, uint64, visitStruct, visitValue, type Member, type Schema } from './qapi.ts';
import type { QmpServer } from './server.ts';
import { imageInfoJson } from '../tools/qemu-img/format.ts';
import { queryImageInfo } from '../tools/qemu-img/image-info.ts';

/** BlockdevDriver in QEMU 7.2. */
export const BLOCKDEV_DRIVERS = [
  'blkdebug', 'blklogwrites', 'blkreplay', 'blkverify', 'bochs', 'cloop', 'compress', 'copy-before-write', 'copy-on-read',
  'dmg', 'file', 'snapshot-access', 'ftp', 'ftps', 'gluster', 'host_cdrom', 'host_device', 'http', 'https', 'io_uring',
  'iscsi', 'luks', 'nbd', 'nfs', 'null-aio', 'null-co', 'nvme', 'nvme-io_uring', 'parallels', 'preallocate', 'qcow', 'qcow2',
  'qed', 'quorum', 'raw', 'rbd', 'replication', 'ssh', 'throttle', 'vdi', 'vhdx', 'virtio-blk-vfio-pci',
  'virtio-blk-vhost-user', 'virtio-blk-vhost-vdpa', 'vmdk', 'vpc', 'vvfat',
];

const ref = (name = 'BlockdevRef'): Schema => ({ t: 'ref', name });
const preallocEnum = enumOf('off', 'metadata', 'falloc', 'full');

/** BlockdevOptions base members. */
const baseMembers: Member[] = [
  { name: 'driver', schema: enumOf(...BLOCKDEV_DRIVERS) },
  { name: 'node-name', optional: true, schema: str },
  { name: 'discard', optional: true, schema: enumOf('ignore', 'unmap') },
  { name: 'cache', optional: true, schema: { t: 'struct', members: [{ name: 'direct', optional: true, schema: bool }, { name: 'no-flush', optional: true, schema: bool }] } },
  { name: 'read-only', optional: true, schema: bool },
  { name: 'auto-read-only', optional: true, schema: bool },
  { name: 'force-share', optional: true, schema: bool },
  { name: 'detect-zeroes', optional: true, schema: enumOf('off', 'on', 'unmap') },
];

/** Variant members of BlockdevOptions for the drivers the block layer implements. */
const driverMembers: Record<string, Member[]> = {
  file: [
    { name: 'filename', schema: str },
    { name: 'pr-manager', optional: true, schema: str },
    { name: 'locking', optional: true, schema: enumOf('off', 'on', 'auto') },
    { name: 'aio', optional: true, schema: enumOf('threads', 'native', 'io_uring') },
    { name: 'aio-max-batch', optional: true, schema: { t: 'int' } },
    { name: 'drop-cache', optional: true, schema: bool },
    { name: 'x-check-cache-dropped', optional: true, schema: bool },
  ],
  raw: [
    { name: 'file', schema: ref() },
    { name: 'offset', optional: true, schema: { t: 'int' } },
    { name: 'size', optional: true, schema: { t: 'int' } },
  ],
  qcow2: [
    { name: 'file', schema: ref() },
    { name: 'backing', optional: true, schema: { t: 'ref', name: 'BlockdevRefOrNull' } },
    { name: 'lazy-refcounts', optional: true, schema: bool },
    { name: 'pass-discard-request', optional: true, schema: bool },
    { name: 'pass-discard-snapshot', optional: true, schema: bool },
    { name: 'pass-discard-other', optional: true, schema: bool },
    { name: 'overlap-check', optional: true, schema: { t: 'ref', name: 'Qcow2OverlapChecks' } },
    { name: 'cache-size', optional: true, schema: { t: 'int' } },
    { name: 'l2-cache-size', optional: true, schema: { t: 'int' } },
    { name: 'l2-cache-entry-size', optional: true, schema: { t: 'int' } },
    { name: 'refcount-cache-size', optional: true, schema: { t: 'int' } },
    { name: 'cache-clean-interval', optional: true, schema: { t: 'int' } },
    { name: 'encrypt', optional: true, schema: { t: 'object' } },
    { name: 'data-file', optional: true, schema: ref() },
  ],
  blkdebug: [
    { name: 'image', schema: ref() },
    { name: 'config', optional: true, schema: str },
    { name: 'align', optional: true, schema: { t: 'int' } },
    { name: 'max-transfer', optional: true, schema: { t: 'int' } },
    { name: 'opt-write-zero', optional: true, schema: { t: 'int' } },
    { name: 'max-write-zero', optional: true, schema: { t: 'int' } },
    { name: 'opt-discard', optional: true, schema: { t: 'int' } },
    { name: 'max-discard', optional: true, schema: { t: 'int' } },
    { name: 'inject-error', optional: true, schema: { t: 'list', of: { t: 'object' } } },
    { name: 'set-state', optional: true, schema: { t: 'list', of: { t: 'object' } } },
    { name: 'take-child-perms', optional: true, schema: { t: 'list', of: str } },
    { name: 'unshare-child-perms', optional: true, schema: { t: 'list', of: str } },
  ],
  'null-co': [
    { name: 'size', optional: true, schema: { t: 'int' } },
    { name: 'latency-ns', optional: true, schema: uint64 },
    { name: 'read-zeroes', optional: true, schema: bool },
  ],
};
driverMembers['null-aio'] = driverMembers['null-co']!;

/** QAPI JSON values as the block layer's option dictionaries (numbers become JS numbers). */
export function toQDict(obj: JsonObject): QDict {
  const d = new QDict();
  for (const [k, v] of obj) d.set(k, toQValue(v));
  return d;
}

function toQValue(v: JsonValue): QValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number') return v;
  if (Array.isArray(v)) return v.map(toQValue);
  if (v instanceof Map) return toQDict(v);
  return toQDict(new Map(Object.entries(v)));
}

/** A block node seen as Storage, for the engine's creation code. */
export function nodeStorage(node: BlockNode): Storage {
  return {
    get filename() {
      return node.filename;
    },
    readOnly: node.readOnly,
    size: () => node.length(),
    read: (offset, buf) => node.read(offset, buf),
    write: (offset, data) => {
      if (offset + data.length > node.length()) node.truncate(offset + data.length, { exact: true, prealloc: 'off', shrinkAllowed: false });
      node.write(offset, data);
    },
    writeZeroes: (offset, length, unmap) => {
      if (offset + length > node.length()) node.truncate(offset + length, { exact: true, prealloc: 'off', shrinkAllowed: false });
      node.writeZeroes(offset, length, { unmap });
    },
    discard: (offset, length) => node.discard(offset, length),
    truncate: (size) => node.truncate(size, { exact: true, prealloc: 'off', shrinkAllowed: true }),
    flush: () => node.flush(),
    close: () => {},
  };
}

export interface QmpBlockEnv {
  cwd: string;
  pathPolicy?: PathPolicy;
  stderr(text: string): void;
}

/** The block state of one QMP server: its graph and the nodes blockdev-add created. */
export class QmpBlockLayer {
  readonly graph = new BlockGraph();
  /** Nodes owned by the monitor (blockdev-add / -blockdev), in creation order. */
  private readonly monitorOwned: BaseNode[] = [];
  readonly env: OpenEnv;

  constructor(env: QmpBlockEnv) {
    this.env = { cwd: env.cwd, pathPolicy: env.pathPolicy, graph: this.graph, stderr: (t) => env.stderr(t) };
  }

  /** qmp_blockdev_add with options already checked against the schema. */
  add(options: QDict): BaseNode {
    if (!options.has('node-name')) throw new QmpError("'node-name' must be specified for the root node");
    let node: BaseNode;
    try {
      node = openBlockdev(options, this.env);
    } catch (err) {
      throw new QmpError(err instanceof Error ? err.message : String(err));
    }
    this.monitorOwned.push(node);
    return node;
  }

  find(name: string): BlockNode | undefined {
    return this.graph.get(name);
  }

  /** Whether any node in the graph has this node as a child. */
  private hasParents(node: BlockNode): boolean {
    return this.graph.nodes().some((n) => [...n.children.values()].includes(node));
  }

  del(nodeName: string): void {
    const node = this.graph.get(nodeName);
    if (!node) throw new QmpError(`Failed to find node with node-name='${nodeName}'`);
    const owned = this.monitorOwned.find((n) => n === node);
    if (!owned) throw new QmpError(`Node ${nodeName} is not owned by the monitor`);
    if (this.hasParents(node)) throw new QmpError(`Block device ${nodeName} is in use`);
    this.monitorOwned.splice(this.monitorOwned.indexOf(owned), 1);
    owned.close();
  }

  /** Named nodes newest first, as query-named-block-nodes lists them. */
  namedNodes(): BlockNode[] {
    return [...this.graph.nodes()].reverse();
  }

  closeAll(): void {
    for (const n of [...this.monitorOwned].reverse()) {
      try {
        n.close();
      } catch {
        // Shutting down: nothing to report.
      }
    }
    this.monitorOwned.length = 0;
  }

  /** A BlockdevRef: an existing node's name, or options of a node to open (owned by the caller). */
  resolveRef(value: JsonValue): { node: BlockNode; owned: boolean } {
    if (typeof value === 'string') {
      const node = this.graph.get(value);
      if (!node) throw new QemuError(`Cannot find device='${value}' nor node-name='${value}'`);
      return { node, owned: false };
    }
    try {
      return { node: openBlockdev(toQDict(value as JsonObject), this.env), owned: true };
    } catch (err) {
      throw new QemuError(err instanceof Error ? err.message : String(err));
    }
  }
}

/** blockdev-add's QAPI check: base members, the driver's members, then leftovers. */
export function checkBlockdevOptions(args: JsonObject): void {
  const base = visitStruct(args, baseMembers, '', true);
  const driver = base.get('driver') as string;
  const members = driverMembers[driver];
  if (!members) {
    throw new QmpError(`Driver '${driver}' is not supported by the built-in engine`);
  }
  visitStruct(args, members, '', true);
  checkUnexpected(args, new Set([...baseMembers, ...members].map((m) => m.name)));
}

/**
 * The same checks for keyval input (-blockdev key=value,...): every value is text, so only
 * the driver, its enum and unexpected top-level members are checked here; the block layer
 * parses the values with the keyval visitor's messages.
 */
export function checkBlockdevKeyval(flat: QDict): void {
  const top = new Map<string, JsonValue>();
  for (const [k] of flat) {
    const name = k.split('.')[0]!;
    if (!top.has(name)) top.set(name, null);
  }
  const driver = flat.get('driver');
  if (driver === undefined) throw new QmpError("Parameter 'driver' is missing");
  if (typeof driver !== 'string' || !BLOCKDEV_DRIVERS.includes(driver)) {
    throw new QmpError(`Parameter 'driver' does not accept value '${String(driver)}'`);
  }
  const members = driverMembers[driver];
  if (!members) throw new QmpError(`Driver '${driver}' is not supported by the built-in engine`);
  checkUnexpected(top, new Set([...baseMembers, ...members].map((m) => m.name)));
}

/** BlockdevCreateOptionsFile / BlockdevCreateOptionsQcow2 members. */
const createFileMembers: Member[] = [
  { name: 'filename', schema: str },
  { name: 'size', schema: uint64 },
  { name: 'preallocation', optional: true, schema: preallocEnum },
  { name: 'nocow', optional: true, schema: bool },
  { name: 'extent-size-hint', optional: true, schema: uint64 },
];

const createQcow2Members: Member[] = [
  { name: 'file', schema: ref() },
  { name: 'data-file', optional: true, schema: ref() },
  { name: 'data-file-raw', optional: true, schema: bool },
  { name: 'extended-l2', optional: true, schema: bool },
  { name: 'size', schema: uint64 },
  { name: 'version', optional: true, schema: enumOf('v2', 'v3') },
  { name: 'backing-file', optional: true, schema: str },
  { name: 'backing-fmt', optional: true, schema: enumOf(...BLOCKDEV_DRIVERS) },
  { name: 'encrypt', optional: true, schema: { t: 'object' } },
  { name: 'cluster-size', optional: true, schema: uint64 },
  { name: 'preallocation', optional: true, schema: preallocEnum },
  { name: 'lazy-refcounts', optional: true, schema: bool },
  { name: 'refcount-bits', optional: true, schema: { t: 'int' } },
  { name: 'compression-type', optional: true, schema: enumOf('zlib', 'zstd') },
];

/** Drivers whose create variant exists but whose creation the built-in engine lacks. */
const NO_CREATE = new Set(['raw', 'null-co', 'null-aio', 'blkdebug', 'blkverify', 'blklogwrites', 'blkreplay', 'compress', 'copy-before-write', 'copy-on-read', 'snapshot-access', 'throttle', 'preallocate', 'quorum', 'replication', 'io_uring', 'nvme', 'nvme-io_uring', 'host_cdrom', 'host_device', 'bochs', 'cloop', 'dmg', 'vvfat', 'ftp', 'ftps', 'http', 'https', 'iscsi', 'nbd', 'virtio-blk-vfio-pci', 'virtio-blk-vhost-user', 'virtio-blk-vhost-vdpa']);

/** Registers the block commands on a server. */
export function registerBlockCommands(server: QmpServer, block: QmpBlockLayer): void {
  server.register('blockdev-add', (args) => {
    checkBlockdevOptions(args);
    block.add(toQDict(args));
    return { value: new Map() };
  });

  server.register('blockdev-del', (args) => {
    const name = visitStruct(args, [{ name: 'node-name', schema: str }]).get('node-name') as string;
    block.del(name);
    return { value: new Map() };
  });

  server.register('query-named-block-nodes', (args) => {
    visitStruct(args, [{ name: 'flat', optional: true, schema: bool }]);
    return { value: block.namedNodes().map(blockDeviceInfo) };
  });

  server.register('blockdev-create', (args) => {
    const top = visitStruct(args, [
      { name: 'job-id', schema: str },
      { name: 'options', schema: { t: 'object' } },
    ]);
    const jobId = top.get('job-id') as string;
    const options = top.get('options') as JsonObject;
    const base = visitStruct(options, [{ name: 'driver', schema: enumOf(...BLOCKDEV_DRIVERS) }], 'options', true);
    const driver = base.get('driver') as string;
    const members = driver === 'file' ? createFileMembers : driver === 'qcow2' ? createQcow2Members : [];
    const v = visitStruct(options, [{ name: 'driver', schema: enumOf(...BLOCKDEV_DRIVERS) }, ...members], 'options');
    if (NO_CREATE.has(driver) || (driver !== 'file' && driver !== 'qcow2')) {
      throw new QmpError('Driver does not support blockdev-create');
    }
    if (server.jobs.all().some((j) => j.id === jobId)) throw new QmpError(`Job ID '${jobId}' already in use`);
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(jobId)) throw new QmpError(`Invalid job ID '${jobId}'`);

    const job = server.newJob(jobId, 'create');
    job.transition('created');
    job.transition('running');

    const fail = (err: unknown) => {
      job.error = err instanceof Error ? err.message : String(err);
      job.currentProgress = 1n;
      job.transition('aborting');
      job.transition('concluded');
    };
    const succeed = () => {
      job.currentProgress = 1n;
      job.transition('waiting');
      job.transition('pending');
      job.transition('concluded');
    };

    if (driver === 'file') {
      // file-posix creates in a worker thread: every outcome comes after the reply.
      return {
        value: new Map(),
        after: () => {
          try {
            const spec = {
              filename: v.get('filename') as string,
              size: v.get('size') as bigint,
              preallocation: (v.get('preallocation') as Prealloc | undefined) ?? 'off',
            };
            createFile({ cwd: block.env.cwd, pathPolicy: block.env.pathPolicy, warn: () => {} }, spec).close();
            succeed();
          } catch (err) {
            fail(err);
          }
        },
      };
    }

    // qcow2: references and option checks happen before the job first yields.
    const opened: BlockNode[] = [];
    let layout;
    let file: BlockNode;
    let dataFile: BlockNode | undefined;
    try {
      const f = block.resolveRef(v.get('file')!);
      file = f.node;
      if (f.owned) opened.push(f.node);
      const o: Qcow2CreateOptions = { size: v.get('size') as bigint, hasDataFile: v.has('data-file') };
      if (v.has('version')) o.version = v.get('version') as 'v2' | 'v3';
      if (v.has('cluster-size')) o.clusterSize = v.get('cluster-size') as bigint;
      if (v.has('extended-l2')) o.extendedL2 = v.get('extended-l2') as boolean;
      if (v.has('preallocation')) o.preallocation = v.get('preallocation') as Prealloc;
      if (v.has('lazy-refcounts')) o.lazyRefcounts = v.get('lazy-refcounts') as boolean;
      if (v.has('refcount-bits')) o.refcountBits = v.get('refcount-bits') as bigint;
      if (v.has('compression-type')) o.compressionType = v.get('compression-type') as 'zlib' | 'zstd';
      if (v.has('backing-file')) o.backingFile = v.get('backing-file') as string;
      if (v.has('backing-fmt')) o.backingFmt = v.get('backing-fmt') as string;
      if (v.has('data-file-raw')) o.dataFileRaw = v.get('data-file-raw') as boolean;
      if (v.has('encrypt')) o.encrypt = { format: 'qcow' };
      layout = validateQcow2(o);
      if (v.has('data-file')) {
        const d = block.resolveRef(v.get('data-file')!);
        dataFile = d.node;
        if (d.owned) opened.push(d.node);
      }
    } catch (err) {
      for (const n of opened) n.close();
      fail(err);
      return { value: new Map() };
    }
    const finalLayout = layout;
    return {
      value: new Map(),
      after: () => {
        try {
          formatQcow2(nodeStorage(file), dataFile ? nodeStorage(dataFile) : undefined, dataFile?.filename, finalLayout);
          succeed();
        } catch (err) {
          fail(err instanceof ErrnoError && err.errno === Errno.EFBIG ? new QemuError('Could not resize image: File too large') : err);
        } finally {
          for (const n of opened) n.close();
        }
      },
    };
  });
}

/** BlockDeviceInfo of query-named-block-nodes (members inserted in QAPI order). */
function blockDeviceInfo(node: BlockNode): JsonObject {
  const m: JsonObject = new Map();
  const base = node as Partial<BaseNode>;
  m.set('file', node.filename);
  m.set('node-name', node.nodeName);
  m.set('ro', node.readOnly);
  m.set('drv', node.driver);
  let depth = 0n;
  for (let b = node.children.get('backing'); b; b = b.children.get('backing')) depth++;
  m.set('backing_file_depth', depth);
  m.set('encrypted', false);
  m.set('detect_zeroes', 'off');
  for (const k of ['bps', 'bps_rd', 'bps_wr', 'iops', 'iops_rd', 'iops_wr']) m.set(k, 0n);
  m.set('image', imageInfoJson(queryImageInfo(node)));
  m.set('write_threshold', 0n);
  const cache: JsonObject = new Map();
  cache.set('writeback', true);
  cache.set('direct', base.cacheDirect ?? false);
  cache.set('no-flush', base.noFlush ?? false);
  m.set('cache', cache);
  return m;
}

export { isObject, visitValue };
