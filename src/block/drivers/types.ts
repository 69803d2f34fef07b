/**
 * What a driver module provides to the open machinery (src/block/open.ts), and what it gets
 * from it. Drivers take their runtime options from `options`; anything left afterwards is
 * reported as unsupported by the caller, as QEMU does.
 */
import type { QDict } from '../qdict.ts';
import type { OptionBag } from '../options.ts';
import type { BaseNode } from '../node.ts';
import type { ChildRole } from '../types.ts';
import type { OpenEnv } from '../env.ts';

export interface ChildOpenRequest {
  role: ChildRole;
  /** A filename to open when the options name no child (e.g. the data file in a header). */
  filename?: string;
  /** Whether protocol prefixes/json: in `filename` are parsed (false for names from headers). */
  parseFilename?: boolean;
  /** Return undefined instead of failing when nothing describes the child. */
  allowNone: boolean;
  /** Open read-only regardless of the parent (backing files). */
  readOnly?: boolean;
  /** Force the format (backing_fmt from a header). */
  format?: string;
}

export interface DriverOpenContext {
  nodeName: string;
  readOnly: boolean;
  /** The node's remaining options (flat); take what the driver understands. */
  options: OptionBag;
  /** Format drivers: the already opened `file` child (undefined when none was given). */
  file?: BaseNode;
  /** The format was probed, not given. */
  probed: boolean;
  /** BDRV_O_NO_BACKING: do not open the backing file named in the image (backing: null). */
  noBacking: boolean;
  /** cache.direct as this node will use it. */
  cacheDirect: boolean;
  /** BDRV_O_NO_IO: metadata only. */
  noIo: boolean;
  /** BDRV_O_CHECK: opened by qemu-img check. */
  check?: boolean;
  /** Default aio mode for file nodes (from -k / -i). */
  aio?: 'threads' | 'native' | 'io_uring';
  env: OpenEnv;
  /** Open a child of this node with inherited flags; options come from `<role>.*`. */
  openChild(req: ChildOpenRequest): BaseNode | undefined;
}

export interface BlockDriverDef {
  name: string;
  /** Protocol drivers (bdrv_file_open) open storage themselves and never get a `file`. */
  protocol: boolean;
  /** Filters pass the protocol flag on to their child. */
  filter?: boolean;
  /** The 'filename' option is required and kept (file). */
  needsFilename?: boolean;
  /** Prefix before ':' that selects this protocol in a filename ("null-co", "blkdebug"). */
  protocolPrefix?: string;
  /** Format drivers that can have a backing child. */
  supportsBacking?: boolean;
  /** Driver-specific filename syntax; fills options (bdrv_parse_filename). */
  parseFilename?(filename: string, options: QDict): void;
  /** Format probe score for the first bytes of an image (higher wins). */
  probe?(header: Uint8Array): number;
  open(ctx: DriverOpenContext): BaseNode;
}
