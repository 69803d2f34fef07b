/**
 * Test images for the workloads, built quickly and without the engine under test:
 *  - a raw file with scattered data runs (converted to qcow2 by real qemu-img), and
 *  - qcow2 files with a given virtual size and number of allocated clusters, written here from
 *    the format spec (docs/interop/qcow2.txt) in one pass of large writes. Data clusters hold
 *    a nonzero pattern: QEMU's block status looks through a data cluster into the host file,
 *    so a hole there would be reported as `"zero": true`. Real `qemu-img check` verifies each
 *    image once.
 */
import * as fs from 'node:fs';

/** xorshift32: reproducible pseudo-random numbers for image contents and layouts. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/**
 * A raw image of `size` bytes where exactly half of the `run`-sized blocks, chosen at random,
 * hold incompressible data and the rest are holes.
 */
export function writeScatteredRaw(file: string, size: number, run: number, seed: number): number {
  const blocks = Math.floor(size / run);
  const next = rng(seed);
  const order = Array.from({ length: blocks }, (_, i) => i);
  for (let i = blocks - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const chosen = order.slice(0, blocks >> 1).sort((a, b) => a - b);
  // A few random blocks, each stamped with its index, so no two runs are equal.
  const samples = Array.from({ length: 16 }, () => {
    const b = new Uint32Array(run / 4);
    for (let i = 0; i < b.length; i++) b[i] = next() | 1;
    return new Uint8Array(b.buffer);
  });
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    const buf = new Uint8Array(run);
    const view = new DataView(buf.buffer);
    for (const index of chosen) {
      buf.set(samples[index % samples.length]!);
      view.setUint32(0, index + 1);
      fs.writeSync(fd, buf, 0, run, index * run);
    }
  } finally {
    fs.closeSync(fd);
  }
  return chosen.length;
}

export interface ScalingImage {
  virtualSize: number;
  allocatedClusters: number;
  clusterSize: number;
  /** Host file size (sparse). */
  fileSize: number;
}

/**
 * A qcow2 v3 image (16-bit refcounts) of `virtualSize` bytes with `allocated` data clusters,
 * laid out in runs of up to RUN clusters, one run per L2 table, the runs spread evenly over
 * the whole virtual disk. So the number of L2 tables grows with the allocated clusters while
 * the L1 table (and the unallocated space between runs) grows with the virtual size.
 */
export function writeScalingImage(file: string, virtualSize: number, allocated: number, clusterBits = 12): ScalingImage {
  const RUN = 500;
  const cs = 2 ** clusterBits;
  const l2Entries = cs / 8;
  if (RUN > l2Entries) throw new Error('RUN must fit in one L2 table');
  const l1Entries = Math.ceil(virtualSize / (cs * l2Entries));
  const runs = Math.ceil(allocated / RUN);
  const slotStep = Math.floor(l1Entries / runs);
  if (slotStep < 1) throw new Error(`${allocated} clusters in runs of ${RUN} do not fit in ${virtualSize} bytes`);
  const l1Clusters = Math.ceil((l1Entries * 8) / cs);
  const refsPerBlock = cs / 2;

  // Layout: header, refcount table, L1, refcount blocks, then each L2 table followed by its run.
  let refblocks = 1;
  let rtClusters = 1;
  let total = 0;
  for (;;) {
    total = 1 + rtClusters + l1Clusters + refblocks + runs + allocated;
    const needBlocks = Math.ceil(total / refsPerBlock);
    const needRt = Math.ceil((needBlocks * 8) / cs);
    if (needBlocks === refblocks && needRt === rtClusters) break;
    refblocks = needBlocks;
    rtClusters = needRt;
  }
  const rtOffset = cs;
  const l1Offset = rtOffset + rtClusters * cs;
  const rbOffset = l1Offset + l1Clusters * cs;
  const firstRunCluster = rbOffset / cs + refblocks;
  const COPIED_HI = 0x80000000;

  const header = new Uint8Array(cs);
  const h = new DataView(header.buffer);
  h.setUint32(0, 0x514649fb);
  h.setUint32(4, 3);
  h.setUint32(20, clusterBits);
  h.setBigUint64(24, BigInt(virtualSize));
  h.setUint32(36, l1Entries);
  h.setBigUint64(40, BigInt(l1Offset));
  h.setBigUint64(48, BigInt(rtOffset));
  h.setUint32(56, rtClusters);
  h.setUint32(96, 4);
  h.setUint32(100, 112);
  // Header extensions: just the end marker (type 0, length 0) at offset 112.

  const rt = new Uint8Array(rtClusters * cs);
  const rtv = new DataView(rt.buffer);
  for (let i = 0; i < refblocks; i++) rtv.setBigUint64(i * 8, BigInt(rbOffset + i * cs));

  const rb = new Uint8Array(refblocks * cs);
  const rbv = new DataView(rb.buffer);
  for (let c = 0; c < total; c++) rbv.setUint16(c * 2, 1);

  const l1 = new Uint8Array(l1Clusters * cs);
  const l1v = new DataView(l1.buffer);
  // One write per run: the L2 table followed by its data clusters.
  const runBuf = new Uint8Array(cs * (1 + RUN));
  runBuf.fill(0x5a, cs);
  const l2 = runBuf.subarray(0, cs);
  const l2v = new DataView(runBuf.buffer, 0, cs);

  const fd = fs.openSync(file, 'w');
  try {
    let cluster = firstRunCluster;
    let left = allocated;
    for (let r = 0; r < runs; r++) {
      const n = Math.min(RUN, left);
      left -= n;
      const l2Offset = cluster * cs;
      cluster++;
      l1v.setUint32(r * slotStep * 8, (COPIED_HI | Math.floor(l2Offset / 2 ** 32)) >>> 0);
      l1v.setUint32(r * slotStep * 8 + 4, l2Offset >>> 0);
      l2.fill(0);
      for (let i = 0; i < n; i++) {
        const host = (cluster + i) * cs;
        l2v.setUint32(i * 8, (COPIED_HI | Math.floor(host / 2 ** 32)) >>> 0);
        l2v.setUint32(i * 8 + 4, host >>> 0);
      }
      fs.writeSync(fd, runBuf, 0, cs * (1 + n), l2Offset);
      cluster += n;
    }
    fs.writeSync(fd, header, 0, cs, 0);
    fs.writeSync(fd, rt, 0, rt.length, rtOffset);
    fs.writeSync(fd, l1, 0, l1.length, l1Offset);
    fs.writeSync(fd, rb, 0, rb.length, rbOffset);
    fs.ftruncateSync(fd, total * cs);
  } finally {
    fs.closeSync(fd);
  }
  return { virtualSize, allocatedClusters: allocated, clusterSize: cs, fileSize: total * cs };
}
