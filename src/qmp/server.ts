/**
 * The QMP monitor of qemu-storage-daemon 7.2, in-process: greeting, capabilities negotiation,
 * command dispatch with QEMU's checks and error replies, events with wall-clock timestamps.
 * Block commands act on a QmpBlockLayer (the shared block graph).
 */
import { JsonStreamer, qdictOrder, toJson, type JsonObject, type JsonValue } from './json.ts';
import { Job, JobList } from './jobs.ts';
import { QmpError, enumOf, isObject, str, visitStruct } from './qapi.ts';

export const QEMU_VERSION = { major: 7n, minor: 2n, micro: 22n };
export const QEMU_PACKAGE = 'Debian 1:7.2+dfsg-7+deb12u18+b3';

/** What a command handler returns: the reply value and work to do after the reply is sent. */
export interface CommandResult {
  value: JsonValue;
  after?: () => void;
}

export type CommandHandler = (args: JsonObject, server: QmpServer) => CommandResult;

export interface Clock {
  /** Seconds and microseconds since the epoch, as gettimeofday gives them. */
  now(): { seconds: bigint; microseconds: bigint };
}

export const wallClock: Clock = {
  now() {
    const us = BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000));
    return { seconds: us / 1_000_000n, microseconds: us % 1_000_000n };
  },
};

function obj(...entries: [string, JsonValue][]): JsonObject {
  return new Map(entries);
}

export class QmpServer {
  readonly jobs = new JobList();
  private negotiated = false;
  private readonly commands = new Map<string, CommandHandler>();
  private readonly write: (line: string) => void;
  private readonly clock: Clock;
  private readonly streamer: JsonStreamer;
  /** Set by quit: the monitor stops reading. */
  quitRequested = false;

  constructor(write: (line: string) => void, clock: Clock = wallClock) {
    this.write = write;
    this.clock = clock;
    this.streamer = new JsonStreamer((r) => {
      if (this.quitRequested) return;
      if ('error' in r) this.reply(obj(['error', obj(['class', 'GenericError'], ['desc', r.error])]));
      else this.dispatch(r.value);
    });
    this.register('qmp_capabilities', (args) => {
      visitStruct(args, [{ name: 'enable', optional: true, schema: { t: 'list', of: enumOf('oob') } }]);
      return { value: obj() };
    });
    this.register('query-jobs', (args) => {
      visitStruct(args, []);
      return { value: this.jobs.all().map((j) => j.info()) };
    });
    this.register('job-dismiss', (args) => {
      const id = visitStruct(args, [{ name: 'id', schema: str }]).get('id') as string;
      const job = this.jobs.find(id);
      job.checkVerb('dismiss');
      job.transition('null');
      this.jobs.remove(job);
      return { value: obj() };
    });
    this.register('job-finalize', (args) => {
      const id = visitStruct(args, [{ name: 'id', schema: str }]).get('id') as string;
      this.jobs.find(id).checkVerb('finalize');
      return { value: obj() };
    });
    this.register('job-cancel', (args) => {
      const id = visitStruct(args, [{ name: 'id', schema: str }]).get('id') as string;
      this.jobs.find(id).checkVerb('cancel');
      return { value: obj() };
    });
    this.register('quit', (args) => {
      visitStruct(args, []);
      // qemu-storage-daemon dismisses leftover jobs on its way out, before replying.
      for (const job of [...this.jobs.all()]) {
        job.transition('null');
        this.jobs.remove(job);
      }
      this.quitRequested = true;
      return { value: obj() };
    });
  }

  register(name: string, handler: CommandHandler): void {
    this.commands.set(name, handler);
  }

  greeting(): void {
    const version = obj(
      ['qemu', obj(['major', QEMU_VERSION.major], ['minor', QEMU_VERSION.minor], ['micro', QEMU_VERSION.micro])],
      ['package', QEMU_PACKAGE],
    );
    this.reply(obj(['QMP', obj(['version', version], ['capabilities', ['oob']])]));
  }

  /** Text received on the monitor. */
  input(text: string): void {
    this.streamer.feed(text);
  }

  event(name: string, data: JsonObject): void {
    const { seconds, microseconds } = this.clock.now();
    this.reply(obj(['timestamp', obj(['seconds', seconds], ['microseconds', microseconds])], ['event', name], ['data', data]));
  }

  /** A job whose status changes are announced as JOB_STATUS_CHANGE events. */
  newJob(id: string, type: string): Job {
    const job = new Job(id, type, (j) => this.event('JOB_STATUS_CHANGE', obj(['status', j.status], ['id', j.id])));
    this.jobs.add(job);
    return job;
  }

  private reply(msg: JsonObject): void {
    this.write(toJson(msg));
  }

  private dispatch(request: JsonValue): void {
    if (!isObject(request)) {
      this.reply(obj(['error', obj(['class', 'GenericError'], ['desc', 'QMP input must be a JSON object'])]));
      return;
    }
    const id = request.get('id');
    const respond = (body: [string, JsonValue]) => {
      const msg = obj(body);
      if (id !== undefined) msg.set('id', id);
      this.reply(msg);
    };
    try {
      const { name, args } = checkRequest(request);
      if (!this.negotiated && name !== 'qmp_capabilities') {
        throw new QmpError("Expecting capabilities negotiation with 'qmp_capabilities'", 'CommandNotFound');
      }
      if (this.negotiated && name === 'qmp_capabilities') {
        throw new QmpError('Capabilities negotiation is already complete, command ignored', 'CommandNotFound');
      }
      const handler = this.commands.get(name);
      if (!handler) throw new QmpError(`The command ${name} has not been found`, 'CommandNotFound');
      const result = handler(args, this);
      if (name === 'qmp_capabilities') this.negotiated = true;
      respond(['return', result.value]);
      result.after?.();
    } catch (err) {
      if (err instanceof QmpError) respond(['error', obj(['class', err.errorClass], ['desc', err.message])]);
      else respond(['error', obj(['class', 'GenericError'], ['desc', err instanceof Error ? err.message : String(err)])]);
    }
  }
}

/** qmp_dispatch_check_obj: members checked in QDict order, the first problem reported. */
function checkRequest(request: JsonObject): { name: string; args: JsonObject } {
  let name: string | undefined;
  for (const [key, value] of qdictOrder([...request.entries()])) {
    if (key === 'execute') {
      if (typeof value !== 'string') throw new QmpError("QMP input member 'execute' must be a string");
      name = value;
    } else if (key === 'arguments') {
      if (!isObject(value)) throw new QmpError("QMP input member 'arguments' must be an object");
    } else if (key !== 'id') {
      throw new QmpError(`QMP input member '${key}' is unexpected`);
    }
  }
  if (name === undefined) throw new QmpError("QMP input lacks member 'execute'");
  const args = request.get('arguments');
  return { name, args: isObject(args) ? args : new Map() };
}
