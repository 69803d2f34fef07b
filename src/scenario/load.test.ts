import { describe, expect, it } from 'vitest';
import { ValidationError } from './location.ts';
import { parseScenario } from './load.ts';

const filterNames = new Set(['testdir', 'imgfmt', 'qemu_io', 'qemu_img_check', 'img_create', 'qmp', 'qemu', 'hmp']);

function problems(text: string, file = 'scenarios/900.yaml'): string[] {
  try {
    parseScenario(file, text, { filterNames });
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as ValidationError).message.split('\n');
  }
  throw new Error('expected a validation error');
}

const HEAD = 'id: 900\ntitle: t\nsteps:\n';

/** [name, scenario text, expected first message (exact location + text fragment)] */
const MALFORMED: [string, string, string, string][] = [
  ['YAML syntax: unclosed flow list', `${HEAD}  - qemu-io: [-c, "read 0 1"\n  - echo: x\n`, 'scenarios/900.yaml:5:3:', 'YAML syntax error'],
  ['YAML syntax: bad indentation', `id: 900\ntitle: t\nsteps:\n  - echo: a\n   - echo: b\n`, 'scenarios/900.yaml:5:4:', 'YAML syntax error'],
  ['unknown step kind, with suggestion', `${HEAD}  - echo: a\n  - echoo: b\n`, 'scenarios/900.yaml:5:5:', "unknown step kind 'echoo' (did you mean 'echo'?)"],
  ['unknown key inside a step mapping', `${HEAD}  - make_test_img: { size: 64M, optz: x }\n`, 'scenarios/900.yaml:4:33:', "unknown key 'optz' in step 'make_test_img' (did you mean 'opts'?)"],
  ['unknown sibling key of a shorthand step', `${HEAD}  - qemu-io: [-c, "read 0 1"]\n    filter: [qemu_io]\n`, 'scenarios/900.yaml:5:5:', "unknown key 'filter' in step 'qemu-io' (did you mean 'filters'?)"],
  ['unknown top-level key', `id: 900\ntitle: t\ngroup: [quick]\nsteps:\n  - echo\n`, 'scenarios/900.yaml:3:1:', "unknown key 'group' in the scenario (did you mean 'groups'?)"],
  ['wrong type: boolean where text is expected', `${HEAD}  - echo: true\n`, 'scenarios/900.yaml:4:11:', 'text must be a string, found a boolean'],
  ['wrong type: string where a boolean is expected', `${HEAD}  - echo: x\n    newline: "no"\n`, 'scenarios/900.yaml:5:14:', 'newline must be true or false, found a string'],
  ['wrong type: arguments not a list', `${HEAD}  - qemu-img: info $TEST_IMG\n`, 'scenarios/900.yaml:4:15:', 'args must be a list, found a string'],
  ['missing field in a step', `${HEAD}  - truncate: { file: $TEST_IMG.data }\n`, 'scenarios/900.yaml:4:15:', "step 'truncate' is missing required key 'size'"],
  ['missing top-level field', `id: 900\nsteps:\n  - echo\n`, 'scenarios/900.yaml:1:1:', "the scenario is missing required key 'title'"],
  ['unknown filter, with suggestion', `${HEAD}  - qemu-io: [-c, "read 0 1"]\n    filters: [qemu_io, testdirr]\n`, 'scenarios/900.yaml:5:24:', "unknown filter 'testdirr' (did you mean 'testdir'?)"],
  ['unknown variable, column inside the string', `${HEAD}  - qemu-img: [info, "x $TEST_IMGG"]\n`, 'scenarios/900.yaml:4:25:', 'unknown variable $TEST_IMGG'],
  ['unknown ${VAR} inside a literal block', `${HEAD}  - qmp:\n      launch: []\n      exchange:\n        - send: |-\n            { "execute": "x",\n              "arguments": "\${SOCK_DIR}" }\n          until: return\n`, 'scenarios/900.yaml:9:29:', 'unknown variable $SOCK_DIR'],
  ['bad stderr mode', `${HEAD}  - qemu-io: [-c, "read 0 1"]\n    stderr: both\n`, 'scenarios/900.yaml:5:13:', "stderr must be 'merged' (2>&1 | filters) or 'direct' (| filters), found 'both'"],
  ['duplicate key', `id: 900\ntitle: t\ntitle: u\nsteps:\n  - echo\n`, 'scenarios/900.yaml:3:1:', "duplicate key 'title' (first at line 2)"],
  ['id does not match the file name', `id: 901\ntitle: t\nsteps:\n  - echo\n`, 'scenarios/900.yaml:1:5:', "id '901' does not match the file name"],
  ['exit_status with a bad case key', `${HEAD}  - exit_status:\n      0: ok\n      one: bad\n`, 'scenarios/900.yaml:6:7:', "exit_status keys are exit statuses (0-255) or 'default', found 'one'"],
  ['$STATUS outside exit_status', `${HEAD}  - echo: "status $STATUS"\n`, 'scenarios/900.yaml:4:19:', 'unknown variable $STATUS'],
  ['two step kinds in one item', `${HEAD}  - echo: a\n    section: b\n`, 'scenarios/900.yaml:5:5:', "a step has exactly one kind; 'echo' and 'section' are both step kinds"],
  ['step that needs a value written bare', `${HEAD}  - make_test_img\n`, 'scenarios/900.yaml:4:5:', "step 'make_test_img' needs a value"],
  ['YAML anchors refused', `${HEAD}  - echo: &a x\n`, 'scenarios/900.yaml:4:11:', 'YAML anchors are not supported'],
  ['unterminated ${', `${HEAD}  - echo: "a \${TEST_DIR"\n`, 'scenarios/900.yaml:4:14:', "unterminated '${'"],
  ['empty steps', `id: 900\ntitle: t\nsteps: []\n`, 'scenarios/900.yaml:3:8:', 'steps must not be empty'],
  ['truncate size not a size', `${HEAD}  - truncate: { file: x, size: 1.5M }\n`, 'scenarios/900.yaml:4:32:', "size '1.5M' must be a number of bytes"],
  ['command substitution other than seq', `${HEAD}  - echo: "x $(ls /)"\n`, 'scenarios/900.yaml:4:14:', "command substitution '$(ls /)' is not supported"],
  ['bad arithmetic, column inside $(( ))', `${HEAD}  - echo: "$((1 + ))"\n`, 'scenarios/900.yaml:4:19:', 'bad arithmetic: syntax error: operand expected'],
  ['assignment inside arithmetic', `${HEAD}  - set: { a: "$((b = 1))" }\n`, 'scenarios/900.yaml:4:21:', "assignment '=' is not allowed in an expression; use a set step"],
  ['unknown bare name in a condition', `${HEAD}  - set: { count: 1 }\n  - if: "cuont < 3"\n    then: [echo]\n`, 'scenarios/900.yaml:5:10:', "unknown variable $cuont (did you mean 'count'?)"],
  ['set of a runner variable', `${HEAD}  - set: { TEST_DIR: /tmp }\n`, 'scenarios/900.yaml:4:12:', '$TEST_DIR cannot be assigned; it is set by the runner'],
  ['foreach var not a name', `${HEAD}  - foreach: [a]\n    var: "1x"\n    steps: [echo]\n`, 'scenarios/900.yaml:5:10:', "var must be a variable name (letters, digits, _), found '1x'"],
  ['nested step error keeps its position', `${HEAD}  - foreach: [a]\n    var: v\n    steps:\n      - echoo: $v\n`, 'scenarios/900.yaml:7:9:', "unknown step kind 'echoo'"],
  ['call of an unknown macro', `${HEAD}  - call: nope\n`, 'scenarios/900.yaml:4:11:', "unknown macro 'nope'"],
  ['call with an unknown param', `id: 900\ntitle: t\nmacros:\n  m:\n    params: { a: 1 }\n    steps: [echo]\nsteps:\n  - call: m\n    args: { b: 2 }\n`, 'scenarios/900.yaml:9:13:', "macro 'm' has no param 'b'"],
  ['call missing a param without default', `id: 900\ntitle: t\nmacros:\n  m:\n    params: { a: null }\n    steps: [echo]\nsteps:\n  - call: m\n`, 'scenarios/900.yaml:8:11:', "call of macro 'm' is missing param 'a'"],
  ['poke data decoded by YAML', `${HEAD}  - poke_file: { file: $TEST_IMG, offset: 0, data: "\\xff" }\n`, 'scenarios/900.yaml:4:52:', 'YAML decoded an escape; write the bytes in single quotes'],
  ['inline filter rule of an unknown kind', `${HEAD}  - qemu-img: [info, x]\n    filters: [{ awk: { x: 1 } }]\n`, 'scenarios/900.yaml:5:17:', "unknown rule kind 'awk'"],
  ['inline grep with a bad regex', `${HEAD}  - qemu-img: [info, x]\n    filters: [{ grep: { regex: "a(" } }]\n`, 'scenarios/900.yaml:5:32:', 'invalid regular expression'],
  ['condition mapping with a bad key', `${HEAD}  - if: { same: [a, b] }\n    then: [echo]\n`, 'scenarios/900.yaml:4:9:', 'condition must be arithmetic text or one of {equal: [A, B]}'],
  ['qmp timeout not positive', `${HEAD}  - qmp:\n      launch: []\n      exchange:\n        - { send: x, until: y, timeout: -1 }\n`, 'scenarios/900.yaml:7:41:', 'timeout must be a positive number, found -1'],
];

describe('malformed scenarios name file:line:col', () => {
  it.each(MALFORMED)('%s', (_name, text, location, fragment) => {
    const first = problems(text)[0]!;
    expect(first.startsWith(`${location} `)).toBe(true);
    expect(first).toContain(fragment);
  });

  it('has at least 15 cases', () => {
    expect(MALFORMED.length).toBeGreaterThanOrEqual(15);
  });

  it('reports every problem of a file, sorted by position', () => {
    const lines = problems(`${HEAD}  - echoo: a\n  - echo: true\n  - qemu-io: [x]\n    filters: [nope]\n`);
    expect(lines.map((l) => l.split(': ')[0])).toEqual(['scenarios/900.yaml:4:5', 'scenarios/900.yaml:5:11', 'scenarios/900.yaml:7:15']);
  });
});

describe('paths outside TEST_DIR are refused at load time', () => {
  const cases: [string, string, string][] = [
    ['relative ..', `${HEAD}  - rm: ../outside\n`, 'scenarios/900.yaml:4:9:'],
    ['absolute path', `${HEAD}  - file_size: /etc/passwd\n`, 'scenarios/900.yaml:4:16:'],
    ['.. after $TEST_DIR', `${HEAD}  - touch: $TEST_DIR/../x\n`, 'scenarios/900.yaml:4:12:'],
    ['image name', `${HEAD}  - make_test_img: { size: 1M, image: "$TEST_IMG/../../y" }\n`, 'scenarios/900.yaml:4:39:'],
    ['tool argument', `${HEAD}  - qemu-img: [info, /tmp/elsewhere.qcow2]\n`, 'scenarios/900.yaml:4:22:'],
    ['-o data_file option', `${HEAD}  - make_test_img: 1M\n    opts: data_file=/var/tmp/d\n`, 'scenarios/900.yaml:5:21:'],
    ['file.filename in an option list', `${HEAD}  - qemu-img: [compare, --image-opts, "driver=raw,file.filename=$TEST_DIR/../z", $TEST_IMG]\n`, 'scenarios/900.yaml:4:65:'],
    ['json: filename', `${HEAD}  - qemu-io: [-c, "read 0 1", "json:{'driver': 'file', 'filename': '/etc/shadow'}"]\n`, 'scenarios/900.yaml:4:69:'],
    ['qemu-io open command', `${HEAD}  - qemu-io: [-c, "open -odata-file.filename=../../d $TEST_IMG"]\n`, 'scenarios/900.yaml:4:46:'],
    ['QMP launch option', `${HEAD}  - qmp:\n      launch: [-blockdev, "file,node-name=x,filename=/dev/sda"]\n      exchange: [{ send: x }]\n`, 'scenarios/900.yaml:5:54:'],
    ['QMP command text', `${HEAD}  - qmp:\n      launch: []\n      exchange:\n        - send: '{"execute": "blockdev-add", "arguments": {"filename": "/etc/passwd"}}'\n`, 'scenarios/900.yaml:7:73:'],
    ['home directory', `${HEAD}  - rm: ~/x\n`, 'scenarios/900.yaml:4:9:'],
    ['poke_file target', `${HEAD}  - poke_file: { file: /etc/x, offset: 0, data: 'a' }\n`, 'scenarios/900.yaml:4:24:'],
    ['peek inside a foreach body', `${HEAD}  - foreach: [a]\n    var: v\n    steps:\n      - peek_file_be: { file: ../x, offset: 0, size: 1 }\n`, 'scenarios/900.yaml:7:31:'],
    ['mkdir', `${HEAD}  - mkdir: $TEST_DIR/../d\n`, 'scenarios/900.yaml:4:12:'],
  ];
  it.each(cases)('%s', (_name, text, location) => {
    const first = problems(text)[0]!;
    expect(first.startsWith(`${location} `)).toBe(true);
    expect(first).toMatch(/is refused: .*a scenario may only touch files in its TEST_DIR/);
  });

  it('accepts names inside TEST_DIR, relative names and option values that are not paths', () => {
    const s = parseScenario(
      'scenarios/900.yaml',
      `${HEAD}  - rm: $TEST_IMG.data\n  - touch: sub/../x\n  - qemu-io: [-c, "open -odata-file.filename=inexistent $TEST_IMG", -c, "read -P 0x11 0 64k"]\n`,
      { filterNames },
    );
    expect(s.steps).toHaveLength(3);
  });
});

describe('well-formed scenarios', () => {
  it('reads shorthand and long forms alike', () => {
    const s = parseScenario(
      'scenarios/900.yaml',
      `${HEAD}  - section: A\n  - section: { title: B, blank_after: false }\n  - echo\n  - echo: "x: "\n    newline: false\n  - make_test_img: 64M\n    opts: data_file=$TEST_IMG.data\n  - qemu-io: [-c, "read 0 1"]\n    stderr: merged\n    filters: [qemu_io, testdir]\n  - exit_status: { 0: ok, default: "bad $STATUS" }\n  - check_test_img\n`,
      { filterNames },
    );
    expect(s.steps.map((x) => x.kind)).toEqual(['section', 'section', 'echo', 'echo', 'make_test_img', 'qemu-io', 'exit_status', 'check_test_img']);
    expect(s.steps[1]).toMatchObject({ title: 'B', blankAfter: false });
    expect(s.steps[3]).toMatchObject({ text: 'x: ', newline: false });
    expect(s.steps[4]).toMatchObject({ size: '64M', opts: 'data_file=$TEST_IMG.data', image: '$TEST_IMG' });
    expect(s.steps[5]).toMatchObject({ args: ['-c', 'read 0 1'], stderr: 'merged', filters: ['qemu_io', 'testdir'] });
    expect(s.steps[5]!.at).toEqual({ file: 'scenarios/900.yaml', line: 11, col: 5 });
  });
});
