/** One entry of the internal snapshot table (QCowSnapshot). */
export interface Snapshot {
  l1TableOffset: number;
  /**
   * The on-disk value when it is beyond 2^53 (no valid offset is; a damaged table): kept exact
   * so that checks, messages and rewrites of the table see all 64 bits.
   */
  l1TableOffsetExact?: bigint;
  l1Size: number;
  id: string;
  name: string;
  /** Guest size when the snapshot was taken (extra data; v2 images may lack it). */
  diskSize: number;
  vmStateSize: number;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: bigint;
  /** -1n when not recorded. */
  icount: bigint;
  extraDataSize: number;
  /** Extra data beyond the fields QEMU knows, kept verbatim. */
  unknownExtraData: Uint8Array;
}
