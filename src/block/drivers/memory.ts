/**
 * A protocol node whose bytes live in memory. It stands where QEMU puts a temporary file:
 * the qcow2 overlay of `-s` (snapshot mode), whose writes must never reach the image and
 * vanish at exit.
 */
import { BaseNode, type NodeInfo } from '../node.ts';

const CHUNK = 1 << 16;

/** Sparse memory: 64 KiB chunks allocated on first write. */
export class MemoryNode extends BaseNode {
  private size = 0;
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(nodeName: string, path: string) {
    super('file', nodeName, false);
    this.exactFilename = path;
  }

  override get protocolName(): string {
    return 'file';
  }

  protected getLength(): number {
    return this.size;
  }

  protected doRead(offset: number, buf: Uint8Array): void {
    for (let done = 0; done < buf.length; ) {
      const pos = offset + done;
      const idx = Math.floor(pos / CHUNK);
      const within = pos - idx * CHUNK;
      const n = Math.min(CHUNK - within, buf.length - done);
      const chunk = this.chunks.get(idx);
      if (chunk) buf.set(chunk.subarray(within, within + n), done);
      else buf.fill(0, done, done + n);
      done += n;
    }
  }

  protected doWrite(offset: number, data: Uint8Array): void {
    for (let done = 0; done < data.length; ) {
      const pos = offset + done;
      const idx = Math.floor(pos / CHUNK);
      const within = pos - idx * CHUNK;
      const n = Math.min(CHUNK - within, data.length - done);
      let chunk = this.chunks.get(idx);
      if (!chunk) {
        chunk = new Uint8Array(CHUNK);
        this.chunks.set(idx, chunk);
      }
      chunk.set(data.subarray(done, done + n), within);
      done += n;
    }
    this.size = Math.max(this.size, offset + data.length);
  }

  protected override doWriteZeroes(offset: number, length: number): void {
    const end = offset + length;
    for (const [idx, chunk] of this.chunks) {
      const start = Math.max(offset, idx * CHUNK);
      const stop = Math.min(end, (idx + 1) * CHUNK);
      if (start < stop) chunk.fill(0, start - idx * CHUNK, stop - idx * CHUNK);
    }
    this.size = Math.max(this.size, end);
  }

  protected override doDiscard(offset: number, length: number): void {
    if (offset < this.size) this.doWriteZeroes(offset, Math.min(length, this.size - offset));
  }

  protected override doTruncate(size: number): void {
    if (size < this.size) this.doWriteZeroes(size, this.size - size);
    this.size = size;
  }

  override getInfo(): NodeInfo {
    return { clusterSize: 0, vmStateOffset: 0 };
  }
}
