/**
 * Human-readable sizes and durations exactly as qemu-io prints them (cvtstr and timestr in
 * qemu-io-cmds.c): the largest binary unit not above the value, three decimals, and a ".000"
 * tail replaced by the unit.
 */
import { formatFixed, formatFixedZeroPad } from './cformat.ts';

const UNITS: ReadonlyArray<[number, string]> = [
  [2 ** 60, ' EiB'],
  [2 ** 50, ' PiB'],
  [2 ** 40, ' TiB'],
  [2 ** 30, ' GiB'],
  [2 ** 20, ' MiB'],
  [2 ** 10, ' KiB'],
];

/** qemu-io's cvtstr(): `64 KiB`, `1.500 KiB`, `512 bytes`, `976.562 KiB`. */
export function humanSize(value: number): string {
  let digits: string | undefined;
  let suffix = ' bytes';
  for (const [unit, name] of UNITS) {
    if (value >= unit) {
      digits = formatFixed(value / unit, 3);
      suffix = name;
      break;
    }
  }
  digits ??= formatFixed(value, 6);
  const trim = digits.indexOf('.000');
  return trim >= 0 ? digits.slice(0, trim) + suffix : digits + suffix;
}

/** A duration as seconds plus nanoseconds, like struct timespec. */
export interface Duration {
  sec: number;
  nsec: number;
}

export function durationFromNanos(ns: bigint): Duration {
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

export function durationSeconds(d: Duration): number {
  return d.sec + d.nsec / 1e9;
}

/**
 * qemu-io's timestr(): `00.01 sec` below one second, `H:MM:SS.ss` from one second on (and
 * always in the -C machine format, `verbose`).
 */
export function timeString(d: Duration, verbose = false): string {
  const frac = d.nsec / 1e9;
  if (verbose || d.sec) {
    const hours = Math.floor(d.sec / 3600);
    const minutes = Math.floor((d.sec % 3600) / 60);
    const seconds = (d.sec % 60) + frac;
    return `${hours}:${String(minutes).padStart(2, '0')}:${formatFixedZeroPad(seconds, 5, 2)}`;
  }
  return `${formatFixedZeroPad(frac, 5, 2)} sec`;
}
