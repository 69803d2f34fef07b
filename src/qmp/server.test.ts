import { describe, expect, it } from 'vitest';
import { QmpServer } from './server.ts';

function session(inputs: string[]): string[] {
  const lines: string[] = [];
  const clock = { now: () => ({ seconds: 1n, microseconds: 2n }) };
  const server = new QmpServer((l) => lines.push(l), clock);
  server.greeting();
  for (const i of inputs) server.input(`${i}\n`);
  return lines;
}

describe('QMP protocol core (replies captured from qemu-storage-daemon 7.2)', () => {
  it('greets and negotiates like QEMU', () => {
    expect(session(['{"execute":"query-jobs"}', '{"execute":"qmp_capabilities"}', '{"execute":"qmp_capabilities"}', '{"execute":"foo"}'])).toEqual([
      '{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}',
      `{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}}`,
      '{"return": {}}',
      '{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}',
      '{"error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}}',
    ]);
  });

  it('checks requests and arguments with QEMU wording', () => {
    const out = session([
      '{"execute":"qmp_capabilities"}',
      '{ "execute": "query-jobs", "arguments": {} }',
      '{"execute": "query-jobs", "arguments": {"x": 1}}',
      '{"execute": 1}',
      '{"exec": "query-jobs"}',
      '[1,2]',
      '{"execute":"query-jobs"\n}',
      "{'execute':'query-jobs'}",
      '{"execute":"query-jobs", "id": 5}',
      'garbage',
      '{"execute":"query-jobs",}',
      '{"execute" "query-jobs"}',
      '{1: 2}',
      '{"execute":"query-jobs" "x":1}',
      '[1 2]',
      '{"execute": @}',
      '"str"',
      '{"execute":"query-jobs", "arguments": null }',
      '{"execute":"query-jobs", "control": {} }',
      '{"execute":"query-jobs", "id": null}',
      '{ "execute": "job-dismiss", "arguments": { } }',
      '{ "execute": "job-dismiss", "arguments": { "id": 1 } }',
      '{ "execute": "job-dismiss", "arguments": { "id": "create" } }',
    ]);
    expect(out.slice(2)).toEqual([
      '{"return": []}',
      `{"error": {"class": "GenericError", "desc": "Parameter 'x' is unexpected"}}`,
      `{"error": {"class": "GenericError", "desc": "QMP input member 'execute' must be a string"}}`,
      `{"error": {"class": "GenericError", "desc": "QMP input member 'exec' is unexpected"}}`,
      '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}',
      '{"return": []}',
      '{"return": []}',
      '{"return": [], "id": 5}',
      `{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword 'garbage'"}}`,
      '{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}',
      '{"error": {"class": "GenericError", "desc": "JSON parse error, missing : in object pair"}}',
      '{"error": {"class": "GenericError", "desc": "JSON parse error, key is not a string in object"}}',
      '{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in dict"}}',
      '{"error": {"class": "GenericError", "desc": "JSON parse error, expected separator in list"}}',
      `{"error": {"class": "GenericError", "desc": "JSON parse error, stray '@'"}}`,
      '{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}',
      '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}',
      `{"error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}`,
      `{"error": {"class": "GenericError", "desc": "QMP input member 'control' is unexpected"}}`,
      '{"return": [], "id": null}',
      `{"error": {"class": "GenericError", "desc": "Parameter 'id' is missing"}}`,
      `{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'id', expected: string"}}`,
      '{"error": {"class": "GenericError", "desc": "Job not found"}}',
    ]);
  });
});
