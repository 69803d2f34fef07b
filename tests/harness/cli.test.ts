/** The runner's command line without QEMU: usage errors, validation errors, list, show. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, qtest } from './cli.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qtest-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function noStack(text: string): void {
  expect(text).not.toMatch(/^\s+at /m);
}

describe('qtest run: bad command lines exit 2 with one clear message', () => {
  it.each([
    [['run', '--bogus'], /Unknown option '--bogus'/],
    [['run', '--backend', 'vmware'], /unknown backend 'vmware' \(choose builtin or qemu\)/],
    [['run', '-j', '0'], /-j\/--jobs needs a positive whole number, got '0'/],
    [['run', '--reporter', 'xml'], /unknown reporter 'xml' \(choose json, junit, tap\)/],
    [['run', '--output', 'x.json'], /--output needs --reporter/],
    [['run', '99999'], /no scenario matches '99999'/],
    [['show'], /expected exactly one scenario ID/],
    [['list', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ])('%j', (args, message) => {
    const r = qtest(args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    noStack(r.stderr);
  });
});

describe('invalid scenarios stop the run before anything runs', () => {
  it('prints every problem as file:line:col and exits 2 without a stack trace', () => {
    const dir = path.join(tmp, 'bad');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, '901.yaml'), 'id: 901\ntitle: t\nsteps:\n  - echo: ok\n  - qemu-img: [info, $TEST_IMGG]\n  - rm: ../../etc/x\n');
    const r = qtest(['run', '901', '--backend', 'qemu'], { QTEST_SCENARIOS: dir });
    expect(r.status).toBe(2);
    // Outside the working directory the path is shown absolute.
    const shown = path.join(dir, '901.yaml');
    expect(r.stderr).toContain(`${shown}:5:22: unknown variable $TEST_IMGG`);
    expect(r.stderr).toContain(`${shown}:6:9: path '../../etc/x' is refused`);
    expect(r.stdout).toBe('');
    noStack(r.stderr);
  });
});

describe('qtest list and show', () => {
  it('lists 244 with its groups and title', () => {
    const r = qtest(['list']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^244\s+rw,auto,quick\s+qcow2 with external data files$/m);
  });

  it('filters the list by group', () => {
    expect(qtest(['list', '-g', 'quick']).stdout).toContain('244');
    expect(qtest(['list', '-x', 'quick']).stdout).not.toContain('244');
  });

  it('renders 244 as the iotests bash it came from', () => {
    const r = qtest(['show', '244']);
    expect(r.status).toBe(0);
    for (const line of [
      'echo "QA output created by $seq"',
      '_make_test_img -o "data_file=$TEST_IMG.data" 64M',
      '$QEMU_IO -c "open $TEST_IMG" -c \'read -P 0 0 64k\' 2>&1 | _filter_qemu_io | _filter_testdir',
      'TEST_IMG="$TEST_IMG.src" _make_test_img 64M',
      'du -b "$TEST_IMG" | cut -f1',
      'result=${PIPESTATUS[0]}',
      "_send_qemu_cmd $QEMU_HANDLE \\",
      '    \'"status": "concluded"\'',
      'echo "*** done"',
    ]) {
      expect(r.stdout).toContain(line);
    }
  });
});

describe('the default backend', () => {
  it.skipIf(fs.existsSync(path.join(ROOT, 'src/backends/builtin.ts')))('says so in one line while the built-in engine is missing', () => {
    const r = qtest(['run', '244']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('qtest run: builtin backend not available\n');
  });
});
