/**
 * The drivers the builtin engine knows, by QEMU name.
 */
import type { BlockDriverDef } from './types.ts';
import { fileDriver } from './file.ts';
import { rawDriver } from './raw.ts';
import { nullDriver } from './null.ts';
import { blkdebugDriver } from './blkdebug.ts';
import { qcow2Driver } from './qcow2.ts';
import { compressDriver } from './compress.ts';

const drivers = new Map<string, BlockDriverDef>();

export function registerDriver(def: BlockDriverDef): void {
  drivers.set(def.name, def);
}

export function findDriver(name: string): BlockDriverDef | undefined {
  return drivers.get(name);
}

/** bdrv_find_protocol's prefix table. */
export function findProtocolByPrefix(prefix: string): BlockDriverDef | undefined {
  for (const d of drivers.values()) if (d.protocol && d.protocolPrefix === prefix) return d;
  return undefined;
}

for (const d of [fileDriver, rawDriver, nullDriver, blkdebugDriver, qcow2Driver, compressDriver]) registerDriver(d);
