/** One entry of the internal snapshot table (QCowSnapshot). */
export interface Snapshot {
  l1TableOffset: number;
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
