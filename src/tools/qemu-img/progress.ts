/**
 * qemu-img's -p progress line (util/qemu-progress.c): "    (P/100%)" followed by a carriage
 * return, printed when the value moved by more than the minimum step (or is 0 or 100), and
 * flushed at once; a newline at the end. Disabled progress prints nothing.
 */
import type { Img } from './img.ts';
import { formatFixed } from '../common/cformat.ts';

export class Progress {
  private readonly img: Img;
  private readonly enabled: boolean;
  private readonly minSkip: number;
  private current = 0;
  private lastPrint = 0;

  constructor(img: Img, enabled: boolean, minSkip: number) {
    this.img = img;
    this.enabled = enabled;
    this.minSkip = minSkip;
  }

  /**
   * qemu_progress_print(delta, max): with max 0, delta is the new value in percent; otherwise
   * the value grows by delta percent of max.
   */
  print(delta: number, max: number): void {
    // QEMU computes in float; Math.fround keeps its rounding of the printed value.
    let current = max === 0 ? Math.fround(delta) : Math.fround(this.current + Math.fround((delta / 100) * max));
    if (current > 100) current = 100;
    this.current = current;
    if (current > this.lastPrint + this.minSkip || current < this.lastPrint - this.minSkip || current === 0 || current === 100) {
      this.lastPrint = current;
      if (this.enabled) {
        this.img.print(`    (${formatFixed(current, 2)}/100%)\r`);
        this.img.flush();
      }
    }
  }

  /** qemu_progress_end */
  end(): void {
    if (this.enabled) this.img.print('\n');
  }
}
