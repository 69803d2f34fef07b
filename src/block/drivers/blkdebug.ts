/**
 * The `blkdebug` filter: error injection by rules. A rule is armed when its event fires (the
 * `none` event fires once at open, `read_aio`/`write_aio` when a raw or qcow2 parent reads or
 * writes through it, `flush_to_os`/`flush_to_disk` during flushes); armed rules fail matching
 * requests (by I/O type and sector) with their errno. blkdebug never offloads copies.
 */
import * as fs from 'node:fs';
import { Errno, ErrnoError, strerror } from '../../errno.ts';
import { BlockOpenError, OptionsError } from '../errors.ts';
import { checkPath } from '../env.ts';
import { BaseNode, type StatusPassthrough } from '../node.ts';
import { parseBoolOption, parseNumberOption } from '../options.ts';
import { QDict, type QValue } from '../qdict.ts';
import type { BlockDriverDef, DriverOpenContext } from './types.ts';

/** BlkdebugEvent in qapi/block-core.json (7.2). */
export const BLKDEBUG_EVENTS = [
  'l1_update', 'l1_grow_alloc_table', 'l1_grow_write_table', 'l1_grow_activate_table',
  'l2_load', 'l2_update', 'l2_update_compressed', 'l2_alloc_cow_read', 'l2_alloc_write',
  'read_aio', 'read_backing_aio', 'read_compressed', 'write_aio', 'write_compressed',
  'vmstate_load', 'vmstate_save', 'cow_read', 'cow_write', 'reftable_load', 'reftable_grow',
  'reftable_update', 'refblock_load', 'refblock_update', 'refblock_update_part', 'refblock_alloc',
  'refblock_alloc_hookup', 'refblock_alloc_write', 'refblock_alloc_write_blocks',
  'refblock_alloc_write_table', 'refblock_alloc_switch_table', 'cluster_alloc',
  'cluster_alloc_bytes', 'cluster_free', 'flush_to_os', 'flush_to_disk', 'pwritev_rmw_head',
  'pwritev_rmw_after_head', 'pwritev_rmw_tail', 'pwritev_rmw_after_tail', 'pwritev',
  'pwritev_zero', 'pwritev_done', 'empty_image_prepare', 'l1_shrink_write_table',
  'l1_shrink_free_l2_clusters', 'cor_write', 'cluster_alloc_space', 'none',
] as const;

export const BLKDEBUG_IO_TYPES = ['read', 'write', 'write-zeroes', 'discard', 'flush', 'block-status'] as const;
type IoType = (typeof BLKDEBUG_IO_TYPES)[number];

const DEFAULT_IOTYPES: ReadonlySet<IoType> = new Set(['read', 'write', 'write-zeroes', 'discard', 'flush']);

interface InjectRule {
  kind: 'inject';
  event: string;
  state: number;
  errno: number;
  once: boolean;
  /** Byte offset of the sector the rule is limited to, or -1 for any. */
  offset: number;
  iotypes: ReadonlySet<IoType>;
}

interface SetStateRule {
  kind: 'set-state';
  event: string;
  state: number;
  newState: number;
}

/** A breakpoint (qemu-io `break EVENT TAG`): the request that fires EVENT is suspended. */
interface SuspendRule {
  kind: 'suspend';
  event: string;
  state: number;
  tag: string;
}

type Rule = InjectRule | SetStateRule | SuspendRule;

export class BlkdebugNode extends BaseNode {
  readonly image: BaseNode;
  private readonly rules: Rule[];
  /** Rules armed by the last event, most recently armed first. */
  private active: InjectRule[] = [];
  private state = 1;
  readonly configFile: string | undefined;
  /**
   * Tags of suspended requests, most recent first. Requests run to completion in-process; a
   * suspension only holds back the request's completion until `resume` (see qemu-io's aio).
   */
  private readonly suspended: string[] = [];
  /** Suspensions not yet collected by takeNewSuspensions(). */
  private fresh: string[] = [];
  private readonly stdout: (text: string) => void;
  /**
   * Hold the "Suspended request" lines until releaseMessages(): in QEMU the event fires when
   * the main loop next runs the request's coroutine, not while the command is submitted.
   */
  holdMessages = false;
  private heldMessages: string[] = [];

  constructor(nodeName: string, readOnly: boolean, image: BaseNode, rules: Rule[], configFile: string | undefined, stdout?: (text: string) => void) {
    super('blkdebug', nodeName, readOnly);
    this.image = image;
    this.rules = rules;
    this.configFile = configFile;
    this.stdout = stdout ?? (() => {});
    this.children.set('image', image);
  }

  /** bdrv_debug_breakpoint: false for an unknown event name (ENOENT). */
  addBreakpoint(event: string, tag: string): boolean {
    if (!(BLKDEBUG_EVENTS as readonly string[]).includes(event)) return false;
    // New rules go to the head of the event's list, i.e. they are processed first.
    this.rules.push({ kind: 'suspend', event, state: 0, tag });
    return true;
  }

  /** bdrv_debug_remove_breakpoint: drops every breakpoint with the tag; false when none. */
  removeBreakpoint(tag: string): boolean {
    let found = false;
    for (let i = this.rules.length - 1; i >= 0; i--) {
      const r = this.rules[i]!;
      if (r.kind === 'suspend' && r.tag === tag) {
        this.rules.splice(i, 1);
        found = true;
      }
    }
    return found;
  }

  /** bdrv_debug_resume: false when no request with the tag is suspended. */
  resume(tag: string): boolean {
    const i = this.suspended.indexOf(tag);
    if (i < 0) return false;
    this.stdout(`blkdebug: Resuming request '${tag}'\n`);
    this.suspended.splice(i, 1);
    return true;
  }

  isSuspended(tag: string): boolean {
    return this.suspended.includes(tag);
  }

  /** Print the lines held back by holdMessages. */
  releaseMessages(): void {
    const held = this.heldMessages;
    this.heldMessages = [];
    for (const m of held) this.stdout(m);
  }

  /** Tags suspended since the last call (the request that was running when they fired). */
  takeNewSuspensions(): string[] {
    const out = this.fresh;
    this.fresh = [];
    return out;
  }

  override get protocolName(): string {
    return 'blkdebug';
  }
  override get isFilter(): boolean {
    return true;
  }
  override get supportsFuaWrite(): boolean {
    return this.image.supportsFuaWrite;
  }
  override get supportsFuaZeroes(): boolean {
    return this.image.supportsFuaZeroes;
  }
  override get supportsNoFallbackZeroes(): boolean {
    return this.image.supportsNoFallbackZeroes;
  }
  override get clusterSize(): number {
    return this.image.clusterSize;
  }

  override debugEvent(event: string): void {
    let injected = false;
    let newState = this.state;
    // Rules are kept in QEMU's list order: the last one added is processed first.
    for (const rule of [...this.rules].reverse()) {
      if (rule.event !== event) continue;
      if (rule.state && rule.state !== this.state) continue;
      if (rule.kind === 'inject') {
        if (!injected) {
          this.active = [];
          injected = true;
        }
        this.active.unshift(rule);
      } else if (rule.kind === 'suspend') {
        this.rules.splice(this.rules.indexOf(rule), 1);
        this.suspended.unshift(rule.tag);
        this.fresh.push(rule.tag);
        const line = `blkdebug: Suspended request '${rule.tag}'\n`;
        if (this.holdMessages) this.heldMessages.push(line);
        else this.stdout(line);
      } else {
        newState = rule.newState;
      }
    }
    this.state = newState;
  }

  private check(offset: number, bytes: number, iotype: IoType): void {
    const rule = this.active.find(
      (r) => (r.offset === -1 || (bytes > 0 && r.offset >= offset && r.offset < offset + bytes)) && r.iotypes.has(iotype),
    );
    if (!rule || !rule.errno) return;
    if (rule.once) {
      this.active = this.active.filter((r) => r !== rule);
      const idx = this.rules.indexOf(rule);
      if (idx >= 0) this.rules.splice(idx, 1);
    }
    throw new ErrnoError(rule.errno);
  }

  protected getLength(): number {
    return this.image.length();
  }

  protected doRead(offset: number, buf: Uint8Array): void {
    this.check(offset, buf.length, 'read');
    this.image.read(offset, buf);
  }

  protected doWrite(offset: number, data: Uint8Array, fua: boolean): void {
    this.check(offset, data.length, 'write');
    this.image.write(offset, data, { fua });
  }

  protected override doWriteZeroes(offset: number, length: number, unmap: boolean, fua: boolean, noFallback: boolean): void {
    this.check(offset, length, 'write-zeroes');
    this.image.writeZeroes(offset, length, { unmap, fua, noFallback });
  }

  protected override doDiscard(offset: number, length: number): void {
    this.check(offset, length, 'discard');
    this.image.discard(offset, length);
  }

  protected override doFlushToDisk(): void {
    this.check(0, 0, 'flush');
  }

  protected override doBlockStatus(offset: number, length: number): StatusPassthrough {
    this.check(offset, length, 'block-status');
    return { passthrough: this.image, offset };
  }

  protected override refreshExactFilename(): void {
    this.exactFilename = '';
    if (!this.image.exactFilename) return;
    for (const key of this.fullOpenOptions.keys()) {
      if (key !== 'config' && key !== 'image' && key !== 'x-image' && key !== 'driver') return;
    }
    this.exactFilename = `blkdebug:${this.configFile ?? ''}:${this.image.exactFilename}`;
  }
}

/** blkdebug:config:image */
function parseBlkdebugFilename(filename: string, options: QDict): void {
  if (!filename.startsWith('blkdebug:')) {
    options.set('x-image', filename);
    return;
  }
  const rest = filename.slice('blkdebug:'.length);
  const colon = rest.indexOf(':');
  if (colon < 0) throw new BlockOpenError('blkdebug requires both config file and image path');
  if (colon > 0) options.set('config', rest.slice(0, colon));
  options.set('x-image', rest.slice(colon + 1));
}

function enumValue<T extends string>(values: readonly T[], v: string): T {
  if (!(values as readonly string[]).includes(v)) throw new OptionsError(`invalid parameter value: ${v}`);
  return v as T;
}

function ruleFromFields(kind: 'inject-error' | 'set-state', fields: QDict): Rule {
  const known = kind === 'inject-error' ? ['event', 'state', 'iotype', 'errno', 'sector', 'once', 'immediately'] : ['event', 'state', 'new_state'];
  for (const key of fields.keys()) {
    if (!known.includes(key)) throw new OptionsError(`Invalid parameter '${key}'`);
  }
  const str = (key: string): string | undefined => {
    const v = fields.get(key);
    if (v === undefined || v === null) return undefined;
    return typeof v === 'string' ? v : String(v);
  };
  const num = (key: string, dflt: number): number => {
    const v = fields.get(key);
    return v === undefined || v === null ? dflt : parseNumberOption(key, v);
  };
  const bool = (key: string): boolean => {
    const v = fields.get(key);
    return v === undefined || v === null ? false : parseBoolOption(key, v);
  };
  const eventName = str('event');
  if (eventName === undefined) throw new OptionsError('Missing event name for rule');
  const event = enumValue(BLKDEBUG_EVENTS, eventName);
  const state = num('state', 0);
  if (kind === 'set-state') return { kind: 'set-state', event, state, newState: num('new_state', 0) };
  const errno = num('errno', Errno.EIO);
  const once = bool('once');
  bool('immediately');
  const sector = num('sector', -1);
  const iotypeName = str('iotype');
  const iotypes: ReadonlySet<IoType> = iotypeName === undefined ? DEFAULT_IOTYPES : new Set([enumValue(BLKDEBUG_IO_TYPES, iotypeName)]);
  return { kind: 'inject', event, state, errno, once, offset: sector === -1 ? -1 : sector * 512, iotypes };
}

/** Rules given as options: inject-error.N.key / set-state.N.key. */
function rulesFromOptions(flat: QDict, kind: 'inject-error' | 'set-state'): Rule[] {
  const groups = new Map<string, QDict>();
  const prefix = `${kind}.`;
  for (const [key, value] of [...flat]) {
    if (!key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    const dot = rest.indexOf('.');
    if (dot < 0) continue;
    const idx = rest.slice(0, dot);
    let g = groups.get(idx);
    if (!g) {
      g = new QDict();
      groups.set(idx, g);
    }
    g.set(rest.slice(dot + 1), value);
    flat.delete(key);
  }
  return [...groups.values()].map((g) => ruleFromFields(kind, g));
}

/** The ini-style config file: [inject-error] / [set-state] sections of key = "value". */
function rulesFromConfigFile(text: string): Rule[] {
  const rules: Rule[] = [];
  let current: { kind: 'inject-error' | 'set-state'; fields: QDict } | undefined;
  const flush = (): void => {
    if (current) rules.push(ruleFromFields(current.kind, current.fields));
    current = undefined;
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const section = /^\[([a-z-]+)\]$/.exec(line);
    if (section) {
      flush();
      const kind = section[1];
      if (kind !== 'inject-error' && kind !== 'set-state') throw new BlockOpenError('Could not parse blkdebug config file');
      current = { kind, fields: new QDict() };
      continue;
    }
    const kv = /^([a-z_-]+)\s*=\s*"(.*)"$/.exec(line);
    if (!kv || !current) throw new BlockOpenError('Could not parse blkdebug config file');
    current.fields.set(kv[1]!, kv[2]!);
  }
  flush();
  return rules;
}

function openBlkdebug(ctx: DriverOpenContext): BaseNode {
  const opts = ctx.options;
  const given = new QDict();
  for (const [k, v] of opts.flat) {
    if (k === 'config' || k.startsWith('inject-error.') || k.startsWith('set-state.') || ['align', 'max-transfer', 'opt-write-zero', 'max-write-zero', 'opt-discard', 'max-discard'].includes(k)) {
      given.set(k, v);
    }
  }
  const config = opts.takeString('config');
  const xImage = opts.takeString('x-image');
  const sizes = ['align', 'max-transfer', 'opt-write-zero', 'max-write-zero', 'opt-discard', 'max-discard'].map(
    (k) => [k, opts.takeSize(k, 0)] as const,
  );
  let rules: Rule[] = [];
  if (config !== undefined) {
    const abs = checkPath(ctx.env, config, 'read');
    let text: string;
    try {
      text = fs.readFileSync(abs, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const errno = code && code in Errno ? Errno[code as keyof typeof Errno] : Errno.EIO;
      throw new BlockOpenError(`Could not read blkdebug config file: ${strerror(errno)}`, errno);
    }
    rules = rulesFromConfigFile(text);
  }
  rules.push(...rulesFromOptions(opts.flat, 'inject-error'));
  rules.push(...rulesFromOptions(opts.flat, 'set-state'));
  const image = ctx.openChild({ role: 'image', filename: xImage, allowNone: false });
  if (!image) throw new BlockOpenError('A block device must be specified for "image"');
  const align = sizes[0]![1];
  if (align && (align >= 2 ** 31 - 1 || (align & (align - 1)) !== 0)) {
    image.close();
    throw new BlockOpenError(`Cannot meet constraints with align ${align}`);
  }
  const node = new BlkdebugNode(ctx.nodeName, ctx.readOnly, image, rules, config, ctx.env.stdout);
  node.ownedChildren.add(image);
  if (align) node.requestAlignment = align;
  for (const [k, v] of given) node.recordOption(k, v as QValue, true);
  node.debugEvent('none');
  return node;
}

export const blkdebugDriver: BlockDriverDef = {
  name: 'blkdebug',
  protocol: true,
  filter: true,
  protocolPrefix: 'blkdebug',
  parseFilename: parseBlkdebugFilename,
  open: openBlkdebug,
};
